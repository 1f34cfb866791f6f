"""The overview: trends by day, model and org, top spenders, and the anomaly cards' numbers.

Everything is a small aggregate in the database; no rows are loaded to be summed here.

- Requests, tokens and cost come from ``usage_rollups``: whole days from the day rows (up to
  where days are rolled), the edges of the window from the hour rows. Hours not rolled up yet
  are not counted (``rolled_until`` says how far the roll-ups reach).
- Errors are requests answered with a status >= 400, counted from ``audit_logs`` (a partial
  index holds only those rows, so the count reads the errors alone).
- Anomalies: holds still open past their lease (reconciliation releases them), wallets whose
  balance is below ``low_balance_micros``, broken ledger invariants while the last scheduled
  reconciliation found some (its findings as recorded when they were first found), and
  today's error rate against the seven days before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..auth.models import Org
from ..billing.models import Hold, UsageRollup, Wallet
from ..billing.rollups import floor_period, rollup_marks
from ..db.base import utcnow
from ..errors import InvalidRequest
from ..webhooks.models import RECONCILE_ALERT_KEY, WebhookAlert
from ._query import at

R, A = cast(Table, UsageRollup.__table__), cast(Table, AuditLog.__table__)
H, W, ORG, AL = (cast(Table, m.__table__) for m in (Hold, Wallet, Org, WebhookAlert))
DAY = timedelta(days=1)
MAX_DAYS = 400
MEASURES = ("requests", "prompt_tokens", "completion_tokens", "cost_micros")


def _spans(since: datetime, until: datetime, day_mark: datetime | None) -> tuple[list[Any], list[Any]]:
    """(day-row spans, hour-row spans) that together cover ``[since, until)`` once."""
    first = floor_period(since, "day")
    first = first if first == since else first + DAY
    last = floor_period(min(day_mark, until), "day") if day_mark is not None else first
    if last <= first:
        return [], [(since, until)]
    return [(first, last)], [(since, first), (last, until)]


def _rollup_where(org_id: str | None, since: datetime, until: datetime, day_mark: datetime | None) -> Any:
    days, hours = _spans(since, until, day_mark)
    spans = [and_(R.c.period == period, R.c.period_start >= at(lo), R.c.period_start < at(hi))
             for period, group in (("day", days), ("hour", hours)) for lo, hi in group if lo < hi]
    where = or_(*spans)
    return and_(R.c.org_id == org_id, where) if org_id is not None else where


def _audit_day(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", A.c.created_at), "YYYY-MM-DD")
    return func.substr(A.c.created_at, 1, 10)


def _errors_where(org_id: str | None, since: datetime, until: datetime) -> list[Any]:
    where = [A.c.status_code >= 400, A.c.created_at >= at(since), A.c.created_at < at(until)]
    return where + ([A.c.org_id == org_id] if org_id is not None else [])


async def _trend(session: AsyncSession, by: str, rollup_where: Any, errors_where: list[Any]) -> list[dict[str, Any]]:
    key = {"day": R.c.period_start, "model": R.c.model, "org": R.c.org_id}[by]
    sums = [func.sum(R.c[m]) for m in MEASURES]
    out: dict[str, dict[str, Any]] = {}
    for row in (await session.execute(select(key, *sums).where(rollup_where).group_by(key))).all():
        name = floor_period(row[0], "day").date().isoformat() if by == "day" else row[0]
        acc = out.setdefault(name, {"key": name, **dict.fromkeys(MEASURES, 0), "errors": 0})
        for measure, value in zip(MEASURES, row[1:], strict=True):
            acc[measure] += int(value or 0)
    error_key = {"day": _audit_day(session), "model": A.c.model, "org": A.c.org_id}[by]
    errors = select(error_key, func.count()).where(*errors_where).group_by(error_key)
    for name, count in (await session.execute(errors)).all():
        if name is None:
            continue  # an error before the model or the caller was known: in the totals only
        acc = out.setdefault(name, {"key": name, **dict.fromkeys(MEASURES, 0), "errors": 0})
        acc["errors"] = int(count)
    return sorted(out.values(), key=lambda item: str(item["key"]))


async def _org_names(session: AsyncSession, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {r.id: r.name for r in (await session.execute(select(ORG.c.id, ORG.c.name).where(ORG.c.id.in_(ids)))).all()}


async def _requests_and_errors(session: AsyncSession, org_id: str | None, since: datetime,
                               until: datetime) -> dict[str, Any]:
    where = [A.c.created_at >= at(since), A.c.created_at < at(until)]
    where += [A.c.org_id == org_id] if org_id is not None else []
    total = int((await session.execute(select(func.count()).select_from(A).where(*where))).scalar_one())
    errors = int((await session.execute(
        select(func.count()).select_from(A).where(*_errors_where(org_id, since, until)))).scalar_one())
    return {"requests": total, "errors": errors, "error_rate": round(errors / total, 6) if total else None}


async def _anomalies(session: AsyncSession, org_id: str | None, now: datetime,
                     low_balance_micros: int) -> dict[str, Any]:
    org_h = [H.c.org_id == org_id] if org_id is not None else []
    lapsed = (await session.execute(select(func.count(), func.min(H.c.lease_expires_at)).where(
        H.c.state == "open", H.c.lease_expires_at < at(now), *org_h))).one()
    org_w = [W.c.org_id == org_id] if org_id is not None else []
    low_where = [W.c.balance_micros < low_balance_micros, *org_w]
    low_count = int((await session.execute(select(func.count()).select_from(W).where(*low_where))).scalar_one())
    lowest = (await session.execute(
        select(W.c.org_id, ORG.c.name, W.c.balance_micros, W.c.frozen_micros).join(ORG, ORG.c.id == W.c.org_id)
        .where(*low_where).order_by(W.c.balance_micros, W.c.org_id).limit(10))).all()
    reconcile = None
    if org_id is None:  # reconciliation is the deployment's, not an org's
        since = (await session.execute(select(AL.c.created_at).where(AL.c.key == RECONCILE_ALERT_KEY))).scalar()
        if since is not None:  # the last scheduled reconciliation found broken invariants
            found = (await session.execute(select(A.c.created_at, A.c.detail).where(A.c.kind == "worker.reconcile")
                                           .order_by(A.c.created_at.desc(), A.c.id.desc()).limit(1))).first()
            reconcile = {"finished_at": (found.created_at if found is not None else since).isoformat(),
                         "result": found.detail if found is not None else {"ok": False, "problems": []}}
    today = floor_period(now, "day")
    today_rate = await _requests_and_errors(session, org_id, today, now)
    baseline = await _requests_and_errors(session, org_id, today - 7 * DAY, today)
    ratio = (round(today_rate["error_rate"] / baseline["error_rate"], 3)
             if today_rate["error_rate"] is not None and baseline["error_rate"] else None)
    return {
        "holds_past_lease": {"count": int(lapsed[0]), "oldest_lease_expires_at": lapsed[1].isoformat()
                             if lapsed[1] is not None else None},
        "low_balances": {"threshold_micros": low_balance_micros, "count": low_count,
                         "lowest": [{"org_id": r.org_id, "org_name": r.name, "balance_micros": int(r.balance_micros),
                                     "frozen_micros": int(r.frozen_micros)} for r in lowest]},
        "reconciliation": reconcile,
        "error_rate": {"today": today_rate, "baseline_7d": baseline, "ratio": ratio},
    }


async def overview(session: AsyncSession, *, org_id: str | None, since: datetime, until: datetime,
                   top: int = 10, low_balance_micros: int = 1_000_000, now: datetime | None = None) -> dict[str, Any]:
    """The overview of ``org_id`` (``None``: every org) over ``[since, until)``: ``trends``
    (``by_day``, ``by_model``, ``by_org``: requests, tokens, cost, errors), ``top_spenders``
    (the ``top`` orgs by cost), ``anomalies`` and ``rolled_until``. Raises ``invalid_time_range``
    (empty, or longer than :data:`MAX_DAYS` days)."""
    if since >= until:
        raise InvalidRequest("`since` must be before `until`", code="invalid_time_range", param="until")
    if until - since > MAX_DAYS * DAY:
        raise InvalidRequest(f"at most {MAX_DAYS} days at once", code="invalid_time_range", param="since")
    marks = await rollup_marks(session)
    rollup_where = _rollup_where(org_id, since, until, marks.get("day"))
    errors_where = _errors_where(org_id, since, until)
    trends = {f"by_{by}": await _trend(session, by, rollup_where, errors_where) for by in ("day", "model", "org")}
    names = await _org_names(session, [row["key"] for row in trends["by_org"]])
    for row in trends["by_org"]:
        row["org_name"] = names.get(row["key"])
    spenders = sorted(trends["by_org"], key=lambda row: (-row["cost_micros"], row["key"]))[:top]
    return {
        "object": "overview", "since": since.isoformat(), "until": until.isoformat(), "org_id": org_id,
        "trends": trends, "top_spenders": [row for row in spenders if row["cost_micros"] > 0],
        "anomalies": await _anomalies(session, org_id, now or utcnow(), low_balance_micros),
        "rolled_until": {period: mark.isoformat() for period, mark in sorted(marks.items())},
    }

