"""Every ledger operation as a few statements in one transaction (SQLite, and PostgreSQL for
the operations that are not on the hot path). Run by :func:`._tx.run_transaction`.

Each function takes the operation's parameters (``p``), returns the new entry, or ``None``
when a condition did not match — the runner then rolls back whatever was already done.
Same lock order as :mod:`._pg`: the hold row first, then the wallet row, then budget
counters. A pipeline request's parameters also carry its usage row (``u_*``) and its budget
scopes (``b_*``): the hold reserves on the budgets and writes the pending row, the capture or
release settles both, all in the operation's one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import budgets, usage
from ._types import ENTRY_COLUMNS, LedgerEntry
from .models import Hold, Transaction, Wallet

W = cast(Table, Wallet.__table__)
H = cast(Table, Hold.__table__)
T = cast(Table, Transaction.__table__)
_ENTRY = [T.c[name] for name in ENTRY_COLUMNS]
_AVAILABLE = W.c.balance_micros + W.c.overdraft_limit_micros

P = Mapping[str, Any]


async def _move(
    conn: AsyncConnection, *where: ColumnElement[bool], balance_delta: Any, frozen_delta: Any = 0
) -> Row[Any] | None:
    stmt = (update(W).where(*where)
            .values(balance_micros=W.c.balance_micros + balance_delta, frozen_micros=W.c.frozen_micros + frozen_delta)
            .returning(W.c.id, W.c.balance_micros, W.c.frozen_micros))
    return (await conn.execute(stmt)).first()


async def _entry(conn: AsyncConnection, wallet: Row[Any], **values: Any) -> LedgerEntry:
    stmt = insert(T).values(wallet_id=wallet.id, balance_after_micros=wallet.balance_micros,
                            frozen_after_micros=wallet.frozen_micros, **values).returning(*_ENTRY)
    return LedgerEntry.from_row((await conn.execute(stmt)).one()._mapping)


def _ids(p: P, hold: Row[Any] | None = None) -> dict[str, Any]:
    """trace and request ids of the entry: the caller's, else the hold's."""
    return {"trace_id": p.get("trace_id") or (hold.trace_id if hold is not None else None),
            "request_id": p.get("request_id") or (hold.request_id if hold is not None else None),
            "created_at": p["now"]}


async def place_hold(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    amount = p["amount"]
    wallet = await _move(conn, W.c.org_id == p["org_id"], _AVAILABLE >= amount,
                         balance_delta=-amount, frozen_delta=amount)
    if wallet is None:
        return None
    await conn.execute(insert(H).values(
        id=p["hold_id"], org_id=p["org_id"], wallet_id=wallet.id, ref=p["ref"], amount_micros=amount, state="open",
        captured_micros=0, refunded_micros=0, price_id=p["price_id"], lease_expires_at=p["lease_expires_at"],
        trace_id=p["trace_id"], request_id=p["request_id"], created_at=p["now"]))
    if "b_org" in p:
        await budgets.reserve(conn, p, hold_id=p["hold_id"], amount=amount)
    if "u_request_id" in p:
        await usage.insert_pending(conn, p)
    return await _entry(conn, wallet, org_id=p["org_id"], hold_id=p["hold_id"], type="hold", ref=p["ref"],
                        amount_micros=amount, **_ids(p))


async def top_up_hold(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    amount = p["amount"]
    hold = (await conn.execute(
        update(H).where(H.c.ref == p["hold_ref"], H.c.state == "open", H.c.lease_expires_at > p["now"])
        .values(amount_micros=H.c.amount_micros + amount)
        .returning(H.c.id, H.c.org_id, H.c.wallet_id, H.c.trace_id, H.c.request_id))).first()
    if hold is None:
        return None
    wallet = await _move(conn, W.c.id == hold.wallet_id, _AVAILABLE >= amount,
                         balance_delta=-amount, frozen_delta=amount)
    if wallet is None:
        return None
    await budgets.top_up(conn, hold_id=hold.id, amount=amount, now=p["now"])
    await usage.grow(conn, request_id=hold.request_id, amount=amount)
    return await _entry(conn, wallet, org_id=hold.org_id, hold_id=hold.id, type="hold", ref=p["ref"],
                        amount_micros=amount, **_ids(p, hold))


_RESOLVED = (H.c.id, H.c.org_id, H.c.wallet_id, H.c.ref, H.c.amount_micros, H.c.trace_id, H.c.request_id)


async def capture_hold(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    amount = p["amount"]
    hold = (await conn.execute(
        update(H).where(H.c.ref == p["ref"], H.c.state == "open", H.c.lease_expires_at > p["now"])
        .values(state="captured", captured_micros=amount, resolved_at=p["now"]).returning(*_RESOLVED))).first()
    if hold is None:
        return None
    held = hold.amount_micros
    # Above the hold, the excess comes out of the balance, within the overdraft allowance.
    wallet = await _move(conn, W.c.id == hold.wallet_id, _AVAILABLE + held - amount >= 0,
                         balance_delta=held - amount, frozen_delta=-held)
    if wallet is None:
        return None
    await budgets.settle(conn, hold_id=hold.id, held=held, spent=amount)
    if "u_measured" in p:
        await usage.complete(conn, p, request_id=hold.request_id, status="captured", cost_micros=amount)
    return await _entry(conn, wallet, org_id=hold.org_id, hold_id=hold.id, type="capture", ref=p["ref"],
                        amount_micros=amount, **_ids(p, hold))


async def _release(conn: AsyncConnection, p: P, *where: ColumnElement[bool], state: str) -> LedgerEntry | None:
    hold = (await conn.execute(
        update(H).where(*where, H.c.state == "open").values(state=state, resolved_at=p["now"])
        .returning(*_RESOLVED))).first()
    if hold is None:
        return None
    held = hold.amount_micros
    wallet = await _move(conn, W.c.id == hold.wallet_id, balance_delta=held, frozen_delta=-held)
    assert wallet is not None  # the hold's wallet exists (foreign key)
    await budgets.settle(conn, hold_id=hold.id, held=held, spent=0)
    if state == "expired":
        await usage.mark_expired(conn, p, request_id=hold.request_id)
    elif "u_measured" in p:
        await usage.complete(conn, p, request_id=hold.request_id, status="released", cost_micros=0)
    return await _entry(conn, wallet, org_id=hold.org_id, hold_id=hold.id, type="release", ref=hold.ref,
                        amount_micros=held, reason=p.get("reason"), actor=p.get("actor"), **_ids(p, hold))


async def release_hold(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    return await _release(conn, p, H.c.ref == p["ref"], state="released")


async def expire_hold(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    """Release a hold whose lease lapsed; None if it was resolved or renewed meanwhile."""
    return await _release(conn, p, H.c.id == p["hold_id"], H.c.lease_expires_at <= p["now"], state="expired")


async def refund_capture(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    amount = p["amount"]
    hold = (await conn.execute(
        update(H).where(H.c.ref == p["capture_ref"], H.c.state == "captured",
                        H.c.refunded_micros + amount <= H.c.captured_micros)
        .values(refunded_micros=H.c.refunded_micros + amount)
        .returning(H.c.id, H.c.org_id, H.c.wallet_id))).first()
    if hold is None:
        return None
    capture_id = (await conn.execute(
        select(T.c.id).where(T.c.ref == p["capture_ref"], T.c.type == "capture"))).scalar_one()
    wallet = await _move(conn, W.c.id == hold.wallet_id, balance_delta=amount)
    assert wallet is not None
    return await _entry(conn, wallet, org_id=hold.org_id, hold_id=hold.id, type="refund", ref=p["ref"],
                        amount_micros=amount, refund_of=capture_id, reason=p["reason"], actor=p["actor"], **_ids(p))


async def credit_wallet(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    wallet = await _move(conn, W.c.org_id == p["org_id"], balance_delta=p["amount"])
    if wallet is None:
        return None
    return await _entry(conn, wallet, org_id=p["org_id"], type="credit", ref=p["ref"], amount_micros=p["amount"],
                        reason=p["reason"], actor=p["actor"], **_ids(p))


async def debit_wallet(conn: AsyncConnection, p: P) -> LedgerEntry | None:
    amount = p["amount"]
    wallet = await _move(conn, W.c.org_id == p["org_id"], _AVAILABLE >= amount, balance_delta=-amount)
    if wallet is None:
        return None
    return await _entry(conn, wallet, org_id=p["org_id"], type="debit", ref=p["ref"], amount_micros=amount,
                        reason=p["reason"], actor=p["actor"], **_ids(p))
