"""Reconciliation: release holds whose lease lapsed, then check every ledger invariant.

:func:`reconcile` is a plain async function (the Worker schedules it; the CLI runs it as
``deepspace-lab billing reconcile``). :func:`check_invariants` is the read-only half, also
run by the tests after every billing test. The invariants, each checked in SQL so that only
violations come back (memory stays flat however long the ledger):

- per wallet: ``balance + frozen = credits − debits − captures + refunds``;
  ``frozen = Σ open holds``; ``balance ≥ −overdraft_limit``; ``frozen ≥ 0``;
- per hold: its hold entries (the hold and its top-ups) add up to its amount; exactly one
  terminal entry once resolved (a capture if captured, a release if released or expired),
  none while open; the capture entry equals ``captured_micros``; its refunds add up to
  ``refunded_micros``, never above the capture;
- every hold, capture, release and refund entry names its hold; every refund its capture;
- per usage row (a gateway request): its hold exists and is in the matching state (pending ↔
  open, captured ↔ captured with ``cost = captured``, released ↔ released, expired ↔
  expired), it held what the hold holds;
- per budget counter: ``reserved = Σ its open holds``, ``spent = Σ its captured holds``.

All checks read one snapshot (REPEATABLE READ on PostgreSQL, one read transaction on
SQLite), so writes running meanwhile never produce a false alarm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, case, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db.base import utcnow
from ._tx import require_idle
from ._types import LedgerEntry
from .ledger import expire_hold, lapsed_hold_ids
from .models import BudgetCounter, Hold, HoldBudgetCounter, Transaction, UsageRecord, Wallet

W, H, T, U = (cast(Table, m.__table__) for m in (Wallet, Hold, Transaction, UsageRecord))
C, L = (cast(Table, m.__table__) for m in (BudgetCounter, HoldBudgetCounter))
EXPIRE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    message: str
    subject: str  # the wallet or hold id

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "message": self.message}


@dataclass(slots=True)
class ReconcileReport:
    wallets_checked: int = 0
    holds_checked: int = 0
    expired: list[LedgerEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "wallets_checked": self.wallets_checked, "holds_checked": self.holds_checked,
                "expired_holds": [{"hold_id": e.hold_id, "ref": e.ref, "released_micros": e.amount_micros}
                                  for e in self.expired],
                "problems": [p.to_dict() for p in self.problems]}


def _sum_when(condition: Any, value: Any) -> Any:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


async def _wallet_problems(conn: AsyncConnection) -> list[Problem]:
    signed = case((T.c.type.in_(("credit", "refund")), T.c.amount_micros),
                  (T.c.type.in_(("debit", "capture")), -T.c.amount_micros), else_=0)
    net = select(T.c.wallet_id, func.sum(signed).label("net")).group_by(T.c.wallet_id).subquery()
    held = (select(H.c.wallet_id, func.sum(H.c.amount_micros).label("open"))
            .where(H.c.state == "open").group_by(H.c.wallet_id).subquery())
    net_micros, open_micros = func.coalesce(net.c.net, 0), func.coalesce(held.c.open, 0)
    rows = await conn.execute(
        select(W.c.id, W.c.balance_micros, W.c.frozen_micros, W.c.overdraft_limit_micros,
               net_micros.label("net"), open_micros.label("open"))
        .select_from(W.outerjoin(net, net.c.wallet_id == W.c.id).outerjoin(held, held.c.wallet_id == W.c.id))
        .where(or_(W.c.balance_micros + W.c.frozen_micros != net_micros, W.c.frozen_micros != open_micros,
                   W.c.balance_micros + W.c.overdraft_limit_micros < 0, W.c.frozen_micros < 0)))
    problems = []
    for r in rows:
        if r.balance_micros + r.frozen_micros != r.net:
            problems.append(Problem("wallet_total", f"balance + frozen = {r.balance_micros + r.frozen_micros}, "
                                    f"but credits - debits - captures + refunds = {r.net}", r.id))
        if r.frozen_micros != r.open:
            problems.append(Problem("wallet_frozen", f"frozen = {r.frozen_micros}, open holds = {r.open}", r.id))
        if r.balance_micros + r.overdraft_limit_micros < 0 or r.frozen_micros < 0:
            problems.append(Problem("wallet_bounds", f"balance {r.balance_micros} below -overdraft "
                                    f"{r.overdraft_limit_micros} or frozen {r.frozen_micros} negative", r.id))
    return problems


async def _hold_problems(conn: AsyncConnection) -> list[Problem]:
    per_hold = (select(T.c.hold_id,
                       _sum_when(T.c.type == "hold", T.c.amount_micros).label("held"),
                       _sum_when(T.c.type == "capture", 1).label("captures"),
                       _sum_when(T.c.type == "release", 1).label("releases"),
                       _sum_when(T.c.type == "capture", T.c.amount_micros).label("captured"),
                       _sum_when(T.c.type == "refund", T.c.amount_micros).label("refunded"))
                .where(T.c.hold_id.is_not(None)).group_by(T.c.hold_id).subquery())
    held, captures, releases = (func.coalesce(per_hold.c[n], 0) for n in ("held", "captures", "releases"))
    captured, refunded = func.coalesce(per_hold.c.captured, 0), func.coalesce(per_hold.c.refunded, 0)
    terminal_ok = case(
        (H.c.state == "open", and_(captures == 0, releases == 0)),
        (H.c.state == "captured", and_(captures == 1, releases == 0, captured == H.c.captured_micros)),
        else_=and_(captures == 0, releases == 1, H.c.captured_micros == 0))
    consistent = and_(held == H.c.amount_micros, terminal_ok, refunded == H.c.refunded_micros,
                      H.c.refunded_micros <= H.c.captured_micros)
    rows = await conn.execute(
        select(H.c.id, H.c.state, H.c.amount_micros, H.c.captured_micros, H.c.refunded_micros,
               held.label("held"), captures.label("captures"), releases.label("releases"),
               captured.label("captured"), refunded.label("refunded"))
        .select_from(H.outerjoin(per_hold, per_hold.c.hold_id == H.c.id)).where(not_(consistent)))
    return [Problem("hold_entries", f"hold is {r.state}: amount {r.amount_micros} vs hold entries {r.held}; "
                    f"{r.captures} capture(s) of {r.captured} (hold says {r.captured_micros}); {r.releases} "
                    f"release(s); refunds {r.refunded} (hold says {r.refunded_micros})", r.id) for r in rows]


async def _orphan_problems(conn: AsyncConnection) -> list[Problem]:
    rows = await conn.execute(select(T.c.id, T.c.type).where(or_(
        and_(T.c.type.in_(("hold", "capture", "release", "refund")), T.c.hold_id.is_(None)),
        and_(T.c.type == "refund", T.c.refund_of.is_(None)))))
    return [Problem("entry_links", f"{r.type} entry without its hold or capture", str(r.id)) for r in rows]


async def _usage_problems(conn: AsyncConnection) -> list[Problem]:
    state = case((U.c.status == "pending", "open"), else_=U.c.status)
    rows = await conn.execute(
        select(U.c.request_id, U.c.status, U.c.cost_micros, U.c.held_micros, H.c.state, H.c.captured_micros,
               H.c.amount_micros)
        .select_from(U.outerjoin(H, H.c.request_id == U.c.request_id))
        .where(or_(H.c.id.is_(None), H.c.state != state, U.c.cost_micros != H.c.captured_micros,
                   U.c.held_micros != H.c.amount_micros)))
    return [Problem("usage_row", f"usage row is {r.status} (cost {r.cost_micros}, held {r.held_micros}) but its "
                    f"hold is {r.state or 'missing'} (captured {r.captured_micros}, amount {r.amount_micros})",
                    r.request_id) for r in rows]


async def _budget_problems(conn: AsyncConnection) -> list[Problem]:
    per_counter = (select(L.c.counter_id,
                          _sum_when(H.c.state == "open", H.c.amount_micros).label("reserved"),
                          _sum_when(H.c.state == "captured", H.c.captured_micros).label("spent"))
                   .select_from(L.join(H, H.c.id == L.c.hold_id)).group_by(L.c.counter_id).subquery())
    reserved, spent = func.coalesce(per_counter.c.reserved, 0), func.coalesce(per_counter.c.spent, 0)
    rows = await conn.execute(
        select(C.c.id, C.c.reserved_micros, C.c.spent_micros, reserved.label("reserved"), spent.label("spent"))
        .select_from(C.outerjoin(per_counter, per_counter.c.counter_id == C.c.id))
        .where(or_(C.c.reserved_micros != reserved, C.c.spent_micros != spent)))
    return [Problem("budget_counter", f"counter says reserved {r.reserved_micros}, spent {r.spent_micros}; its holds "
                    f"say reserved {r.reserved}, spent {r.spent}", str(r.id)) for r in rows]


async def check_invariants(session: AsyncSession) -> ReconcileReport:
    """Check every invariant on one snapshot; read-only. Needs an idle session."""
    require_idle(session)
    report = ReconcileReport()
    try:
        if session.get_bind().dialect.name == "postgresql":
            conn = await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        else:
            conn = await session.connection()
            await conn.exec_driver_sql("BEGIN")  # one read snapshot for every statement below
        count = func.count()
        report.wallets_checked = (await conn.execute(select(count).select_from(W))).scalar_one()
        report.holds_checked = (await conn.execute(select(count).select_from(H))).scalar_one()
        for check in (_wallet_problems, _hold_problems, _orphan_problems, _usage_problems, _budget_problems):
            report.problems.extend(await check(conn))
    finally:
        await session.rollback()
    return report


async def reconcile(session: AsyncSession, *, now: datetime | None = None, actor: str = "reconcile",
                    expire: bool = True) -> ReconcileReport:
    """Release every hold whose lease lapsed before ``now`` (each in its own short
    transaction), then check the invariants. ``report.ok`` is False when one is broken."""
    at = now or utcnow()
    expired: list[LedgerEntry] = []
    while expire:
        ids = await lapsed_hold_ids(session, now=at, limit=EXPIRE_BATCH)
        before = len(expired)
        for hold_id in ids:
            entry = await expire_hold(session, hold_id=hold_id, actor=actor, now=at)
            if entry is not None:
                expired.append(entry)
        if len(ids) < EXPIRE_BATCH or len(expired) == before:
            break
    report = await check_invariants(session)
    report.expired = expired
    return report

