"""Wallets: reading one, creating it on first use, the overdraft limit, and the statement
(an org's entries, newest first, paged by keyset).

Reads do not end the caller's transaction; writes run their own (see :mod:`._tx`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db.base import new_id, utcnow
from ..errors import InvalidRequest
from . import _diagnose
from ._tx import run_transaction
from ._types import ENTRY_COLUMNS, LedgerEntry, WalletView
from .errors import InvalidAmountError, OrgNotFoundError, OverdraftBelowDebtError
from .models import Transaction, Wallet

MAX_PAGE = 200
_W = cast(Table, Wallet.__table__)
_T = cast(Table, Transaction.__table__)


async def get_wallet(session: AsyncSession, org_id: str) -> WalletView:
    """The org's wallet; zeros (and ``wallet_id`` None) if it has never had one."""
    wallet = await _diagnose.find_wallet(await session.connection(), org_id)
    return wallet or WalletView(org_id=org_id, wallet_id=None, balance_micros=0, frozen_micros=0,
                                overdraft_limit_micros=0)


async def ensure_wallet(session: AsyncSession, org_id: str) -> str:
    """The org's wallet id, creating the wallet (empty) if needed. Safe under concurrency:
    the unique ``org_id`` decides, and every caller gets the same wallet."""

    async def work(conn: AsyncConnection) -> str:
        if not await _diagnose.org_exists(conn, org_id):
            raise OrgNotFoundError(f"no org {org_id!r}", param="org_id")
        maker = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(maker(_W).values(
            id=new_id("wal"), org_id=org_id, balance_micros=0, frozen_micros=0, overdraft_limit_micros=0,
            created_at=utcnow()).on_conflict_do_nothing(index_elements=["org_id"]))
        return str((await conn.execute(select(_W.c.id).where(_W.c.org_id == org_id))).scalar_one())

    wallet_id = await run_transaction(session, work)
    assert wallet_id is not None
    return wallet_id


async def set_overdraft_limit(session: AsyncSession, *, org_id: str,
                              limit_micros: int) -> tuple[WalletView, WalletView]:
    """Set how far below zero the org's balance may go. Returns (before, after).

    Raises :class:`OverdraftBelowDebtError` when the balance is already below ``-limit``.
    Not a ledger entry (no money moves); the CLI audits it.
    """
    if isinstance(limit_micros, bool) or not isinstance(limit_micros, int) or not 0 <= limit_micros < 2**62:
        raise InvalidAmountError("the overdraft limit must be a whole number of micro-credits, 0 or more",
                                 param="limit_micros")
    await ensure_wallet(session, org_id)

    async def work(conn: AsyncConnection) -> tuple[WalletView, WalletView] | None:
        before = await _diagnose.find_wallet(conn, org_id)
        row = (await conn.execute(
            update(_W).where(_W.c.org_id == org_id, _W.c.balance_micros + limit_micros >= 0)
            .values(overdraft_limit_micros=limit_micros)
            .returning(_W.c.id, _W.c.balance_micros, _W.c.frozen_micros))).first()
        if before is None or row is None:
            return None
        return before, WalletView(org_id=org_id, wallet_id=row.id, balance_micros=row.balance_micros,
                                  frozen_micros=row.frozen_micros, overdraft_limit_micros=limit_micros)

    result = await run_transaction(session, work)
    if result is None:
        raise OverdraftBelowDebtError("the balance is already below minus that limit; credit the wallet first")
    return result


@dataclass(frozen=True, slots=True)
class EntryPage:
    entries: list[LedgerEntry]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"data": [e.to_dict() for e in self.entries], "has_more": self.next_cursor is not None,
                "next_cursor": self.next_cursor}


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        # ASCII digits only, and within BIGINT: a bigger number overflows SQLite's driver.
        if raw.startswith("t") and raw[1:].isascii() and raw[1:].isdigit() and int(raw[1:]) < 2**63:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidRequest("`cursor` is not a cursor this API returned", code="invalid_cursor", param="cursor")


async def list_entries(session: AsyncSession, *, org_id: str, limit: int = 50, cursor: str | None = None) -> EntryPage:
    """The org's ledger entries, newest first; pass ``next_cursor`` back for the next page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"`limit` must be between 1 and {MAX_PAGE}", code="invalid_limit", param="limit")
    query = select(*[_T.c[n] for n in ENTRY_COLUMNS]).where(_T.c.org_id == org_id)
    if cursor is not None:
        query = query.where(_T.c.id < decode_cursor(cursor))
    rows = (await session.execute(query.order_by(_T.c.id.desc()).limit(limit + 1))).all()
    entries = [LedgerEntry.from_row(r._mapping) for r in rows[:limit]]
    return EntryPage(entries, encode_cursor(entries[-1].id) if len(rows) > limit else None)
