"""The Worker's scheduled tasks (fired by Huey's periodic scheduler, see
:data:`.queue.SCHEDULES`): usage roll-ups, billing reconciliation, retention and the webhook
alerts (:mod:`.alerts`; a reconciliation that finds problems fires an anomaly too).

Every worker's scheduler fires them, so with N workers each fires N times. They are safe to
overlap (roll-ups build each period under an advisory lock and from the mark; reconciliation
releases each lapsed hold once; retention deletes by primary key), and on PostgreSQL a worker
skips a task another worker is running (a session advisory *try*-lock, released when the task
ends or its connection dies — so a killed worker never leaves it held, and a worker whose machine
vanished holds it about a minute, the server's keepalives on that connection; Huey's own task
locks would stay held after a SIGKILL, its TTLs need Redis 7.4). On SQLite (one machine) overlaps
are rare and only cost the repeated work."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..billing.reconcile import reconcile
from ..billing.rollups import roll_up_due
from ..config import Settings
from ..db import make_sessionmaker
from .alerts import RECONCILE_KEY, check_alerts, clear_alerts, reconciliation_alert
from .queue import SCHEDULES, JobQueue
from .retention import apply_retention

log = logging.getLogger("deepspace_lab.worker")


def settle_s(settings: Settings) -> float:
    """How long after an hour ends its usage can still change: the longest request."""
    return settings.upstream_max_duration_s + settings.hold_lease_s


#: advisory-lock keys per task ("dsl-sch" in ASCII, plus the task's index)
PG_LOCK_BASE = 0x64736C2D736368


#: server-side TCP keepalives (seconds, probes) on the connection holding a task's lock: the
#: server ends the session of a worker whose machine vanished (no FIN ever comes) after about
#: idle + interval × count, instead of the operating system's default of two hours and more
LOCK_KEEPALIVE = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}


@asynccontextmanager
async def task_lock(engine: AsyncEngine, name: str) -> AsyncIterator[AsyncConnection | None]:
    """The PostgreSQL session lock of one scheduled task: its connection, or None when another
    worker holds it. Released at the end, or by the server when the holder's session dies."""
    key = PG_LOCK_BASE + list(SCHEDULES).index(name)
    async with engine.connect() as conn:
        keepalives = ", ".join(f"set_config('{setting}', :v{i}, false)" for i, setting in enumerate(LOCK_KEEPALIVE))
        params: dict[str, Any] = {f"v{i}": value for i, value in enumerate(LOCK_KEEPALIVE.values())}
        row = (await conn.execute(text(f"SELECT {keepalives}, pg_try_advisory_lock(:k)"), {**params, "k": key})).one()
        got = row[-1]  # one round trip: the session's keepalives, then the lock
        await conn.commit()
        if not got:
            yield None
            return
        try:
            yield conn
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()


@asynccontextmanager
async def _queue(settings: Settings, queue: JobQueue | None) -> AsyncIterator[JobQueue]:
    """The worker's queue, or one of our own for this task (the CLI's ``scheduled``)."""
    if queue is not None:
        yield queue
        return
    own = JobQueue(settings)
    try:
        yield own
    finally:
        own.close()


async def run_scheduled(name: str, settings: Settings, engine: AsyncEngine,
                        queue: JobQueue | None = None) -> dict[str, Any]:
    """Run one scheduled task; ``{"skipped": True}`` when another worker is running it. Webhook
    deliveries go on ``queue`` (default: one made from ``settings``)."""
    if engine.dialect.name != "postgresql":
        return await _run(name, settings, engine, queue)
    async with task_lock(engine, name) as held:
        if held is None:
            log.info("scheduled %s is running in another worker; skipped", name)
            return {"skipped": True}
        return await _run(name, settings, engine, queue)


async def _run(name: str, settings: Settings, engine: AsyncEngine, queue: JobQueue | None) -> dict[str, Any]:
    if name == "rollups":
        report = await roll_up_due(engine, settle_s=settle_s(settings))
        if report.built["hour"] or report.built["day"]:
            log.info("roll-ups built %s", report.to_dict())
        return report.to_dict()
    if name == "reconcile":
        async with make_sessionmaker(engine)() as session:
            result = await reconcile(session, actor="worker:reconcile")
        if not result.ok:
            log.error("reconciliation found %d problem(s): %s", len(result.problems),
                      [p.to_dict() for p in result.problems[:20]])
        elif result.expired:
            log.warning("reconciliation released %d lapsed hold(s)", len(result.expired))
        if result.problems:
            async with _queue(settings, queue) as q:
                await reconciliation_alert(engine, q, [p.to_dict() for p in result.problems])
        else:
            await clear_alerts(engine, prefixes=(RECONCILE_KEY,))
        return result.to_dict()
    if name == "retention":
        return await apply_retention(engine, settings)
    if name == "webhooks":
        async with _queue(settings, queue) as q:
            return await check_alerts(engine, q, settings)
    raise KeyError(name)
