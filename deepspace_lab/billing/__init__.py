"""Billing (level 1): wallets, the ledger, versioned prices and reconciliation.

Design overview
---------------
Money is integer micro-credits (1 credit = 1,000,000). Each org has one wallet:
``balance`` (spendable) and ``frozen`` (reserved by open holds), plus an overdraft limit
(default 0): the balance may go down to ``-overdraft_limit``, never further.

The ledger follows TigerBeetle's two-phase transfers. ``transactions`` is append-only (the
database refuses UPDATE and DELETE) and holds the entries: ``credit`` and ``debit`` (an
operator's top-up, grant or downward adjustment, with reason and actor), ``hold`` (a hold
or a top-up of one), ``capture``, ``release`` and ``refund``. Beside it the mutable
``holds`` table carries each hold's state — ``open → captured | released | expired``,
resolved at most once — its price version and its lease.

- hold: balance → frozen if balance + overdraft covers it, else ``insufficient_funds`` and
  nothing changes;
- capture(actual): the hold leaves frozen, ``actual`` is charged and the rest returns to the
  balance; above the hold the excess comes out of the balance within the overdraft;
- release: the whole hold returns; a hold whose lease lapsed can only be released, and
  reconciliation does that for holds nobody resolved (a crashed request);
- refund: its own ref, pointing at a capture; refunds of a capture never exceed it.

Every operation is idempotent by ``(ref, type)`` — the UNIQUE constraint decides, and a
replay returns the first result — and runs as one short transaction of its own
(:mod:`.ledger`), so the gateway can hold before an upstream call and capture after it
without a transaction open across it. Concurrency comes from the database, not from
locks in Python: conditional UPDATEs under READ COMMITTED on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite (:mod:`._tx`).

Invariants (checked by :func:`check_invariants` and after every billing test): per wallet
``balance + frozen = credits − debits − captures + refunds``, ``frozen = Σ open holds``,
``balance ≥ −overdraft``; one terminal entry per resolved hold.

Redeemable credit codes (:mod:`.codes`) are batches of one-time codes, kept as HMACs; a
redemption claims its code and writes its credit entry in one transaction.

Prices (:mod:`.pricing`) are versioned by ``effective_at``; a hold records the version it
was priced at and its capture uses it. One rounding rule, applied once: the ceiling of the
exact total in micro-credits.
"""

from ._types import HoldView, LedgerEntry, WalletView
from .budgets import (
    BudgetExceededError,
    BudgetNotFoundError,
    BudgetView,
    budget_scope_id,
    delete_budget,
    list_budgets,
    scopes_of,
    set_budget,
)
from .codes import (
    CODE_LISTED_STATES,
    CodeBatchView,
    CodeView,
    Redemption,
    create_batch,
    get_batch,
    get_code,
    list_batches,
    list_codes,
    redeem_code,
    revoke_batch,
    revoke_code,
)
from .errors import (
    CaptureExceedsHoldError,
    CaptureNotFoundError,
    CodeBatchNotFoundError,
    CodeExpiredError,
    CodeNotFoundError,
    CodeRedeemedError,
    CodeRevokedError,
    HoldAlreadyResolvedError,
    HoldExpiredError,
    HoldNotFoundError,
    InsufficientFundsError,
    InvalidAmountError,
    InvalidCodeError,
    NoPriceError,
    OrgNotFoundError,
    OverdraftBelowDebtError,
    PriceVersionExistsError,
    RefConflictError,
    RefundExceedsCaptureError,
)
from .ledger import (
    DEFAULT_LEASE_S,
    capture_hold,
    capture_usage,
    credit_wallet,
    debit_wallet,
    expire_hold,
    get_hold,
    place_hold,
    refund_capture,
    release_hold,
    renew_hold_lease,
    top_up_hold,
)
from .pricing import PriceVersion, cost_micros, get_price, in_force, list_prices, price_for, price_history, set_price
from .reconcile import Problem, ReconcileReport, check_invariants, reconcile
from .usage import UsageOutcome, UsageStart
from .usage_query import UsagePage, list_usage, parse_time
from .wallets import (
    ENTRY_FILTERS,
    EntryPage,
    WalletPage,
    ensure_wallet,
    get_wallet,
    list_entries,
    list_wallets,
    set_overdraft_limit,
)

__all__ = [
    "DEFAULT_LEASE_S", "CaptureExceedsHoldError", "CaptureNotFoundError", "EntryPage", "HoldAlreadyResolvedError",
    "HoldExpiredError", "HoldNotFoundError", "HoldView", "InsufficientFundsError", "InvalidAmountError",
    "LedgerEntry", "NoPriceError", "OrgNotFoundError", "OverdraftBelowDebtError", "PriceVersion",
    "PriceVersionExistsError", "Problem", "ReconcileReport", "RefConflictError", "RefundExceedsCaptureError",
    "WalletView", "capture_hold", "capture_usage", "check_invariants", "cost_micros", "credit_wallet",
    "debit_wallet", "ensure_wallet", "expire_hold", "get_hold", "get_price", "get_wallet", "list_entries",
    "list_prices", "place_hold", "price_for", "reconcile", "refund_capture", "release_hold", "renew_hold_lease",
    "set_overdraft_limit", "set_price", "top_up_hold",
    "UsagePage", "list_usage", "parse_time",
    "BudgetExceededError", "BudgetNotFoundError", "BudgetView", "UsageOutcome", "UsageStart", "budget_scope_id",
    "delete_budget",
    "in_force", "list_budgets", "price_history", "scopes_of", "set_budget",
    "CODE_LISTED_STATES", "CodeBatchNotFoundError", "CodeBatchView", "CodeExpiredError", "CodeNotFoundError",
    "CodeRedeemedError", "CodeRevokedError", "CodeView", "ENTRY_FILTERS", "InvalidCodeError", "Redemption",
    "WalletPage", "create_batch", "get_batch", "get_code", "list_batches", "list_codes", "list_wallets",
    "redeem_code", "revoke_batch", "revoke_code",
]
