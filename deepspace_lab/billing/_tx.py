"""How one ledger operation runs as one short transaction of its own.

Every operation is given an idle ``AsyncSession`` (no transaction in progress) and ends it
committed or rolled back, so it can run right before and right after an upstream call
without holding anything across it.

Two runners:

- :func:`run_statement` (PostgreSQL, the hot path: hold, capture, release). The operation is
  ONE data-modifying statement (a CTE) sent in autocommit on the session's connection:
  one round trip, atomic, and under READ COMMITTED its conditional ``UPDATE … WHERE`` is
  re-checked against the newest row version after waiting for a concurrent writer, so two
  holds can never both pass the balance check. It goes through the driver connection to
  skip the BEGIN/COMMIT round trips and SQLAlchemy's per-statement work (about half the
  CPU of an operation, measured in ``bench/ledger``).
- :func:`run_transaction` (SQLite, and the rarer operations on PostgreSQL). Several
  statements in one transaction. On SQLite it starts with ``BEGIN IMMEDIATE``: the write
  lock is taken before the first read, so writers — in this process or any other on the
  same file — queue on SQLite's lock (with the busy timeout set in ``db.engine``) instead
  of failing to upgrade a read snapshot, and every read inside sees the latest commit.
  That makes SQLite correct across processes without any in-process lock.

Both return ``None`` when the database refused the change — a condition did not match, or
a UNIQUE or CHECK constraint fired — after making sure nothing was written; the caller then
works out why (a replay of the same ref, or a specific error). Deadlocks and serialization
failures (SQLSTATE 40P01, 40001) are retried a few times with jitter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..errors import ServiceUnavailable

T = TypeVar("T")
MAX_ATTEMPTS = 5
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_REFUSED_SQLSTATES = frozenset({"23505", "23514"})  # unique_violation, check_violation


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def require_idle(session: AsyncSession) -> None:
    if session.in_transaction():
        raise RuntimeError("ledger operations run their own transaction: commit or roll back the session first")


def _classify(exc: BaseException) -> str | None:
    """``refused``, ``retry``, ``locked`` or None (anything else: re-raise)."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _REFUSED_SQLSTATES:
        return "refused"
    if sqlstate in _RETRY_SQLSTATES:
        return "retry"
    if type(orig).__module__ == "sqlite3":
        message = str(orig)
        if message.startswith(("UNIQUE constraint failed", "CHECK constraint failed")):
            return "refused"
        if "database is locked" in message:
            return "locked"
    return None


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))


def _busy(exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable("the database is busy; retry in a moment", code="database_busy", retry_after_s=1)


async def run_transaction(
    session: AsyncSession, work: Callable[[AsyncConnection], Awaitable[T | None]]
) -> T | None:
    """Run ``work`` in one transaction and commit it; ``None`` from ``work`` rolls back."""
    require_idle(session)
    attempt = 0
    while True:
        attempt += 1
        try:
            conn = await session.connection()
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            result = await work(conn)
            if result is None:
                await session.rollback()
                return None
            await session.commit()
            return result
        except BaseException as exc:
            await session.rollback()
            kind = _classify(exc)
            if kind == "refused":
                return None
            if kind == "retry" and attempt < MAX_ATTEMPTS:
                await _backoff(attempt)
                continue
            if kind == "locked":
                raise _busy(exc) from exc
            raise


async def run_statement(session: AsyncSession, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """PostgreSQL: run one statement in autocommit and return its first row (or None)."""
    require_idle(session)
    attempt = 0
    while True:
        attempt += 1
        conn = await session.connection()
        raw: Any = (await conn.get_raw_connection()).driver_connection
        try:
            row = await _autocommit_fetchone(raw, sql, params)
        except BaseException as exc:
            if raw.broken or raw.closed or raw.autocommit:
                await conn.invalidate()  # never hand a half-reset connection back to the pool
            await session.rollback()
            kind = _classify(exc)
            if kind == "refused":
                return None
            if kind == "retry" and attempt < MAX_ATTEMPTS:
                await _backoff(attempt)
                continue
            raise
        # Nothing is pending (the statement committed itself); this returns the connection.
        await session.commit()
        return row  # type: ignore[no-any-return]


async def _autocommit_fetchone(raw: Any, sql: str, params: Mapping[str, Any]) -> Any:
    await raw.set_autocommit(True)
    try:
        cursor = await raw.execute(sql, params, prepare=True)
        return await cursor.fetchone()
    finally:
        await raw.set_autocommit(False)


async def run_read(session: AsyncSession, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run read-only ``work`` and end the session's transaction."""
    require_idle(session)
    try:
        return await work(await session.connection())
    finally:
        await session.rollback()
