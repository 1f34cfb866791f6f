"""Retention: delete what is older than its setting, in small batches.

Each batch is one short transaction deleting at most :data:`BATCH` rows by primary key
(found through a ``created_at`` index), so no table is locked for long and the gateways keep
writing meanwhile. 0 days keeps a kind forever.

- audit rows (``DEEPSPACE_RETENTION_AUDIT_DAYS``);
- usage records (``…_USAGE_DAYS``): only settled rows, and only in hours already rolled up,
  so the roll-ups, the usage summary and the statements keep every request;
- conversation messages (``…_MESSAGES_DAYS``);
- finished jobs with their events (``…_JOBS_DAYS``), by when they finished; with the same
  setting, the event log of workflow runs that ended that long ago (the run and its steps —
  state, outputs, cost, errors — stay).

Each run that deleted anything leaves an audit row (``worker.retention``: counts and settings).
Never purged: the ledger (``transactions``, append-only; the database refuses deletes),
holds, wallets, roll-ups, files and statements.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..audit.models import AuditLog
from ..billing.models import RollupMark, UsageRecord
from ..config import Settings
from ..conversations.models import Message
from ..db.base import UTCDateTime, utcnow
from ..tracing import new_trace_id
from .models import Job, JobEvent

log = logging.getLogger("deepspace_lab.worker")
BATCH = 1000
A, U, MSG, J, E, M = (cast(Table, m.__table__) for m in (AuditLog, UsageRecord, Message, Job, JobEvent, RollupMark))


async def _purge(engine: AsyncEngine, table: Table, where: list[Any], *, batch: int) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(
                select(table.c.id).where(*where).order_by(table.c.id).limit(batch))).all()]
            if not ids:
                return total
            if table is J:
                await conn.execute(delete(E).where(E.c.job_id.in_(ids)))
            await conn.execute(delete(table).where(table.c.id.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            return total


def _before(days: int, now: datetime) -> Any:
    return bindparam(None, now - timedelta(days=days), type_=UTCDateTime())


async def apply_retention(engine: AsyncEngine, settings: Settings, *, now: datetime | None = None,
                          batch: int = BATCH) -> dict[str, int]:
    """Delete every row past its retention; returns the count per kind."""
    at = now or utcnow()
    deleted: dict[str, int] = {}
    if settings.retention_audit_days:
        deleted["audit_logs"] = await _purge(engine, A, [A.c.created_at < _before(settings.retention_audit_days, at)],
                                             batch=batch)
    if settings.retention_usage_days:
        async with engine.connect() as conn:
            rolled: datetime | None = (await conn.execute(
                select(M.c.rolled_until).where(M.c.period == "hour"))).scalar()
        cutoff = at - timedelta(days=settings.retention_usage_days)
        if rolled is not None:
            limit = bindparam(None, min(cutoff, rolled), type_=UTCDateTime())
            deleted["usage_records"] = await _purge(engine, U, [U.c.created_at < limit, U.c.status != "pending"],
                                                    batch=batch)
        else:
            deleted["usage_records"] = 0  # nothing rolled up yet: keep everything
    if settings.retention_messages_days:
        deleted["messages"] = await _purge(
            engine, MSG, [MSG.c.created_at < _before(settings.retention_messages_days, at)], batch=batch)
    if settings.retention_jobs_days:
        from ..workflows.models import RUN_ACTIVE, WorkflowEvent, WorkflowRun  # workflows import jobs

        deleted["jobs"] = await _purge(engine, J, [J.c.state.in_(("done", "failed")),
                                                  J.c.finished_at < _before(settings.retention_jobs_days, at)],
                                       batch=batch)
        runs, events = (cast(Table, m.__table__) for m in (WorkflowRun, WorkflowEvent))
        ended = select(runs.c.id).where(runs.c.state.not_in(RUN_ACTIVE),
                                        runs.c.finished_at < _before(settings.retention_jobs_days, at))
        deleted["workflow_events"] = await _purge(engine, events, [events.c.run_id.in_(ended.scalar_subquery())],
                                                  batch=batch)
    if any(deleted.values()):
        log.warning("retention deleted %s", deleted)
        async with engine.begin() as conn:  # what went, and why, stays on record
            await conn.execute(insert(A).values(
                trace_id=new_trace_id(), kind="worker.retention", actor="worker:retention", created_at=utcnow(),
                detail={"deleted": deleted, "days": {
                    "audit_logs": settings.retention_audit_days, "usage_records": settings.retention_usage_days,
                    "messages": settings.retention_messages_days, "jobs": settings.retention_jobs_days}}))
    return deleted
