"""Billing tables: wallets, transactions (append-only), holds, prices, usage_records.

Money columns are BIGINT micro-credits (1 credit = 1,000,000 micros). The ledger service
that moves money between them comes with the ledger issue; the shapes are fixed here
(DESIGN §5).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt, UTCDateTime


class Wallet(CreatedAt, Base):
    __tablename__ = "wallets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), unique=True)
    balance_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    frozen_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    overdraft_limit_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class Transaction(CreatedAt, Base):
    """One ledger entry. Append-only; unique per (ref, type) so a replay changes nothing."""

    __tablename__ = "transactions"
    __table_args__ = (UniqueConstraint("ref", "type"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # credit|debit|hold|capture|release|refund
    ref: Mapped[str] = mapped_column(String(120))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Hold(CreatedAt, Base):
    """The mutable state of one hold: open → captured | released | expired."""

    __tablename__ = "holds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    ref: Mapped[str] = mapped_column(String(120), unique=True)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    price_id: Mapped[int | None] = mapped_column(ForeignKey("prices.id"), nullable=True)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Price(CreatedAt, Base):
    """A model's price from ``effective_at`` on; the newest one not in the future applies."""

    __tablename__ = "prices"
    __table_args__ = (UniqueConstraint("model_name", "effective_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    input_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    output_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)


class UsageRecord(CreatedAt, Base):
    """Exactly one per request that reached the budget hold (DESIGN §12.6)."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    delivered_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    measured: Mapped[str] = mapped_column(String(16))  # upstream | drained | estimated
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    price_id: Mapped[int | None] = mapped_column(ForeignKey("prices.id"), nullable=True)
    upstream_response_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
