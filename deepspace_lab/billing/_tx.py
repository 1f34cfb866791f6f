"""How one ledger operation runs as one short transaction of its own.

Every operation is given an idle ``AsyncSession`` (no transaction in progress) and works on
a pooled connection of that session's engine, never on the session itself: it commits
before it returns, so it can run right before and right after an upstream call without
holding anything across it, and a caller's unit of work is never mixed into it.

A started operation always runs to its end (:func:`_to_completion`): a caller cancelled
meanwhile (a client disconnect) gets its ``CancelledError`` at once while the work goes on
to its commit or rollback, so no transaction is cut in half and no SQLite write lock stays
behind with an abandoned connection. A retry with the same ref tells what happened.

Two runners:

- :func:`run_statement` (PostgreSQL, the hot path: hold, capture, release). The operation is
  ONE data-modifying statement (a CTE) sent in autocommit: one round trip, atomic, and under
  READ COMMITTED its conditional ``UPDATE … WHERE`` is re-checked against the newest row
  version after waiting for a concurrent writer, so two holds can never both pass the
  balance check. It talks to the driver connection directly, which skips the BEGIN/COMMIT
  round trips and SQLAlchemy's per-statement work (measured in ``bench/ledger``).
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

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.util.concurrency import greenlet_spawn

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


def _engine(session: AsyncSession) -> AsyncEngine:
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        raise RuntimeError("ledger operations need a session bound to an engine")
    return bind


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


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an abandoned operation's error is not "never retrieved"


async def _to_completion(operation: Awaitable[T]) -> T:
    """Run ``operation`` to its end even if the caller is cancelled meanwhile.

    A caller that gives up (a client disconnect, a timeout) gets its ``CancelledError`` at
    once, but the database work goes on to its commit or rollback on its own connection:
    never a transaction cut in half, never a SQLite write lock left behind with a
    connection. Whether it happened, the retry with the same ref tells.
    """
    task = asyncio.ensure_future(operation)
    task.add_done_callback(_retrieved)
    return await asyncio.shield(task)


async def run_transaction(
    session: AsyncSession, work: Callable[[AsyncConnection], Awaitable[T | None]]
) -> T | None:
    """Run ``work`` in one transaction on a connection of its own and commit it; ``None``
    from ``work`` rolls back."""
    require_idle(session)
    return await _to_completion(_transaction(_engine(session), work))


async def _transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T | None]]) -> T | None:
    attempt = 0
    while True:
        attempt += 1
        try:
            async with engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                result = await work(conn)
                if result is None:
                    await conn.rollback()
                else:
                    await conn.commit()
                return result
        except Exception as exc:
            kind = _classify(exc)
            if kind == "refused":
                return None
            if kind == "retry" and attempt < MAX_ATTEMPTS:
                await _backoff(attempt)
                continue
            if kind == "locked":
                raise ServiceUnavailable("the database is busy; retry in a moment", code="database_busy",
                                         retry_after_s=1) from exc
            raise


async def run_statement(session: AsyncSession, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """PostgreSQL: run one statement in autocommit and return its first row (or None).

    It takes a pooled connection of the session's engine for itself (never the session's
    own), and goes to the driver directly: the session's bookkeeping would be a fifth of the
    operation's CPU.
    """
    require_idle(session)
    return await _to_completion(_statement(_engine(session), sql, params))


async def _statement(engine: AsyncEngine, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    attempt = 0
    while True:
        attempt += 1
        proxy = await engine.raw_connection()
        raw: Any = proxy.driver_connection
        try:
            return await _autocommit_fetchone(raw, sql, params)  # type: ignore[no-any-return]
        except Exception as exc:
            if raw.broken or raw.closed or raw.autocommit:
                await greenlet_spawn(proxy.invalidate)  # never hand a half-reset connection back
            kind = _classify(exc)
            if kind == "refused":
                return None
            if kind == "retry" and attempt < MAX_ATTEMPTS:
                await _backoff(attempt)
                continue
            raise
        finally:
            await greenlet_spawn(proxy.close)  # back to the pool


async def _autocommit_fetchone(raw: Any, sql: str, params: Mapping[str, Any]) -> Any:
    await raw.set_autocommit(True)
    try:
        cursor = await raw.execute(sql, params, prepare=True)
        return await cursor.fetchone()
    finally:
        await raw.set_autocommit(False)


async def run_read(session: AsyncSession, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run read-only ``work`` on a connection of its own."""
    require_idle(session)

    async def read() -> T:
        async with _engine(session).connect() as conn:
            return await work(conn)

    return await _to_completion(read())
