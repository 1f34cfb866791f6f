"""The audit writer: one row per gateway request, written on every path.

With ``flush_interval_ms > 0`` rows are batched and written by a background task (one
multi-row INSERT per interval), which keeps the database off the request's hot path; a
process that is killed outright loses at most one interval of rows, and a clean stop
flushes them. With ``flush_interval_ms == 0`` each row is written before the response ends.
A failed write is logged with its trace ids and retried at the next flush (bounded buffer).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.base import utcnow
from .models import AuditLog

log = logging.getLogger("deepspace_lab.audit")
MAX_BUFFERED_ROWS = 50_000
_COLUMNS = frozenset(c.name for c in AuditLog.__table__.columns) - {"id"}


class AuditWriter:
    def __init__(self, engine: AsyncEngine, *, flush_interval_ms: int) -> None:
        self._engine = engine
        self._interval_s = flush_interval_ms / 1000
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def batched(self) -> bool:
        return self._interval_s > 0

    def start(self) -> None:
        if self.batched and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="deepspace-audit")

    async def write(self, **row: Any) -> None:
        """Record one row (keys are :class:`AuditLog` columns)."""
        unknown = set(row) - _COLUMNS
        if unknown:
            raise TypeError(f"unknown audit columns: {sorted(unknown)}")
        row.setdefault("created_at", utcnow())
        if not self.batched:
            await self._insert([row])
            return
        if len(self._buffer) >= MAX_BUFFERED_ROWS:
            log.error("audit buffer full; dropping row", extra={"trace_id": row.get("trace_id")})
            return
        self._buffer.append(row)

    async def flush(self) -> None:
        """Write everything buffered so far. Rows whose write fails or is cancelled go back to
        the front of the buffer (the next flush, or :meth:`close`, writes them)."""
        rows, self._buffer = self._buffer, []
        if rows:
            try:
                await self._insert(rows)
            except BaseException as exc:
                self._buffer[:0] = rows
                if not isinstance(exc, Exception):
                    raise
                log.exception("audit write failed; %d rows kept for retry", len(rows))

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        full = [{col: row.get(col) for col in _COLUMNS} for row in rows]
        async with self._engine.begin() as conn:
            await conn.execute(insert(AuditLog), full)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
            except TimeoutError:
                pass
            await self.flush()

    async def close(self) -> None:
        """Stop the background task without interrupting a write in progress (a cancelled
        INSERT would lose its batch), then write what is left."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None
        await self.flush()
