"""Budget caps per org, project and API key, per UTC day or month.

A budget's spend in a period is what was captured plus what open holds reserve, so
concurrent requests can never overshoot it together: a hold reserves its whole (worst-case)
amount on every budget that applies to the request — org, project, key — in the same
transaction as the hold itself, or on none of them (``BudgetExceededError``, and nothing
changes anywhere). The capture (or release) gives the reservation back and counts what was
spent, on the very counters the hold reserved on (``hold_budget_counters``), so a request
that straddles midnight settles in the period it started in.

Periods are UTC: a day starts at 00:00 UTC, a month on its first day at 00:00 UTC. A refused
request gets ``Retry-After`` at the start of the next period of the budget that refused it.

On PostgreSQL the pipeline's one-statement hold refuses itself whenever a budget applies
(see ``_pg.PLACE_HOLD_WITH_USAGE``); the ledger then runs this module's transaction, where
the counter rows are locked in id order (after the wallet row: the same order as captures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..auth.models import ApiKey, Org, Project
from ..db.base import utcnow
from ..errors import InvalidRequest, NotFound, RateLimited
from .errors import OrgNotFoundError
from .models import BUDGET_PERIODS, BUDGET_SCOPES, Budget, BudgetCounter, HoldBudgetCounter

_B = cast(Table, Budget.__table__)
_C = cast(Table, BudgetCounter.__table__)
_L = cast(Table, HoldBudgetCounter.__table__)
MAX_LIMIT_MICROS = 2**53


class BudgetExceededError(RateLimited):
    """429 ``budget_exceeded``: a cap is reached; ``Retry-After`` names the next period."""

    default_code = "budget_exceeded"
    retryable = False


class BudgetNotFoundError(NotFound):
    default_code = "budget_not_found"


@dataclass(frozen=True, slots=True)
class BudgetView:
    id: int
    org_id: str
    scope: str
    scope_id: str
    period: str
    limit_micros: int
    spent_micros: int = 0
    reserved_micros: int = 0
    period_start: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "org_id": self.org_id, "scope": self.scope, "scope_id": self.scope_id,
                "period": self.period, "limit_micros": self.limit_micros, "spent_micros": self.spent_micros,
                "reserved_micros": self.reserved_micros,
                "remaining_micros": max(self.limit_micros - self.spent_micros - self.reserved_micros, 0),
                "period_start": self.period_start.isoformat() if self.period_start else None}


def period_start(period: str, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def next_period_start(period: str, at: datetime) -> datetime:
    start = period_start(period, at)
    if period == "day":
        return start + timedelta(days=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _exceeded(budget: Any, now: datetime) -> BudgetExceededError:
    """``budget`` (scope, period, limit_micros) is full: 429 with ``Retry-After`` at its next period."""
    until = next_period_start(budget.period, now)
    return BudgetExceededError(
        f"the {budget.scope}'s {_PERIOD_NAMES[budget.period]} budget of {budget.limit_micros} micro-credits "
        f"is reached; it resets at {until.isoformat()}",
        retry_after_s=max(1, int((until - now).total_seconds()) + 1),
        detail={"scope": budget.scope, "period": budget.period, "limit_micros": budget.limit_micros,
                "resets_at": until.isoformat()})


def scopes_of(*, org_id: str, project_id: str | None, api_key_id: str | None) -> dict[str, str | None]:
    """The ``b_*`` parameters the ledger's budget guard and reservation take."""
    return {"b_org": org_id, "b_project": project_id, "b_key": api_key_id}


def _matching(p: Mapping[str, Any]) -> Any:
    return ((_B.c.scope == "org") & (_B.c.scope_id == p.get("b_org"))) | (
        (_B.c.scope == "project") & (_B.c.scope_id == p.get("b_project"))) | (
        (_B.c.scope == "key") & (_B.c.scope_id == p.get("b_key")))


def _insert_ignore(conn: AsyncConnection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def reserve(conn: AsyncConnection, p: Mapping[str, Any], *, hold_id: str, amount: int) -> None:
    """Reserve ``amount`` on every budget that applies, or raise ``BudgetExceededError``.

    Runs inside the hold's transaction (after the hold's wallet update): the caller's
    rollback undoes every reservation already made.
    """
    now = p["now"]
    budgets = (await conn.execute(select(_B.c.id, _B.c.scope, _B.c.period, _B.c.limit_micros)
                                  .where(_matching(p)).order_by(_B.c.id))).all()
    for budget in budgets:
        start = period_start(budget.period, now)
        await conn.execute(_insert_ignore(conn, _C).values(
            budget_id=budget.id, period_start=start, reserved_micros=0, spent_micros=0,
        ).on_conflict_do_nothing(index_elements=["budget_id", "period_start"]))
        counter = (await conn.execute(
            update(_C).where(_C.c.budget_id == budget.id, _C.c.period_start == start,
                             _C.c.reserved_micros + _C.c.spent_micros + amount <= budget.limit_micros)
            .values(reserved_micros=_C.c.reserved_micros + amount).returning(_C.c.id))).first()
        if counter is None:
            raise _exceeded(budget, now)
        await conn.execute(insert(_L).values(hold_id=hold_id, counter_id=counter.id))


async def top_up(conn: AsyncConnection, *, hold_id: str, amount: int, now: datetime) -> None:
    """A hold grew: reserve the extra on the counters it reserved on, or refuse."""
    rows = (await conn.execute(
        select(_C.c.id, _B.c.scope, _B.c.period, _B.c.limit_micros)
        .join(_L, _L.c.counter_id == _C.c.id).join(_B, _B.c.id == _C.c.budget_id)
        .where(_L.c.hold_id == hold_id).order_by(_C.c.id))).all()
    for row in rows:
        done = (await conn.execute(
            update(_C).where(_C.c.id == row.id, _C.c.reserved_micros + _C.c.spent_micros + amount <= row.limit_micros)
            .values(reserved_micros=_C.c.reserved_micros + amount).returning(_C.c.id))).first()
        if done is None:
            raise _exceeded(row, now)


async def settle(conn: AsyncConnection, *, hold_id: str, held: int, spent: int) -> None:
    """The hold resolved: give back ``held``, count ``spent`` (the generic path's version of
    ``_pg._settle_budgets``)."""
    ids = select(_L.c.counter_id).where(_L.c.hold_id == hold_id).scalar_subquery()
    await conn.execute(update(_C).where(_C.c.id.in_(ids)).values(
        reserved_micros=_C.c.reserved_micros - held, spent_micros=_C.c.spent_micros + spent))


_PERIOD_NAMES = {"day": "daily", "month": "monthly"}


# -- operators ---------------------------------------------------------------------------------

def _check(scope: str, period: str, limit_micros: object) -> int:
    if scope not in BUDGET_SCOPES:
        raise InvalidRequest(f"`scope` must be one of {list(BUDGET_SCOPES)}", code="invalid_scope", param="scope")
    if period not in BUDGET_PERIODS:
        raise InvalidRequest(f"`period` must be one of {list(BUDGET_PERIODS)}", code="invalid_period",
                             param="period")
    if isinstance(limit_micros, bool) or not isinstance(limit_micros, int) or not (
            0 <= limit_micros <= MAX_LIMIT_MICROS):
        raise InvalidRequest(f"`limit_micros` must be a whole number between 0 and {MAX_LIMIT_MICROS}",
                             code="invalid_amount", param="limit_micros")
    return limit_micros


async def budget_scope_id(session: AsyncSession, *, org_id: str, scope: str, scope_id: str | None) -> str:
    """The id a budget of ``scope`` in ``org_id`` caps, checked to belong to that org (the CLI's
    ``--id`` and the Admin API's ``scope_id``): an org budget's id is the org itself (or left
    out), a project's or key's must be given and be the org's, else ``budget_not_found``."""
    if scope not in BUDGET_SCOPES:
        raise InvalidRequest(f"`scope` must be one of {list(BUDGET_SCOPES)}", code="invalid_scope", param="scope")
    if (await session.execute(select(Org.id).where(Org.id == org_id))).first() is None:
        raise OrgNotFoundError(f"no org {org_id!r}", param="org")
    if scope == "org":
        if scope_id not in (None, org_id):
            raise InvalidRequest("an org budget's id is the org itself; leave it out", code="invalid_scope",
                                 param="id")
        return org_id
    if not scope_id:
        raise InvalidRequest(f"name the {scope} the budget caps (its id)", code="missing_field", param="id")
    model = Project if scope == "project" else ApiKey
    owner = (await session.execute(select(model.org_id).where(model.id == scope_id))).scalar_one_or_none()
    if owner != org_id:
        raise BudgetNotFoundError(f"no {scope} {scope_id!r} in org {org_id!r}", param="id")
    return scope_id


async def set_budget(session: AsyncSession, *, org_id: str, scope: str, scope_id: str, period: str,
                     limit_micros: int, actor: str | None = None) -> tuple[BudgetView, BudgetView | None]:
    """Create or change a cap (flushed; the caller commits). Returns (after, before)."""
    limit = _check(scope, period, limit_micros)
    row = (await session.execute(select(Budget).where(Budget.scope == scope, Budget.scope_id == scope_id,
                                                      Budget.period == period))).scalar_one_or_none()
    before = _view(row) if row is not None else None
    if row is not None and row.org_id != org_id:
        raise BudgetNotFoundError(f"no {scope} {scope_id!r} in this org", param="scope_id")
    if row is None:
        row = Budget(org_id=org_id, scope=scope, scope_id=scope_id, period=period, limit_micros=limit, actor=actor)
        session.add(row)
    else:
        row.limit_micros, row.actor, row.updated_at = limit, actor, utcnow()
    await session.flush()
    return _view(row), before


async def delete_budget(session: AsyncSession, *, org_id: str, scope: str, scope_id: str, period: str,
                        ) -> BudgetView:
    """Remove a cap (flushed; the caller commits); returns what it was."""
    _check(scope, period, 0)
    row = (await session.execute(select(Budget).where(
        Budget.org_id == org_id, Budget.scope == scope, Budget.scope_id == scope_id, Budget.period == period,
    ))).scalar_one_or_none()
    if row is None:
        raise BudgetNotFoundError(f"no {period} budget for {scope} {scope_id!r}")
    before = _view(row)
    # Counters and their hold links go with it (ON DELETE CASCADE on PostgreSQL; explicit for SQLite).
    counters = select(_C.c.id).where(_C.c.budget_id == row.id).scalar_subquery()
    await session.execute(delete(_L).where(_L.c.counter_id.in_(counters)))
    await session.execute(delete(_C).where(_C.c.budget_id == row.id))
    await session.delete(row)
    await session.flush()
    return before


def _view(row: Budget, counter: Any = None) -> BudgetView:
    return BudgetView(id=row.id, org_id=row.org_id, scope=row.scope, scope_id=row.scope_id, period=row.period,
                      limit_micros=row.limit_micros,
                      spent_micros=counter.spent_micros if counter is not None else 0,
                      reserved_micros=counter.reserved_micros if counter is not None else 0,
                      period_start=counter.period_start if counter is not None else None)


async def list_budgets(session: AsyncSession, *, org_id: str | None = None, scopes: Sequence[str] = (),
                       now: datetime | None = None) -> list[BudgetView]:
    """Caps (all, or one org's) with what the current period has spent and reserved."""
    at = now or utcnow()
    query = select(Budget).order_by(Budget.org_id, Budget.scope, Budget.scope_id, Budget.period)
    if org_id is not None:
        query = query.where(Budget.org_id == org_id)
    if scopes:
        query = query.where(Budget.scope_id.in_(scopes))
    out = []
    for row in (await session.execute(query)).scalars():
        counter = (await session.execute(select(_C.c.spent_micros, _C.c.reserved_micros, _C.c.period_start).where(
            _C.c.budget_id == row.id, _C.c.period_start == period_start(row.period, at)))).first()
        out.append(_view(row, counter))
    return out


async def page_budgets(session: AsyncSession, *, org_id: str | None = None, after_id: int | None = None,
                       limit: int = 50, now: datetime | None = None) -> tuple[list[BudgetView], int | None]:
    """Caps (all, or one org's) a page at a time in id order, each with what its current period
    has spent and reserved (one query for the page's counters); returns (page, the id to pass
    as ``after_id`` for the next page, or None at the end)."""
    at = now or utcnow()
    query = select(Budget).order_by(Budget.id)
    if org_id is not None:
        query = query.where(Budget.org_id == org_id)
    if after_id is not None:
        query = query.where(Budget.id > after_id)
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    page = rows[:limit]
    starts = {period_start(p, at) for p in BUDGET_PERIODS}
    counters = {(c.budget_id, c.period_start): c for c in (await session.execute(
        select(_C.c.budget_id, _C.c.spent_micros, _C.c.reserved_micros, _C.c.period_start).where(
            _C.c.budget_id.in_([b.id for b in page]), _C.c.period_start.in_(starts)))).all()}
    views = [_view(b, counters.get((b.id, period_start(b.period, at)))) for b in page]
    return views, page[-1].id if len(rows) > limit else None
