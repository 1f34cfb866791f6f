"""The Worker's scheduled tasks (fired by Huey's periodic scheduler, see
:data:`.queue.SCHEDULES`): usage roll-ups, billing reconciliation and retention."""

from __future__ import annotations

import logging
from typing import Any

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


async def run_scheduled(name: str, settings: Settings, engine: AsyncEngine) -> dict[str, Any]:
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
