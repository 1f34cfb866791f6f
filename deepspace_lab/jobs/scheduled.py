"""The Worker's scheduled tasks (fired by Huey's periodic scheduler, see
:data:`.queue.SCHEDULES`): usage roll-ups, billing reconciliation and retention.

Every worker's scheduler fires them, so with N workers each fires N times. They are safe to
overlap (roll-ups build each period under an advisory lock and from the mark; reconciliation
releases each lapsed hold once; retention deletes by primary key), and on PostgreSQL a worker
skips a task another worker is running (a session advisory *try*-lock, released when the task
ends or its connection dies — so a killed worker never leaves it held; Huey's own task locks
would stay held after a SIGKILL, its TTLs need Redis 7.4). On SQLite (one machine) overlaps
are rare and only cost the repeated work."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..billing.reconcile import reconcile
from ..billing.rollups import roll_up_due
from ..config import Settings
from ..db import make_sessionmaker
from .retention import apply_retention

log = logging.getLogger("deepspace_lab.worker")


def settle_s(settings: Settings) -> float:
    """How long after an hour ends its usage can still change: the longest request."""
    return settings.upstream_max_duration_s + settings.hold_lease_s


#: advisory-lock keys per task ("dsl-sch" in ASCII, plus the task's index)
PG_LOCK_BASE = 0x64736C2D736368


async def run_scheduled(name: str, settings: Settings, engine: AsyncEngine) -> dict[str, Any]:
    """Run one scheduled task; ``{"skipped": True}`` when another worker is running it."""
    if engine.dialect.name != "postgresql":
        return await _run(name, settings, engine)
    key = PG_LOCK_BASE + ("rollups", "reconcile", "retention").index(name)
    async with engine.connect() as conn:
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar()
        await conn.commit()
        if not got:
            log.info("scheduled %s is running in another worker; skipped", name)
            return {"skipped": True}
        try:
            return await _run(name, settings, engine)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()


async def _run(name: str, settings: Settings, engine: AsyncEngine) -> dict[str, Any]:
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
        return result.to_dict()
    if name == "retention":
        return await apply_retention(engine, settings)
    raise KeyError(name)
