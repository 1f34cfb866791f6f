"""Redeemable credit codes: batches created by operators, redeemed by an org's members.

A code reads ``DSC-XXXX-XXXX-XXXX-XXXX`` (16 Crockford base-32 characters: 80 random bits;
case, spaces and dashes do not matter, and O/I/L read as 0/1/1). It is shown once, when its
batch is created; the database keeps its HMAC-SHA256 under the deployment's secret key (like
API keys) and its first group as ``prefix``, to tell codes apart in lists.

A code is ``active → redeemed | revoked``, once; ``expired`` is what an active code of a batch
past its ``expires_at`` is called (nothing is written when time passes). Redeeming claims the
code with a conditional UPDATE and writes the credit entry (ref ``code:<code id>``, its reason
naming the batch) in the same short transaction (:mod:`._tx`), so a code credits exactly once
however many redeem it at the same moment, and never without its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db.base import new_id, utcnow
from ..db.paging import encode_cursor, newest_first
from ..errors import InvalidRequest
from ..tracing import current_request_id, current_trace_id
from . import _generic
from ._diagnose import org_exists
from ._tx import run_transaction
from ._types import LedgerEntry
from .errors import (
    CodeBatchNotFoundError,
    CodeExpiredError,
    CodeNotFoundError,
    CodeRedeemedError,
    CodeRevokedError,
    InvalidAmountError,
    InvalidCodeError,
    OrgNotFoundError,
)
from .ledger import MAX_AMOUNT_MICROS
from .models import CreditCode, CreditCodeBatch
from .wallets import ensure_wallet

MAX_BATCH = 1000
MAX_NOTE_LENGTH = 500
CODE_TAG = "DSC"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
CODE_LISTED_STATES = ("active", "redeemed", "revoked", "expired")
_B = cast(Table, CreditCodeBatch.__table__)
_C = cast(Table, CreditCode.__table__)


def generate_code() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return "-".join([CODE_TAG, *(chars[i:i + 4] for i in range(0, 16, 4))])


def normalize_code(text: object) -> str | None:
    """The canonical form of a code as typed (``DSC`` + 16 characters), or None if it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    raw = "".join(text.upper().split()).replace("-", "")
    if not raw.startswith(CODE_TAG):
        return None
    body = raw[len(CODE_TAG):].translate(_READS_AS)
    return CODE_TAG + body if len(body) == 16 and all(c in _ALPHABET for c in body) else None


def hash_code(secret_key: str, canonical: str) -> str:
    return hmac.new(secret_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class CodeBatchView:
    id: str
    amount_micros: int
    count: int
    expires_at: datetime | None
    org_id: str | None
    note: str
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None
    #: codes per listed state (active, redeemed, revoked, expired)
    states: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "credit_code_batch", "amount_micros": self.amount_micros,
                "count": self.count, "expires_at": _iso(self.expires_at), "org_id": self.org_id, "note": self.note,
                "created_by": self.created_by, "created_at": self.created_at.isoformat(),
                "revoked_at": _iso(self.revoked_at), "states": dict(self.states)}


@dataclass(frozen=True, slots=True)
class CodeView:
    """A code as lists show it: never the code itself."""

    id: str
    batch_id: str
    prefix: str
    state: str
    redeemed_org_id: str | None
    redeemed_by: str | None
    redeemed_at: datetime | None
    transaction_id: int | None
    revoked_at: datetime | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "credit_code", "batch_id": self.batch_id, "prefix": self.prefix,
                "state": self.state, "redeemed_org_id": self.redeemed_org_id, "redeemed_by": self.redeemed_by,
                "redeemed_at": _iso(self.redeemed_at), "transaction_id": self.transaction_id,
                "revoked_at": _iso(self.revoked_at), "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Page:
    data: list[Any]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"object": "list", "data": [item.to_dict() for item in self.data],
                "has_more": self.next_cursor is not None, "next_cursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class Redemption:
    entry: LedgerEntry
    code: CodeView
    batch_id: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _listed_state(state: str, expires_at: datetime | None, now: datetime) -> str:
    return "expired" if state == "active" and expires_at is not None and expires_at <= now else state


def _code_view(row: Any, now: datetime) -> CodeView:
    m = row._mapping
    return CodeView(id=m["id"], batch_id=m["batch_id"], prefix=m["prefix"],
                    state=_listed_state(m["state"], m["expires_at"], now), redeemed_org_id=m["redeemed_org_id"],
                    redeemed_by=m["redeemed_by"], redeemed_at=m["redeemed_at"], transaction_id=m["transaction_id"],
                    revoked_at=m["revoked_at"], created_at=m["created_at"])


_CODE_COLUMNS = [_C.c[name] for name in ("id", "batch_id", "prefix", "state", "redeemed_org_id", "redeemed_by",
                                         "redeemed_at", "transaction_id", "revoked_at", "created_at")]


def _check_batch_args(*, count: object, amount_micros: object, expires_at: datetime | None, note: object,
                      now: datetime) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH:
        raise InvalidRequest(f"`count` must be a whole number from 1 to {MAX_BATCH}", code="invalid_count",
                             param="count")
    if (isinstance(amount_micros, bool) or not isinstance(amount_micros, int)
            or not 0 < amount_micros <= MAX_AMOUNT_MICROS):
        raise InvalidAmountError(f"`amount_micros` must be between 1 and {MAX_AMOUNT_MICROS}", param="amount_micros")
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise InvalidRequest("`expires_at` must be a future time with a time zone", code="invalid_time",
                             param="expires_at")
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
        raise InvalidRequest(f"`note` is a text of at most {MAX_NOTE_LENGTH} characters", code="invalid_note",
                             param="note")


async def create_batch(
    session: AsyncSession, *, secret_key: str, count: int, amount_micros: int, expires_at: datetime | None = None,
    org_id: str | None = None, note: str = "", actor: str | None = None, now: datetime | None = None,
) -> tuple[CodeBatchView, list[str]]:
    """A batch of ``count`` codes worth ``amount_micros`` each (flushed; the caller commits).
    Returns the batch and the codes in plain text — the only time they are ever shown."""
    at = now or utcnow()
    _check_batch_args(count=count, amount_micros=amount_micros, expires_at=expires_at, note=note, now=at)
    if org_id is not None and not await org_exists(await session.connection(), org_id):
        raise OrgNotFoundError(f"no org {org_id!r}", param="org_id")
    batch = CreditCodeBatch(id=new_id("ccb"), amount_micros=amount_micros, code_count=count, expires_at=expires_at,
                            org_id=org_id, note=note, created_by=actor, created_at=at)
    session.add(batch)
    await session.flush()
    codes = [generate_code() for _ in range(count)]
    await session.execute(_C.insert(), [
        {"id": new_id("ccd"), "batch_id": batch.id, "code_hash": hash_code(secret_key, code.replace("-", "")),
         "prefix": code[:8], "state": "active", "created_at": at} for code in codes])
    return (CodeBatchView(id=batch.id, amount_micros=amount_micros, count=count, expires_at=expires_at, org_id=org_id,
                          note=note, created_by=actor, created_at=at, revoked_at=None,
                          states={"active": count, "redeemed": 0, "revoked": 0, "expired": 0}), codes)


async def _state_counts(session: AsyncSession, batch_ids: list[str], now: datetime) -> dict[str, dict[str, int]]:
    listed = case(((_C.c.state == "active") & (_B.c.expires_at <= now), "expired"), else_=_C.c.state)
    rows = await session.execute(
        select(_C.c.batch_id, listed.label("listed"), func.count())
        .select_from(_C.join(_B, _B.c.id == _C.c.batch_id)).where(_C.c.batch_id.in_(batch_ids))
        .group_by(_C.c.batch_id, listed))
    counts = {batch_id: dict.fromkeys(CODE_LISTED_STATES, 0) for batch_id in batch_ids}
    for batch_id, state, n in rows:
        counts[batch_id][state] = int(n)
    return counts


def _batch_view(row: Any, states: dict[str, int]) -> CodeBatchView:
    m = row._mapping
    return CodeBatchView(id=m["id"], amount_micros=m["amount_micros"], count=m["code_count"],
                         expires_at=m["expires_at"], org_id=m["org_id"], note=m["note"], created_by=m["created_by"],
                         created_at=m["created_at"], revoked_at=m["revoked_at"], states=states)


async def get_batch(session: AsyncSession, batch_id: str, *, now: datetime | None = None) -> CodeBatchView:
    row = (await session.execute(select(_B).where(_B.c.id == batch_id))).first()
    if row is None:
        raise CodeBatchNotFoundError(f"no credit code batch {batch_id!r}", param="batch_id")
    return _batch_view(row, (await _state_counts(session, [batch_id], now or utcnow()))[batch_id])


async def list_batches(session: AsyncSession, *, limit: int = 50, cursor: str | None = None,
                       now: datetime | None = None) -> Page:
    """Batches, newest first, with how many codes are in each state."""
    rows = (await session.execute(newest_first(select(_B), _B.c.created_at, _B.c.id, cursor=cursor,
                                               limit=limit))).all()
    page = rows[:limit]
    counts = await _state_counts(session, [r.id for r in page], now or utcnow())
    batches = [_batch_view(r, counts[r.id]) for r in page]
    return Page(batches, encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)


async def list_codes(session: AsyncSession, *, batch_id: str, state: str | None = None, limit: int = 50,
                     cursor: str | None = None, now: datetime | None = None) -> Page:
    """A batch's codes (prefix, state, who redeemed when), newest first; ``state`` one of
    :data:`CODE_LISTED_STATES`."""
    at = now or utcnow()
    batch = (await session.execute(select(_B.c.expires_at).where(_B.c.id == batch_id))).first()
    if batch is None:
        raise CodeBatchNotFoundError(f"no credit code batch {batch_id!r}", param="batch_id")
    query = select(*_CODE_COLUMNS, _B.c.expires_at).join(_B, _B.c.id == _C.c.batch_id).where(_C.c.batch_id == batch_id)
    if state is not None:
        if state not in CODE_LISTED_STATES:
            raise InvalidRequest(f"`state` must be one of {list(CODE_LISTED_STATES)}", code="invalid_value",
                                 param="state")
        lapsed = _B.c.expires_at.is_not(None) & (_B.c.expires_at <= at)
        if state == "expired":
            query = query.where(_C.c.state == "active", lapsed)
        elif state == "active":
            query = query.where(_C.c.state == "active", ~lapsed)
        else:
            query = query.where(_C.c.state == state)
    rows = (await session.execute(newest_first(query, _C.c.created_at, _C.c.id, cursor=cursor, limit=limit))).all()
    page = rows[:limit]
    return Page([_code_view(r, at) for r in page],
                encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)


async def get_code(session: AsyncSession, code_id: str, *, now: datetime | None = None) -> CodeView:
    row = (await session.execute(select(*_CODE_COLUMNS, _B.c.expires_at).join(_B, _B.c.id == _C.c.batch_id)
                                 .where(_C.c.id == code_id))).first()
    if row is None:
        raise CodeNotFoundError(f"no credit code {code_id!r}", param="code_id")
    return _code_view(row, now or utcnow())


async def revoke_code(session: AsyncSession, *, code_id: str, now: datetime | None = None,
                      ) -> tuple[CodeView, CodeView]:
    """Revoke one code (flushed; the caller commits). Returns (before, after); revoking a
    revoked code changes nothing; a redeemed one is ``code_redeemed``."""
    at = now or utcnow()
    before = await get_code(session, code_id, now=at)
    if before.state == "redeemed":
        raise CodeRedeemedError("the code was already redeemed; it cannot be revoked", param="code_id")
    await session.execute(update(_C).where(_C.c.id == code_id, _C.c.state == "active")
                          .values(state="revoked", revoked_at=at))
    after = await get_code(session, code_id, now=at)
    if after.state == "redeemed":  # redeemed in the meantime
        raise CodeRedeemedError("the code was already redeemed; it cannot be revoked", param="code_id")
    return before, after


async def revoke_batch(session: AsyncSession, *, batch_id: str, now: datetime | None = None,
                       ) -> tuple[CodeBatchView, CodeBatchView]:
    """Revoke every code of the batch not yet redeemed (flushed; the caller commits). Returns
    (before, after); redeemed codes stay redeemed."""
    at = now or utcnow()
    before = await get_batch(session, batch_id, now=at)
    await session.execute(update(_C).where(_C.c.batch_id == batch_id, _C.c.state == "active")
                          .values(state="revoked", revoked_at=at))
    await session.execute(update(_B).where(_B.c.id == batch_id, _B.c.revoked_at.is_(None)).values(revoked_at=at))
    return before, await get_batch(session, batch_id, now=at)


async def redeem_code(
    session: AsyncSession, *, secret_key: str, code: str, org_id: str, user_id: str | None, actor: str,
    trace_id: str | None = None, request_id: str | None = None, now: datetime | None = None,
) -> Redemption:
    """Credit the code's amount to ``org_id``'s wallet, once (``user_id``: who redeemed it; None
    for an operator's command). Takes an idle session, like the
    ledger operations. Raises ``InvalidCodeError`` (no such code, or one restricted to another
    org), ``CodeRedeemedError``, ``CodeExpiredError`` or ``CodeRevokedError``; nothing changes then."""
    canonical = normalize_code(code)
    if canonical is None:
        raise InvalidCodeError("that is not a valid credit code", param="code")
    code_hash = hash_code(secret_key, canonical)
    await ensure_wallet(session, org_id)
    at = now or utcnow()

    async def work(conn: AsyncConnection) -> Redemption:
        found = (await conn.execute(
            select(_C.c.id, _C.c.state, _C.c.prefix, _C.c.created_at, _B.c.id.label("batch_id"), _B.c.amount_micros,
                   _B.c.expires_at, _B.c.org_id).join(_B, _B.c.id == _C.c.batch_id)
            .where(_C.c.code_hash == code_hash))).first()
        if found is None or found.org_id not in (None, org_id):
            raise InvalidCodeError("that is not a valid credit code", param="code")
        if found.state == "redeemed":
            raise CodeRedeemedError("this code has already been redeemed", param="code")
        if found.state == "revoked":
            raise CodeRevokedError("this code has been revoked", param="code")
        if found.expires_at is not None and found.expires_at <= at:
            raise CodeExpiredError(f"this code expired at {found.expires_at.isoformat()}", param="code")
        claimed = (await conn.execute(
            update(_C).where(_C.c.id == found.id, _C.c.state == "active")
            .values(state="redeemed", redeemed_org_id=org_id, redeemed_by=user_id, redeemed_at=at)
            .returning(_C.c.id))).first()
        if claimed is None:  # another redeem (or a revoke) got there first; it has committed
            state = (await conn.execute(select(_C.c.state).where(_C.c.id == found.id))).scalar_one()
            raise (CodeRevokedError("this code has been revoked", param="code") if state == "revoked"
                   else CodeRedeemedError("this code has already been redeemed", param="code"))
        entry = await _generic.credit_wallet(conn, {
            "org_id": org_id, "amount": found.amount_micros, "ref": f"code:{found.id}", "actor": actor,
            "reason": f"redeemed credit code {found.prefix}… of batch {found.batch_id}", "now": at,
            "trace_id": trace_id or current_trace_id.get(),
            "request_id": request_id or current_request_id.get()})
        if entry is None:
            raise RuntimeError("the wallet refused a credit")
        await conn.execute(update(_C).where(_C.c.id == found.id).values(transaction_id=entry.id))
        view = CodeView(id=found.id, batch_id=found.batch_id, prefix=found.prefix, state="redeemed",
                        redeemed_org_id=org_id, redeemed_by=user_id, redeemed_at=at, transaction_id=entry.id,
                        revoked_at=None, created_at=found.created_at)
        return Redemption(entry=entry, code=view, batch_id=found.batch_id)

    result = await run_transaction(session, work)
    if result is None:
        raise RuntimeError("the database refused a redemption")
    return result
