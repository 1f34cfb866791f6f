"""After the database refused an operation: was it a replay, or which error is it?

Runs in a fresh read after the refused attempt rolled back. Hold states only move forward
(open → captured | released | expired) and entries are never removed, so what this read sees
is a state the refused attempt could have met: the answer stays linearizable.

A replay (an entry with the same (ref, type) exists) returns the first result if the
parameters match, else raises :class:`RefConflictError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.models import Org
from ._types import ENTRY_COLUMNS, HoldView, LedgerEntry, WalletView
from .errors import (
    CaptureExceedsHoldError,
    CaptureNotFoundError,
    HoldAlreadyResolvedError,
    HoldExpiredError,
    HoldNotFoundError,
    InsufficientFundsError,
    OrgNotFoundError,
    RefConflictError,
    RefundExceedsCaptureError,
)
from .models import Hold, Transaction, Wallet

P = Mapping[str, Any]
_HOLD_COLUMNS = [Hold.__table__.c[f] for f in HoldView.__dataclass_fields__]


class NoWalletError(Exception):
    """The org exists but has no wallet row yet: create it and try again."""


async def find_entry(conn: AsyncConnection, ref: str, entry_type: str) -> LedgerEntry | None:
    t = Transaction.__table__
    row = (await conn.execute(select(*[t.c[n] for n in ENTRY_COLUMNS])
                              .where(t.c.ref == ref, t.c.type == entry_type))).first()
    return LedgerEntry.from_row(row._mapping, replayed=True) if row is not None else None


async def find_hold(conn: AsyncConnection, *, ref: str) -> HoldView | None:
    row = (await conn.execute(select(*_HOLD_COLUMNS).where(Hold.__table__.c.ref == ref))).first()
    return HoldView(**row._mapping) if row is not None else None


async def find_wallet(conn: AsyncConnection, org_id: str) -> WalletView | None:
    w = Wallet.__table__
    row = (await conn.execute(select(w.c.id, w.c.balance_micros, w.c.frozen_micros, w.c.overdraft_limit_micros)
                              .where(w.c.org_id == org_id))).first()
    if row is None:
        return None
    return WalletView(org_id=org_id, wallet_id=row.id, balance_micros=row.balance_micros,
                      frozen_micros=row.frozen_micros, overdraft_limit_micros=row.overdraft_limit_micros)


async def org_exists(conn: AsyncConnection, org_id: str) -> bool:
    return (await conn.execute(select(Org.id).where(Org.id == org_id))).first() is not None


def _replay(entry: LedgerEntry, *, matches: bool) -> LedgerEntry:
    if not matches:
        raise RefConflictError(f"ref {entry.ref!r} was already used for a different {entry.type}; use a new ref",
                               param="ref")
    return entry


def check_open(hold: HoldView, now: datetime) -> None:
    if hold.state == "expired" or hold.is_lapsed(now):
        raise HoldExpiredError(f"the hold {hold.ref!r} expired: its lease ran out before it was resolved")
    if hold.state != "open":
        raise HoldAlreadyResolvedError(f"the hold {hold.ref!r} is already {hold.state}")


async def _wallet_or_raise(conn: AsyncConnection, org_id: str, *, required_micros: int) -> WalletView:
    wallet = await find_wallet(conn, org_id)
    if wallet is not None:
        return wallet
    if not await org_exists(conn, org_id):
        raise OrgNotFoundError(f"no org {org_id!r}", param="org_id")
    if required_micros == 0:
        raise NoWalletError(org_id)
    raise _insufficient(required_micros, 0)


def _insufficient(required_micros: int, available_micros: int) -> InsufficientFundsError:
    return InsufficientFundsError(
        f"insufficient funds: {required_micros} micro-credits needed, {max(available_micros, 0)} available",
        detail={"required_micros": required_micros, "available_micros": max(available_micros, 0)})


async def place_hold(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "hold")
    if entry is not None:
        hold = await find_hold(conn, ref=p["ref"])
        return _replay(entry, matches=hold is not None and hold.id == entry.hold_id
                       and entry.org_id == p["org_id"] and entry.amount_micros == p["amount"])
    wallet = await _wallet_or_raise(conn, p["org_id"], required_micros=p["amount"])
    raise _insufficient(p["amount"], wallet.available_micros)


async def top_up_hold(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "hold")
    hold = await find_hold(conn, ref=p["hold_ref"])
    if entry is not None:
        return _replay(entry, matches=hold is not None and hold.id == entry.hold_id
                       and entry.amount_micros == p["amount"])
    if hold is None:
        raise HoldNotFoundError(f"no hold {p['hold_ref']!r}", param="hold_ref")
    check_open(hold, p["now"])
    wallet = await find_wallet(conn, hold.org_id)
    raise _insufficient(p["amount"], wallet.available_micros if wallet else 0)


async def capture_hold(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "capture")
    if entry is not None:
        return _replay(entry, matches=entry.amount_micros == p["amount"])
    hold = await find_hold(conn, ref=p["ref"])
    if hold is None:
        raise HoldNotFoundError(f"no hold {p['ref']!r}", param="ref")
    check_open(hold, p["now"])
    wallet = await find_wallet(conn, hold.org_id)
    excess = p["amount"] - hold.amount_micros
    if wallet is not None and excess <= wallet.available_micros:
        # It fits now: the hold did not exist yet when the capture ran (a concurrent place).
        raise HoldNotFoundError(f"no hold {p['ref']!r}", param="ref")
    raise CaptureExceedsHoldError(
        f"capture of {p['amount']} micro-credits exceeds the hold of {hold.amount_micros} by more than "
        "the balance and overdraft allowance cover",
        detail={"hold_micros": hold.amount_micros, "requested_micros": p["amount"]})


async def release_hold(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "release")
    if entry is not None:
        return _replay(entry, matches=True)
    hold = await find_hold(conn, ref=p["ref"])
    if hold is None or hold.state == "open":  # open now: it did not exist yet when the release ran
        raise HoldNotFoundError(f"no hold {p['ref']!r}", param="ref")
    raise HoldAlreadyResolvedError(f"the hold {hold.ref!r} is already {hold.state}")


async def refund_capture(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "refund")
    if entry is not None:
        capture = await find_entry(conn, p["capture_ref"], "capture")
        return _replay(entry, matches=capture is not None and entry.refund_of == capture.id
                       and entry.amount_micros == p["amount"])
    hold = await find_hold(conn, ref=p["capture_ref"])
    if hold is None or hold.state != "captured":
        raise CaptureNotFoundError(f"no capture {p['capture_ref']!r}", param="capture_ref")
    refundable = hold.captured_micros - hold.refunded_micros
    raise RefundExceedsCaptureError(
        f"refund of {p['amount']} micro-credits exceeds what is left of the capture ({refundable})",
        detail={"refundable_micros": refundable})


async def credit_wallet(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "credit")
    if entry is not None:
        return _replay(entry, matches=entry.org_id == p["org_id"] and entry.amount_micros == p["amount"])
    await _wallet_or_raise(conn, p["org_id"], required_micros=0)
    raise RuntimeError("a credit to an existing wallet was refused")  # unreachable: no condition to fail


async def debit_wallet(conn: AsyncConnection, p: P) -> LedgerEntry:
    entry = await find_entry(conn, p["ref"], "debit")
    if entry is not None:
        return _replay(entry, matches=entry.org_id == p["org_id"] and entry.amount_micros == p["amount"])
    wallet = await _wallet_or_raise(conn, p["org_id"], required_micros=p["amount"])
    raise _insufficient(p["amount"], wallet.available_micros)
