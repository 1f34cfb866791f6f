"""Billing errors. Each has a stable ``code`` (part of the public contract).

    DeepSpaceError
    ├── InvalidRequest
    │   ├── InvalidAmountError          400  invalid_amount
    │   ├── NoPriceError                400  no_price
    │   └── InvalidCodeError            400  invalid_code
    ├── InsufficientFunds
    │   └── InsufficientFundsError      402  insufficient_funds
    ├── NotFound
    │   ├── OrgNotFoundError            404  org_not_found
    │   ├── HoldNotFoundError           404  hold_not_found
    │   ├── CaptureNotFoundError        404  capture_not_found
    │   ├── CodeBatchNotFoundError      404  code_batch_not_found
    │   └── CodeNotFoundError           404  code_not_found
    ├── Conflict
    │   ├── HoldAlreadyResolvedError    409  hold_already_resolved
    │   │   └── HoldExpiredError        409  hold_expired
    │   ├── CaptureExceedsHoldError     409  capture_exceeds_hold
    │   ├── RefundExceedsCaptureError   409  refund_exceeds_capture
    │   ├── OverdraftBelowDebtError     409  overdraft_below_debt
    │   ├── PriceVersionExistsError     409  price_version_exists
    │   ├── CodeRedeemedError           409  code_redeemed
    │   ├── CodeExpiredError            409  code_expired
    │   └── CodeRevokedError            409  code_revoked
    └── Unprocessable
        └── RefConflictError            422  ref_conflict

A failed operation writes nothing, so retrying it later (with the same ref) may succeed.
``RefConflictError`` means the ref was already used for an entry with other parameters
(the IETF Idempotency-Key draft answers such reuse with 422).
"""

from __future__ import annotations

from ..errors import Conflict, InsufficientFunds, InvalidRequest, NotFound, Unprocessable


class InvalidAmountError(InvalidRequest):
    default_code = "invalid_amount"


class NoPriceError(InvalidRequest):
    default_code = "no_price"


class InsufficientFundsError(InsufficientFunds):
    default_code = "insufficient_funds"


class OrgNotFoundError(NotFound):
    default_code = "org_not_found"


class HoldNotFoundError(NotFound):
    default_code = "hold_not_found"


class CaptureNotFoundError(NotFound):
    default_code = "capture_not_found"


class HoldAlreadyResolvedError(Conflict):
    default_code = "hold_already_resolved"


class HoldExpiredError(HoldAlreadyResolvedError):
    """The hold's lease ran out: it can only end released (by reconciliation or a release)."""

    default_code = "hold_expired"


class CaptureExceedsHoldError(Conflict):
    default_code = "capture_exceeds_hold"


class RefundExceedsCaptureError(Conflict):
    default_code = "refund_exceeds_capture"


class OverdraftBelowDebtError(Conflict):
    default_code = "overdraft_below_debt"


class PriceVersionExistsError(Conflict):
    default_code = "price_version_exists"


class RefConflictError(Unprocessable):
    default_code = "ref_conflict"


class InvalidCodeError(InvalidRequest):
    """No such credit code (or not one for the redeeming org): the same answer either way."""

    default_code = "invalid_code"


class CodeBatchNotFoundError(NotFound):
    default_code = "code_batch_not_found"


class CodeNotFoundError(NotFound):
    default_code = "code_not_found"


class CodeRedeemedError(Conflict):
    default_code = "code_redeemed"


class CodeExpiredError(Conflict):
    default_code = "code_expired"


class CodeRevokedError(Conflict):
    default_code = "code_revoked"
