"""Billing tables: wallets, transactions (append-only), holds, prices, usage_records.

Money columns are BIGINT micro-credits (1 credit = 1,000,000 micros). The database enforces
what it can on its own (migration 0002): CHECK constraints on every amount and on
``balance >= -overdraft``, one terminal entry per hold (a partial unique index), and
triggers that refuse UPDATE and DELETE on ``transactions``. The ledger service
(:mod:`deepspace_lab.billing.ledger`) is the only writer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, BigIntPK, CreatedAt, UTCDateTime

HOLD_STATES = ("open", "captured", "released", "expired")
ENTRY_TYPES = ("credit", "debit", "hold", "capture", "release", "refund")
_TERMINAL = "type IN ('capture', 'release')"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Wallet(CreatedAt, Base):
    """One per org. ``balance`` is spendable, ``frozen`` is held by open holds."""

    __tablename__ = "wallets"
    __table_args__ = (
        CheckConstraint("frozen_micros >= 0", name="frozen_not_negative"),
        CheckConstraint("overdraft_limit_micros >= 0", name="overdraft_not_negative"),
        # The only bound on spending: every debit, hold and capture must keep this true.
        CheckConstraint("balance_micros + overdraft_limit_micros >= 0", name="within_overdraft"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), unique=True)
    balance_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    frozen_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    overdraft_limit_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class Transaction(CreatedAt, Base):
    """One ledger entry. Append-only; unique per (ref, type) so a replay changes nothing."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("ref", "type"),
        CheckConstraint("amount_micros >= 0", name="amount_not_negative"),
        CheckConstraint(_one_of("type", ENTRY_TYPES), name="known_type"),
        # newest-first keyset paging of one org's entries
        Index("ix_transactions_org_id_id", "org_id", "id"),
        # a hold resolves at most once: one capture or release entry per hold
        Index("uq_transactions_terminal_hold_id", "hold_id", unique=True,
              postgresql_where=text(_TERMINAL), sqlite_where=text(_TERMINAL)),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    type: Mapped[str] = mapped_column(String(16))  # credit|debit|hold|capture|release|refund
    ref: Mapped[str] = mapped_column(String(120))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    #: the hold a hold (or top-up), capture, release or refund entry belongs to
    hold_id: Mapped[str | None] = mapped_column(ForeignKey("holds.id"), nullable=True)
    #: a refund's capture entry
    refund_of: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"), nullable=True)
    #: the wallet right after this entry (null only for rows older than migration 0002: none)
    balance_after_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    frozen_after_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Hold(CreatedAt, Base):
    """The mutable state of one hold: open → captured | released | expired."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("amount_micros >= 0", name="amount_not_negative"),
        CheckConstraint(_one_of("state", HOLD_STATES), name="known_state"),
        CheckConstraint("captured_micros >= 0", name="captured_not_negative"),
        CheckConstraint("refunded_micros >= 0 AND refunded_micros <= captured_micros", name="refunds_within_capture"),
        # what reconciliation scans: only open holds are in it
        Index("ix_holds_open_lease_expires_at", "lease_expires_at",
              postgresql_where=text("state = 'open'"), sqlite_where=text("state = 'open'")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    ref: Mapped[str] = mapped_column(String(120), unique=True)
    #: the hold plus its top-ups
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="open")
    captured_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    refunded_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    price_id: Mapped[int | None] = mapped_column(ForeignKey("prices.id"), nullable=True)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Price(CreatedAt, Base):
    """A model's price from ``effective_at`` on; the newest one not in the future applies."""

    __tablename__ = "prices"
    __table_args__ = (
        UniqueConstraint("model_name", "effective_at"),
        CheckConstraint("input_micros_per_mtok >= 0 AND output_micros_per_mtok >= 0", name="rates_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    input_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    output_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: a free model costs nothing and needs no rates; without any price a model is refused
    free: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)


#: How a usage row's tokens were learned. ``pending`` while the request runs; ``upstream``: the
#: upstream reported them; ``drained``: the client had gone and the gateway read the rest of the
#: stream to learn them; ``estimated``: no usage came (an upstream that sends none, a stream cut
#: or abandoned), counted from what was relayed; ``none``: nothing was generated (an error before
#: any output; the hold was released); ``unknown``: the gateway that held it is gone and
#: reconciliation released the hold when its lease lapsed.
MEASURED = ("pending", "upstream", "drained", "estimated", "none", "unknown")
#: The usage row follows its hold: pending (hold open) → captured | released | expired.
USAGE_STATUSES = ("pending", "captured", "released", "expired")


class UsageRecord(CreatedAt, Base):
    """Exactly one per request that reached the budget hold (DESIGN §12.6).

    Written pending in the hold's own statement and completed in the capture's or release's
    own statement, so a usage row and its ledger entries can never disagree.
    ``completion_tokens`` is what the model generated, ``delivered_tokens`` what reached the
    caller (less when the client left early), ``held_micros`` the hold (the worst case),
    ``cost_micros`` what was captured.
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        CheckConstraint(_one_of("measured", MEASURED), name="known_measured"),
        CheckConstraint(_one_of("status", USAGE_STATUSES), name="known_status"),
        # newest-first keyset paging of one org's usage; time windows and roll-ups
        Index("ix_usage_records_org_id_id", "org_id", "id"),
        # roll-ups read one period of every org; retention deletes by age; the Admin API pages
        # by (created_at, id) at any depth behind each filter (migration 0010)
        Index("ix_usage_records_created_at_id", "created_at", "id"),
        *(Index(f"ix_usage_records_{c}_created_at_id", c, "created_at", "id")
          for c in ("org_id", "project_id", "user_id", "api_key_id", "model")),
    )

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
    measured: Mapped[str] = mapped_column(String(16))
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    price_id: Mapped[int | None] = mapped_column(ForeignKey("prices.id"), nullable=True)
    upstream_response_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default=text("'pending'"))
    held_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    stream: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: why it ended other than normally: an error code, ``client_disconnected``, ``drain_timeout``
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


BUDGET_SCOPES = ("org", "project", "key")
BUDGET_PERIODS = ("day", "month")


class Budget(CreatedAt, Base):
    """A spending cap per org, project or API key and per UTC day or month.

    Spend counts captures plus open holds (a request in flight counts at its hold), so a cap
    is never overshot by concurrent requests.
    """

    __tablename__ = "budgets"
    __table_args__ = (
        UniqueConstraint("scope", "scope_id", "period"),
        CheckConstraint(_one_of("scope", BUDGET_SCOPES), name="known_scope"),
        CheckConstraint(_one_of("period", BUDGET_PERIODS), name="known_period"),
        CheckConstraint("limit_micros >= 0", name="limit_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(8))
    limit_micros: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BudgetCounter(Base):
    """What one budget has spent (captured) and reserved (open holds) in one period."""

    __tablename__ = "budget_counters"
    __table_args__ = (
        UniqueConstraint("budget_id", "period_start"),
        CheckConstraint("reserved_micros >= 0", name="reserved_not_negative"),
        CheckConstraint("spent_micros >= 0", name="spent_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class HoldBudgetCounter(Base):
    """Which counters a hold reserved on, so its capture or release settles the same ones."""

    __tablename__ = "hold_budget_counters"

    hold_id: Mapped[str] = mapped_column(ForeignKey("holds.id"), primary_key=True)
    counter_id: Mapped[int] = mapped_column(ForeignKey("budget_counters.id", ondelete="CASCADE"),
                                            primary_key=True)


ROLLUP_PERIODS = ("hour", "day")


class UsageRollup(Base):
    """Usage summed per period (a UTC hour or day), org, project and model. Built by the
    Worker from ``usage_records`` (hours) and from the hours (days); a period is rebuilt by
    replacing its rows, so building it twice changes nothing."""

    __tablename__ = "usage_rollups"
    __table_args__ = (
        CheckConstraint(_one_of("period", ROLLUP_PERIODS), name="known_period"),
        Index("ix_usage_rollups_org_id_period_period_start", "org_id", "period", "period_start"),
        Index("ix_usage_rollups_period_period_start", "period", "period_start"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    org_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupMark(Base):
    """How far roll-ups of a period kind are built: every period that starts before
    ``rolled_until`` is done. A worker that was down catches up from here."""

    __tablename__ = "rollup_marks"
    __table_args__ = (CheckConstraint(_one_of("period", ROLLUP_PERIODS), name="known_period"),)

    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    rolled_until: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


CODE_STATES = ("active", "redeemed", "revoked")


class CreditCodeBatch(CreatedAt, Base):
    """A batch of redeemable credit codes: each worth ``amount_micros``, until ``expires_at``
    (none: never), redeemable by any org or only by ``org_id``."""

    __tablename__ = "credit_code_batches"
    __table_args__ = (CheckConstraint("amount_micros > 0", name="amount_positive"),
                      CheckConstraint("code_count > 0", name="count_positive"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    code_count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), nullable=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CreditCode(CreatedAt, Base):
    """One code of a batch. Only its HMAC (under the deployment's secret key) is kept, and a
    short ``prefix`` to tell codes apart in lists. ``active → redeemed | revoked``, once."""

    __tablename__ = "credit_codes"
    __table_args__ = (
        CheckConstraint(_one_of("state", CODE_STATES), name="known_state"),
        Index("ix_credit_codes_batch_id_id", "batch_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("credit_code_batches.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="active")
    redeemed_org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), nullable=True)
    redeemed_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the credit entry the redemption made
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
