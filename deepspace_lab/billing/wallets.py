"""Wallets: reading one, creating it on first use, the overdraft limit, and the statement
(an org's entries, newest first, paged by keyset).

Reads do not end the caller's transaction; writes run their own (see :mod:`._tx`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..auth.models import Org
from ..db import paging
from ..db.base import new_id, utcnow
from ..db.paging import newest_first
from ..errors import InvalidRequest
from . import _diagnose
from ._tx import run_transaction
from ._types import ENTRY_COLUMNS, LedgerEntry, WalletView
from .errors import InvalidAmountError, OrgNotFoundError, OverdraftBelowDebtError
from .models import ENTRY_TYPES, Transaction, Wallet
from .usage_query import _check_id

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


ENTRY_FILTERS = ("type", "since", "until", "ref", "trace_id")


async def list_entries(session: AsyncSession, *, org_id: str | None, limit: int = 50, cursor: str | None = None,
                       type: str | None = None, since: datetime | None = None, until: datetime | None = None,
                       ref: str | None = None, trace_id: str | None = None) -> EntryPage:
    """Ledger entries, newest first; pass ``next_cursor`` back for the next page. ``org_id``
    None is every org's (platform admins). Filters: entry ``type``, ``since`` (inclusive) and
    ``until`` (exclusive), exact ``ref`` and ``trace_id``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"`limit` must be between 1 and {MAX_PAGE}", code="invalid_limit", param="limit")
    if type is not None and type not in ENTRY_TYPES:
        raise InvalidRequest(f"`type` must be one of {list(ENTRY_TYPES)}", code="invalid_value", param="type")
    _check_id(org_id, "org_id")
    for name, value in (("ref", ref), ("trace_id", trace_id)):
        if value is not None and not (0 < len(value) <= 120 and value.isprintable()):
            raise InvalidRequest(f"`{name}` must be 1-120 printable characters", code="invalid_value", param=name)
    query = select(*[_T.c[n] for n in ENTRY_COLUMNS])
    for column, value in (("org_id", org_id), ("type", type), ("ref", ref), ("trace_id", trace_id)):
        if value is not None:
            query = query.where(_T.c[column] == value)
    if since is not None:
        query = query.where(_T.c.created_at >= since)
    if until is not None:
        query = query.where(_T.c.created_at < until)
    if cursor is not None:
        query = query.where(_T.c.id < decode_cursor(cursor))
    rows = (await session.execute(query.order_by(_T.c.id.desc()).limit(limit + 1))).all()
    entries = [LedgerEntry.from_row(r._mapping) for r in rows[:limit]]
    return EntryPage(entries, encode_cursor(entries[-1].id) if len(rows) > limit else None)


@dataclass(frozen=True, slots=True)
class WalletPage:
    """Orgs with their wallets (zeros for an org that never had money), by org age, newest first."""

    wallets: list[tuple[str, WalletView]]  # (org name, wallet)
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"object": "list", "data": [dict(w.to_dict(), org_name=name) for name, w in self.wallets],
                "has_more": self.next_cursor is not None, "next_cursor": self.next_cursor}


async def list_wallets(session: AsyncSession, *, org_id: str | None = None, limit: int = 50,
                       cursor: str | None = None) -> WalletPage:
    """Every org's wallet (``org_id``: only that org's), keyset-paged over the orgs."""
    _check_id(org_id, "org_id")
    o = cast(Table, Org.__table__)
    query = (select(o.c.id, o.c.name, o.c.created_at, _W.c.id.label("wallet_id"), _W.c.balance_micros,
                    _W.c.frozen_micros, _W.c.overdraft_limit_micros)
             .select_from(o.outerjoin(_W, _W.c.org_id == o.c.id)))
    if org_id is not None:
        query = query.where(o.c.id == org_id)
    rows = (await session.execute(newest_first(query, o.c.created_at, o.c.id, cursor=cursor, limit=limit))).all()
    page = rows[:limit]
    wallets = [(r.name, WalletView(org_id=r.id, wallet_id=r.wallet_id, balance_micros=r.balance_micros or 0,
                                   frozen_micros=r.frozen_micros or 0,
                                   overdraft_limit_micros=r.overdraft_limit_micros or 0)) for r in page]
    return WalletPage(wallets, paging.encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None)
