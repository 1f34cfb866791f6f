"""What fires webhooks: a scheduled pass (every minute) that finds the conditions in force now
and queues an event for each one that was not in force at the last pass.

Conditions (each with a key; the ``webhook_alerts`` table keeps the keys that have fired):

- ``budget.threshold``: a budget's spend this period (captured, not reserved) reached 80 % or
  100 % of its cap — key per budget, period and threshold, so each period fires afresh;
- ``wallet.low_balance``: an org's balance is below ``DEEPSPACE_WEBHOOK_LOW_BALANCE_MICROS``;
- ``usage.anomaly``: holds still open past their lease (a crashed request, until reconciliation
  releases them), an org's error rate in the last hour at least 3× the 24 hours before (and at
  least 20 requests, 20 % errors), an org's spend in the last hour at least 3× its hourly
  average over the 24 hours before (and at least ``SPEND_SPIKE["min_micros"]``; an org with no
  spend before has no baseline and never spikes), and — from the reconcile task — ledger
  invariants broken.

A condition fires once per crossing: its key is inserted when it first holds (a second worker
running the same pass loses the insert and sends nothing) and deleted once it no longer
holds, so the next crossing fires again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..audit.models import AuditLog
from ..billing.budgets import period_start
from ..billing.models import BUDGET_PERIODS, Budget, BudgetCounter, Hold, UsageRecord, Wallet
from ..config import Settings
from ..db.base import utcnow
from ..observe._query import at as _at
from ..tracing import new_trace_id
from ..webhooks.models import RECONCILE_ALERT_KEY, WebhookAlert
from .queue import JobQueue
from .webhooks import publish_event

B, C, H, W, A = (cast(Table, m.__table__) for m in (Budget, BudgetCounter, Hold, Wallet, AuditLog))
AL, U = cast(Table, WebhookAlert.__table__), cast(Table, UsageRecord.__table__)
BUDGET_THRESHOLDS = (80, 100)
ERROR_SPIKE = {"min_requests": 20, "min_rate": 0.2, "ratio": 3.0}
SPEND_SPIKE = {"min_micros": 1_000_000, "ratio": 3.0}
#: the key prefixes the minute pass decides (reconciliation's are the reconcile task's)
PASS_PREFIXES = ("budget:", "low_balance:", "anomaly:holds:", "anomaly:errors:", "anomaly:spend:")


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    event: str
    org_id: str | None
    data: dict[str, Any]


async def _budgets(conn: Any, now: datetime) -> list[Condition]:
    starts = {period: period_start(period, now) for period in BUDGET_PERIODS}
    rows = (await conn.execute(select(B.c.id, B.c.org_id, B.c.scope, B.c.scope_id, B.c.period, B.c.limit_micros,
                                      C.c.period_start, C.c.spent_micros)
                               .join(C, C.c.budget_id == B.c.id)
                               .where(C.c.period_start.in_(sorted(set(starts.values()))), B.c.limit_micros > 0))).all()
    found = []
    for r in rows:
        if r.period_start != starts[r.period]:
            continue
        for pct in BUDGET_THRESHOLDS:
            if r.spent_micros * 100 >= r.limit_micros * pct:
                found.append(Condition(
                    f"budget:{r.id}:{r.period_start.date().isoformat()}:{pct}", "budget.threshold", r.org_id,
                    {"budget_id": r.id, "scope": r.scope, "scope_id": r.scope_id, "period": r.period,
                     "period_start": r.period_start.isoformat(), "threshold_percent": pct,
                     "limit_micros": int(r.limit_micros), "spent_micros": int(r.spent_micros)}))
    return found


async def _low_balances(conn: Any, threshold: int) -> list[Condition]:
    rows = (await conn.execute(select(W.c.org_id, W.c.balance_micros, W.c.frozen_micros)
                               .where(W.c.balance_micros < threshold))).all()
    return [Condition(f"low_balance:{r.org_id}", "wallet.low_balance", r.org_id,
                      {"balance_micros": int(r.balance_micros), "frozen_micros": int(r.frozen_micros),
                       "threshold_micros": threshold}) for r in rows]


async def _stuck_holds(conn: Any, now: datetime) -> list[Condition]:
    rows = (await conn.execute(select(H.c.org_id, func.count(), func.min(H.c.lease_expires_at))
                               .where(H.c.state == "open", H.c.lease_expires_at < _at(now)).group_by(H.c.org_id))).all()
    return [Condition(f"anomaly:holds:{org}", "usage.anomaly", org,
                      {"kind": "holds_past_lease", "count": int(n), "oldest_lease_expires_at": oldest.isoformat()})
            for org, n, oldest in rows]


def _in(column: Any, since: datetime, until: datetime) -> Any:
    return (column >= _at(since)) & (column < _at(until))


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sum_if(condition: Any, value: Any) -> Any:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


async def _error_spikes(conn: Any, now: datetime) -> list[Condition]:
    """One pass over the 25 hours: per org, requests and errors of the last hour and of the 24
    hours before it."""
    hour, day = now - timedelta(hours=1), now - timedelta(hours=25)
    recent, bad = _in(A.c.created_at, hour, now), A.c.status_code >= 400
    rows = (await conn.execute(select(A.c.org_id, _count_if(recent), _count_if(recent & bad), _count_if(~recent),
                                      _count_if(~recent & bad))
                               .where(_in(A.c.created_at, day, now), A.c.org_id.is_not(None))
                               .group_by(A.c.org_id))).all()
    found = []
    for org, total, errors, base_total, base_errors in rows:
        if not total:
            continue
        rate = errors / total
        base_rate = base_errors / base_total if base_total else 0.0
        if total >= ERROR_SPIKE["min_requests"] and rate >= ERROR_SPIKE["min_rate"] and (
                rate >= ERROR_SPIKE["ratio"] * base_rate):
            found.append(Condition(f"anomaly:errors:{org}", "usage.anomaly", org, {
                "kind": "error_rate", "requests": int(total), "errors": int(errors), "error_rate": round(rate, 4),
                "baseline_error_rate": round(base_rate, 4), "window": "1h", "baseline_window": "24h"}))
    return found


async def _spend_spikes(conn: Any, now: datetime) -> list[Condition]:
    """One pass over the 25 hours: per org, the spend of the last hour against its hourly average
    over the 24 hours before it."""
    hour, day = now - timedelta(hours=1), now - timedelta(hours=25)
    recent = _in(U.c.created_at, hour, now)
    rows = (await conn.execute(select(U.c.org_id, _sum_if(recent, U.c.cost_micros), _sum_if(~recent, U.c.cost_micros))
                               .where(_in(U.c.created_at, day, now)).group_by(U.c.org_id))).all()
    found = []
    for org, spent, before in rows:
        spent, hourly = int(spent), int(before) / 24
        if spent >= SPEND_SPIKE["min_micros"] and hourly > 0 and spent >= SPEND_SPIKE["ratio"] * hourly:
            found.append(Condition(f"anomaly:spend:{org}", "usage.anomaly", org, {
                "kind": "spend_spike", "spent_micros": spent, "baseline_hourly_micros": round(hourly),
                "window": "1h", "baseline_window": "24h"}))
    return found


async def current_conditions(engine: AsyncEngine, settings: Settings, *,
                             now: datetime | None = None) -> list[Condition]:
    """Every condition of :data:`PASS_PREFIXES` in force at ``now``."""
    at = now or utcnow()
    async with engine.connect() as conn:
        return [*await _budgets(conn, at), *await _low_balances(conn, settings.webhook_low_balance_micros),
                *await _stuck_holds(conn, at), *await _error_spikes(conn, at), *await _spend_spikes(conn, at)]


async def clear_alerts(engine: AsyncEngine, *, prefixes: tuple[str, ...], keep: frozenset[str] = frozenset()
                       ) -> tuple[set[str], list[str]]:
    """Forget the fired keys under ``prefixes`` not in ``keep`` (they no longer hold); returns
    (the fired keys still kept, the keys forgotten)."""
    async with engine.connect() as conn:
        fired = {k for (k,) in (await conn.execute(
            select(AL.c.key).where(or_(*(AL.c.key.startswith(p, autoescape=True) for p in prefixes))))).all()}
    cleared = sorted(fired - keep)
    if cleared:
        async with engine.begin() as conn:
            await conn.execute(delete(AL).where(AL.c.key.in_(cleared)))
    return fired - set(cleared), cleared


async def sync_alerts(engine: AsyncEngine, queue: JobQueue, conditions: Iterable[Condition], *,
                      prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Fire the conditions that are new, forget the fired ones (under ``prefixes``) that no
    longer hold; returns what fired and what cleared."""
    now_in_force = {c.key: c for c in conditions}
    fired, cleared = await clear_alerts(engine, prefixes=prefixes, keep=frozenset(now_in_force))
    sent: list[str] = []
    for key in sorted(set(now_in_force) - fired):
        cond = now_in_force[key]
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(AL).values(key=key, org_id=cond.org_id, event=cond.event,
                                                     created_at=utcnow()))
        except IntegrityError:
            continue  # another worker's pass fired it
        await publish_event(engine, queue, event=cond.event, org_id=cond.org_id, data=cond.data)
        sent.append(key)
    return {"fired": sent, "cleared": cleared}


async def check_alerts(engine: AsyncEngine, queue: JobQueue, settings: Settings, *,
                       now: datetime | None = None) -> dict[str, Any]:
    """The scheduled pass: find the conditions, fire the new ones, clear the gone ones."""
    return await sync_alerts(engine, queue, await current_conditions(engine, settings, now=now),
                             prefixes=PASS_PREFIXES)


RECONCILE_KEY = RECONCILE_ALERT_KEY


async def reconciliation_alert(engine: AsyncEngine, queue: JobQueue, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """After a reconcile that found broken invariants: one ``usage.anomaly`` to the global hooks
    (once, until a reconcile finds none: :func:`clear_alerts` with :data:`RECONCILE_KEY`). When
    it first fires, the findings go on record as a ``worker.reconcile`` audit row, which the
    admin overview shows while the alert stands."""
    found = Condition(RECONCILE_KEY, "usage.anomaly", None,
                      {"kind": "reconciliation", "problems": len(problems), "first": problems[:5]})
    outcome = await sync_alerts(engine, queue, [found], prefixes=(RECONCILE_KEY,))
    if outcome["fired"]:
        async with engine.begin() as conn:
            await conn.execute(insert(A).values(
                trace_id=new_trace_id(), kind="worker.reconcile", actor="worker:reconcile", created_at=utcnow(),
                detail={"ok": False, "problems": problems[:20], "problem_count": len(problems)}))
    return outcome
