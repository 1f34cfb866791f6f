"""Ledger operations: hold, top-up, capture, release, refund, credit, debit, lease renewal.

Every operation

- takes an **idle** ``AsyncSession`` and runs ONE short transaction of its own (on a pooled
  connection of the session's engine), committed before it returns. They run right before
  and right after upstream calls, so nothing is ever held across one; do not call them
  inside a unit of work of your own (they raise ``RuntimeError`` if the session is in a
  transaction);
- is idempotent by ``(ref, type)``: a replay returns the first result (``replayed=True``)
  and changes nothing; the same ref with other parameters raises ``RefConflictError``;
- writes nothing when it fails, so a retry with the same ref may succeed later;
- takes amounts as integer micro-credits (``amount_micros``), never floats;
- stamps the entry with ``trace_id`` / ``request_id`` (default: the current trace's, else
  the hold's);
- takes ``now`` only so tests can move time (leases); leave it None in production: the
  gateway's clock is used, which is why the lease is minutes, not seconds;
- for a gateway request's hold (placed with ``usage``), settles its usage row when given an
  ``outcome``; a capture or release without one leaves the row pending, which
  reconciliation reports (``usage_row``).

A caller cancelled mid-call (a client disconnect) gets its ``CancelledError`` at once,
but the operation still runs to its commit or rollback; the retry with the same ref tells
which (see :mod:`._tx`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db.base import new_id, utcnow
from ..errors import InvalidRequest
from ..tracing import current_request_id, current_trace_id
from . import _diagnose, _generic, _pg
from ._tx import dialect_name, run_read, run_statement, run_transaction
from ._types import HoldView, LedgerEntry
from .errors import HoldNotFoundError, InvalidAmountError, NoPriceError
from .models import Hold
from .pricing import cost_micros, get_price
from .usage import UsageOutcome, UsageStart
from .wallets import ensure_wallet

#: A hold's lease when the caller names none; a live request renews it (:func:`renew_hold_lease`).
DEFAULT_LEASE_S = 300.0
#: Far above any real amount, and low enough that sums stay inside BIGINT.
MAX_AMOUNT_MICROS = 2**53
MAX_REF_LENGTH = 120
MAX_REASON_LENGTH = 500
_H = cast(Table, Hold.__table__)

Work = Callable[[AsyncConnection, Mapping[str, Any]], Awaitable[LedgerEntry | None]]
Diagnose = Callable[[AsyncConnection, Mapping[str, Any]], Awaitable[LedgerEntry]]


def _amount(value: object, *, allow_zero: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmountError("`amount_micros` must be a whole number of micro-credits", param="amount_micros")
    if value < 0 or (value == 0 and not allow_zero) or value > MAX_AMOUNT_MICROS:
        least = 0 if allow_zero else 1
        raise InvalidAmountError(f"`amount_micros` must be between {least} and {MAX_AMOUNT_MICROS}, got {value}",
                                 param="amount_micros")
    return value


def _ref(value: object, *, param: str = "ref") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REF_LENGTH:
        raise InvalidRequest(f"`{param}` must be a non-empty string of at most {MAX_REF_LENGTH} characters",
                             code="invalid_ref", param=param)
    return value


def _reason(value: object, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REASON_LENGTH:
        raise InvalidRequest(f"`reason` must be a non-empty text of at most {MAX_REASON_LENGTH} characters",
                             code="invalid_reason", param="reason")
    return value.strip()


def _params(now: datetime | None, trace_id: str | None, request_id: str | None, **values: Any) -> dict[str, Any]:
    return {"now": now or utcnow(), "trace_id": trace_id or current_trace_id.get(),
            "request_id": request_id or current_request_id.get(), **values}


async def _apply(session: AsyncSession, p: dict[str, Any], *, work: Work, diagnose: Diagnose,
                 pg_sql: str | None = None) -> LedgerEntry:
    """Try the change; if the database refused it, find the replay or the error."""
    for _ in range(2):
        entry: LedgerEntry | None = None
        if pg_sql is not None and dialect_name(session) == "postgresql":
            row = await run_statement(session, pg_sql, p)
            entry = LedgerEntry.from_row(row) if row is not None else None
        if entry is None:
            # The one-statement path can be refused spuriously: PostgreSQL checks a CHECK on
            # the row computed from its snapshot before re-reading a row a concurrent top-up
            # just changed. Step by step, each statement sees the newest rows and decides.
            entry = await run_transaction(session, lambda conn: work(conn, p))
        if entry is not None:
            return entry
        try:
            return await run_read(session, lambda conn: diagnose(conn, p))
        except _diagnose.NoWalletError:
            await ensure_wallet(session, p["org_id"])  # first money of this org: then try again
    raise RuntimeError("the wallet was created but the operation is still refused")


async def place_hold(
    session: AsyncSession, *, org_id: str, ref: str, amount_micros: int, lease_s: float = DEFAULT_LEASE_S,
    price_id: int | None = None, trace_id: str | None = None, request_id: str | None = None,
    now: datetime | None = None, usage: UsageStart | None = None, budget_scopes: Mapping[str, str | None] | None = None,
) -> LedgerEntry:
    """Move ``amount_micros`` from the org's balance to frozen, if balance + overdraft covers it.

    ``ref`` is the request's billing ref (it names the hold from now on); ``price_id`` the price
    version its capture will use. Raises ``InsufficientFundsError`` (nothing changes).

    The pipeline also passes ``usage`` (the request's pending usage row, written with the hold)
    and ``budget_scopes`` (:func:`.budgets.scopes_of`: the hold reserves on every budget of
    that org, project and key, or raises ``BudgetExceededError`` and nothing changes).
    """
    p = _params(now, trace_id, request_id, org_id=org_id, ref=_ref(ref), amount=_amount(amount_micros, allow_zero=True),
                hold_id=new_id("hld"), price_id=price_id)
    p["lease_expires_at"] = p["now"] + timedelta(seconds=lease_s)
    if usage is not None:
        p.update(usage.params(), **(budget_scopes or {"b_org": None, "b_project": None, "b_key": None}))
        return await _apply(session, p, work=_generic.place_hold, diagnose=_diagnose.place_hold,
                            pg_sql=_pg.PLACE_HOLD_WITH_USAGE)
    if budget_scopes is not None:
        raise ValueError("budget_scopes come with a request's usage row")
    return await _apply(session, p, work=_generic.place_hold, diagnose=_diagnose.place_hold, pg_sql=_pg.PLACE_HOLD)


async def top_up_hold(
    session: AsyncSession, *, hold_ref: str, ref: str, amount_micros: int, trace_id: str | None = None,
    request_id: str | None = None, now: datetime | None = None,
) -> LedgerEntry:
    """Add ``amount_micros`` to an open hold (another hold entry, under its own ``ref``)."""
    p = _params(now, trace_id, request_id, hold_ref=_ref(hold_ref, param="hold_ref"), ref=_ref(ref),
                amount=_amount(amount_micros, allow_zero=False))
    return await _apply(session, p, work=_generic.top_up_hold, diagnose=_diagnose.top_up_hold)


async def capture_hold(
    session: AsyncSession, *, ref: str, amount_micros: int, trace_id: str | None = None,
    request_id: str | None = None, now: datetime | None = None, outcome: UsageOutcome | None = None,
) -> LedgerEntry:
    """Charge ``amount_micros`` for the hold ``ref`` and return the rest of it to the balance.

    Above the hold, the excess comes out of the balance, within the overdraft allowance, else
    ``CaptureExceedsHoldError``. A hold resolves once (``HoldAlreadyResolvedError``); a hold
    whose lease lapsed cannot be captured (``HoldExpiredError``). With ``outcome`` the
    request's usage row is completed in the same statement.
    """
    p = _params(now, trace_id, request_id, ref=_ref(ref), amount=_amount(amount_micros, allow_zero=True))
    if outcome is not None:
        p.update(outcome.params())
    return await _apply(session, p, work=_generic.capture_hold, diagnose=_diagnose.capture_hold,
                        pg_sql=_pg.CAPTURE_HOLD if outcome is None else _pg.CAPTURE_HOLD_WITH_USAGE)


async def capture_usage(
    session: AsyncSession, *, ref: str, tokens_in: int, tokens_out: int, trace_id: str | None = None,
    request_id: str | None = None, now: datetime | None = None,
) -> LedgerEntry:
    """Capture what the tokens cost at the price version the hold was taken at."""

    async def read(conn: AsyncConnection) -> tuple[HoldView | None, Any]:
        hold = await _diagnose.find_hold(conn, ref=_ref(ref))
        price = await get_price(conn, hold.price_id) if hold is not None and hold.price_id is not None else None
        return hold, price

    hold, price = await run_read(session, read)
    if hold is None:
        raise HoldNotFoundError(f"no hold {ref!r}", param="ref")
    if price is None:
        raise NoPriceError(f"the hold {ref!r} was taken without a price version; capture an amount instead")
    amount = cost_micros(price, tokens_in=tokens_in, tokens_out=tokens_out)
    return await capture_hold(session, ref=ref, amount_micros=amount, trace_id=trace_id, request_id=request_id,
                              now=now)


async def release_hold(
    session: AsyncSession, *, ref: str, reason: str | None = None, trace_id: str | None = None,
    request_id: str | None = None, now: datetime | None = None, outcome: UsageOutcome | None = None,
) -> LedgerEntry:
    """Return the whole open hold ``ref`` to the balance (also after its lease lapsed). With
    ``outcome`` the request's usage row is completed in the same statement."""
    p = _params(now, trace_id, request_id, ref=_ref(ref), reason=_reason(reason, required=False))
    if outcome is not None:
        p.update(outcome.params())
    return await _apply(session, p, work=_generic.release_hold, diagnose=_diagnose.release_hold,
                        pg_sql=_pg.RELEASE_HOLD if outcome is None else _pg.RELEASE_HOLD_WITH_USAGE)


async def refund_capture(
    session: AsyncSession, *, ref: str, capture_ref: str, amount_micros: int, reason: str, actor: str,
    trace_id: str | None = None, request_id: str | None = None, now: datetime | None = None,
) -> LedgerEntry:
    """Give back ``amount_micros`` of the capture of hold ``capture_ref`` under a new ``ref``.

    All refunds of one capture together never exceed it (``RefundExceedsCaptureError``).
    """
    p = _params(now, trace_id, request_id, ref=_ref(ref), capture_ref=_ref(capture_ref, param="capture_ref"),
                amount=_amount(amount_micros, allow_zero=False), reason=_reason(reason, required=True), actor=actor)
    return await _apply(session, p, work=_generic.refund_capture, diagnose=_diagnose.refund_capture)


async def credit_wallet(
    session: AsyncSession, *, org_id: str, amount_micros: int, reason: str, actor: str, ref: str | None = None,
    trace_id: str | None = None, request_id: str | None = None, now: datetime | None = None,
) -> LedgerEntry:
    """Add money (top-up, grant, redeemed code). Pass ``ref`` to make a retry safe;
    without one, each call is a new credit. Creates the wallet on the org's first credit."""
    p = _params(now, trace_id, request_id, org_id=org_id, ref=_ref(ref or new_id("crd")),
                amount=_amount(amount_micros, allow_zero=False), reason=_reason(reason, required=True), actor=actor)
    return await _apply(session, p, work=_generic.credit_wallet, diagnose=_diagnose.credit_wallet)


async def debit_wallet(
    session: AsyncSession, *, org_id: str, amount_micros: int, reason: str, actor: str, ref: str | None = None,
    trace_id: str | None = None, request_id: str | None = None, now: datetime | None = None,
) -> LedgerEntry:
    """An admin's downward adjustment; it may not take the balance below minus the overdraft
    limit (``InsufficientFundsError``)."""
    p = _params(now, trace_id, request_id, org_id=org_id, ref=_ref(ref or new_id("dbt")),
                amount=_amount(amount_micros, allow_zero=False), reason=_reason(reason, required=True), actor=actor)
    return await _apply(session, p, work=_generic.debit_wallet, diagnose=_diagnose.debit_wallet)


async def renew_hold_lease(
    session: AsyncSession, *, ref: str, lease_s: float = DEFAULT_LEASE_S, now: datetime | None = None
) -> datetime:
    """Extend the open hold's lease to ``now + lease_s``; returns the new expiry.

    A lapsed lease cannot be revived (``HoldExpiredError``): once it passes, the hold can
    only end released, whoever looks first.
    """
    at = now or utcnow()
    expires_at = at + timedelta(seconds=lease_s)
    h = _H

    async def work(conn: AsyncConnection) -> datetime | None:
        row = (await conn.execute(
            update(h).where(h.c.ref == _ref(ref), h.c.state == "open", h.c.lease_expires_at > at)
            .values(lease_expires_at=expires_at).returning(h.c.id))).first()
        return expires_at if row is not None else None

    renewed = await run_transaction(session, work)
    if renewed is not None:
        return renewed
    hold = await get_hold(session, ref)
    if hold is None:
        raise HoldNotFoundError(f"no hold {ref!r}", param="ref")
    _diagnose.check_open(hold, at)
    raise RuntimeError("an open hold refused a lease renewal")  # unreachable


async def expire_hold(session: AsyncSession, *, hold_id: str, actor: str, now: datetime | None = None,
                      ) -> LedgerEntry | None:
    """Release a hold whose lease lapsed (state ``expired``, a release entry); None if it was
    resolved or renewed in the meantime."""
    p = _params(now, None, None, hold_id=hold_id, actor=actor, reason="lease expired")
    return await run_transaction(session, lambda conn: _generic.expire_hold(conn, p))


async def get_hold(session: AsyncSession, ref: str) -> HoldView | None:
    """The hold named ``ref`` (read on a connection of its own, like the operations)."""
    return await run_read(session, lambda conn: _diagnose.find_hold(conn, ref=ref))


async def lapsed_hold_ids(session: AsyncSession, *, now: datetime | None = None, limit: int = 1000) -> list[str]:
    """Open holds whose lease has lapsed, oldest lease first."""
    h = _H
    at = now or utcnow()

    async def read(conn: AsyncConnection) -> list[str]:
        rows = await conn.execute(select(h.c.id).where(h.c.state == "open", h.c.lease_expires_at <= at)
                                  .order_by(h.c.lease_expires_at).limit(limit))
        return [str(r.id) for r in rows]

    return await run_read(session, read)
