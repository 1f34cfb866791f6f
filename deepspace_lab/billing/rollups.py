"""Usage roll-ups: usage summed per UTC hour and day, org, project and model.

Building a period replaces its rows in one transaction (delete, then ``INSERT … SELECT``
grouped in the database), so building it again gives the same rows. Hours are built from
``usage_records``, days from the hours. ``rollup_marks`` remembers, per period kind, up to
where everything is built; :func:`roll_up_due` builds every complete period from the mark
to now, so a worker that was down catches up on everything it missed, however long.

A period is complete once it ended ``settle_s`` ago: a usage row is written when its
request starts (at the hold) and settled when it ends, so the Worker waits out the longest
a request can run (``DEEPSPACE_UPSTREAM_MAX_DURATION_S`` plus the hold's lease) before it
sums an hour. Periods with no usage are skipped without a statement each.

Concurrent builders (two workers whose schedulers both fired) take turns: each period is
built under an advisory lock on PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite, after reading
the mark inside that transaction, so no period is built twice at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from ..db.base import UTCDateTime, utcnow
from ..errors import InvalidRequest
from .models import ROLLUP_PERIODS, RollupMark, UsageRecord, UsageRollup

U = cast(Table, UsageRecord.__table__)
R = cast(Table, UsageRollup.__table__)
M = cast(Table, RollupMark.__table__)
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
#: "dsl-rollup" in ASCII, an arbitrary key for the advisory lock
PG_LOCK_KEY = 0x64736C2D726F6C
GROUP_BYS = ("day", "project", "model")
MAX_SUMMARY_DAYS = 400


def floor_period(moment: datetime, period: str) -> datetime:
    moment = moment.astimezone(UTC)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _source(period: str, start: datetime) -> Any:
    """SELECT of one period's roll-up rows, grouped in the database."""
    end = start + STEP[period]
    lo = bindparam("lo", start, type_=UTCDateTime())
    hi = bindparam("hi", end, type_=UTCDateTime())
    begin = bindparam("period_start", start, type_=UTCDateTime())
    if period == "hour":
        return (select(literal("hour"), begin, U.c.org_id, U.c.project_id, U.c.model, func.count(),
                       func.coalesce(func.sum(U.c.prompt_tokens), 0), func.coalesce(func.sum(U.c.completion_tokens), 0),
                       func.coalesce(func.sum(U.c.cost_micros), 0))
                .where(U.c.created_at >= lo, U.c.created_at < hi)
                .group_by(U.c.org_id, U.c.project_id, U.c.model))
    return (select(literal("day"), begin, R.c.org_id, R.c.project_id, R.c.model, func.sum(R.c.requests),
                   func.sum(R.c.prompt_tokens), func.sum(R.c.completion_tokens), func.sum(R.c.cost_micros))
            .where(R.c.period == "hour", R.c.period_start >= lo, R.c.period_start < hi)
            .group_by(R.c.org_id, R.c.project_id, R.c.model))


@asynccontextmanager
async def _serialised(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction that no other roll-up builder runs beside: an advisory lock on
    PostgreSQL, ``BEGIN IMMEDIATE`` (the write lock before the first read) on SQLite."""
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


async def _build(conn: AsyncConnection, period: str, start: datetime) -> int:
    begin = bindparam("b", start, type_=UTCDateTime())
    await conn.execute(delete(R).where(R.c.period == period, R.c.period_start == begin))
    columns = ["period", "period_start", "org_id", "project_id", "model", "requests", "prompt_tokens",
               "completion_tokens", "cost_micros"]
    # RETURNING counts the rows on both drivers (psycopg reports no rowcount for INSERT … SELECT here)
    result = await conn.execute(insert(R).from_select(columns, _source(period, start)).returning(R.c.id))
    return len(result.all())


async def rollup_period(engine: AsyncEngine, *, period: str, start: datetime) -> int:
    """Rebuild one period (``start`` is floored to it); returns the rows written. Does not
    move the mark (an operator's rebuild of a past period)."""
    if period not in ROLLUP_PERIODS:
        raise InvalidRequest(f"period must be one of {list(ROLLUP_PERIODS)}", code="invalid_period", param="period")
    async with _serialised(engine) as conn:
        return await _build(conn, period, floor_period(start, period))


async def _mark(conn: AsyncConnection, period: str) -> datetime | None:
    value: datetime | None = (await conn.execute(select(M.c.rolled_until).where(M.c.period == period))).scalar()
    return value


async def _set_mark(conn: AsyncConnection, period: str, until: datetime, *, exists: bool) -> None:
    values = {"rolled_until": until, "updated_at": utcnow()}
    if exists:
        await conn.execute(update(M).where(M.c.period == period).values(**values))
    else:
        await conn.execute(insert(M).values(period=period, **values))


async def _first_data(conn: AsyncConnection, period: str, after: datetime | None) -> datetime | None:
    """The start of the first period at or after ``after`` that has anything to sum."""
    column = U.c.created_at if period == "hour" else R.c.period_start
    query = select(func.min(column))  # min() keeps the column's type: an aware datetime back
    if period == "day":
        query = query.where(R.c.period == "hour")
    if after is not None:
        query = query.where(column >= bindparam("a", after, type_=UTCDateTime()))
    moment: datetime | None = (await conn.execute(query)).scalar()
    return floor_period(moment, period) if moment is not None else None


@dataclass
class RollupReport:
    built: dict[str, int] = field(default_factory=lambda: {"hour": 0, "day": 0})
    rows: int = 0
    rolled_until: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"periods_built": self.built, "rows": self.rows, "rolled_until": self.rolled_until}


async def _catch_up(engine: AsyncEngine, period: str, due: datetime, report: RollupReport) -> None:
    """Build each period with data from the mark up to ``due`` (exclusive), one transaction
    each, moving the mark with it; then set the mark to ``due``."""
    while True:
        async with _serialised(engine) as conn:
            current = await _mark(conn, period)  # another builder may have moved it meanwhile
            start = await _first_data(conn, period, current)
            if start is None or start >= due:
                if current is None or current < due:
                    await _set_mark(conn, period, due, exists=current is not None)
                report.rolled_until[period] = max(due, current or due).isoformat()
                return
            report.rows += await _build(conn, period, start)
            report.built[period] += 1
            await _set_mark(conn, period, start + STEP[period], exists=current is not None)


async def roll_up_due(engine: AsyncEngine, *, now: datetime | None = None, settle_s: float = 0) -> RollupReport:
    """Build every complete hour, then every complete day, not built yet (each period in its
    own short transaction, the mark moved with it)."""
    at = (now or utcnow()) - timedelta(seconds=settle_s)
    report = RollupReport()
    await _catch_up(engine, "hour", floor_period(at, "hour"), report)
    hours_done = datetime.fromisoformat(str(report.rolled_until["hour"]))
    await _catch_up(engine, "day", floor_period(hours_done, "day"), report)
    return report


async def rollup_marks(session: AsyncSession) -> dict[str, datetime]:
    rows = (await session.execute(select(M.c.period, M.c.rolled_until))).all()
    return {r.period: r.rolled_until for r in rows}


async def usage_summary(session: AsyncSession, *, org_id: str, group_by: str, since: datetime,
                        until: datetime) -> list[dict[str, Any]]:
    """The org's usage from the hourly roll-ups in ``[since, until)``, grouped by UTC day,
    project or model (keys sorted). Hours not rolled up yet are not in it (see the marks)."""
    if group_by not in GROUP_BYS:
        raise InvalidRequest(f"`group_by` must be one of {list(GROUP_BYS)}", code="invalid_group_by",
                             param="group_by")
    if since >= until:
        raise InvalidRequest("`since` must be before `until`", code="invalid_time_range", param="until")
    if until - since > timedelta(days=MAX_SUMMARY_DAYS):
        raise InvalidRequest(f"at most {MAX_SUMMARY_DAYS} days at once", code="invalid_time_range", param="since")
    key = {"day": R.c.period_start, "project": R.c.project_id, "model": R.c.model}[group_by]
    rows = (await session.execute(
        select(key.label("key"), func.sum(R.c.requests), func.sum(R.c.prompt_tokens),
               func.sum(R.c.completion_tokens), func.sum(R.c.cost_micros))
        .where(R.c.org_id == org_id, R.c.period == "hour",
               R.c.period_start >= bindparam("s", since, type_=UTCDateTime()),
               R.c.period_start < bindparam("u", until, type_=UTCDateTime()))
        .group_by(key))).all()
    out: dict[Any, list[int]] = {}
    for k, requests, prompt, completion, cost in rows:
        if group_by == "day":
            k = floor_period(k, "day").date().isoformat()
        acc = out.setdefault(k, [0, 0, 0, 0])
        for i, value in enumerate((requests, prompt, completion, cost)):
            acc[i] += int(value or 0)
    return [{"key": k, "requests": v[0], "prompt_tokens": v[1], "completion_tokens": v[2], "cost_micros": v[3]}
            for k, v in sorted(out.items(), key=lambda item: (item[0] is None, str(item[0])))]
