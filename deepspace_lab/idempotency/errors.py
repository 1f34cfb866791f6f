"""Idempotency errors. Each has a stable ``code`` (part of the public contract).

    DeepSpaceError
    ├── InvalidRequest
    │   └── InvalidIdempotencyKeyError        400  invalid_idempotency_key
    ├── Conflict
    │   ├── IdempotencyInProgressError        409  idempotency_in_progress     (retryable, Retry-After)
    │   └── IdempotentResponseNotStoredError  409  idempotent_response_not_stored
    └── Unprocessable
        └── IdempotencyKeyReusedError         422  idempotency_key_reused

Only ``idempotency_in_progress`` can be cured by retrying the same request (once the first
one ends); the others need another key or another request (``x-should-retry: false``).
"""

from __future__ import annotations

from ..errors import Conflict, InvalidRequest, Unprocessable


class InvalidIdempotencyKeyError(InvalidRequest):
    default_code = "invalid_idempotency_key"


class IdempotencyInProgressError(Conflict):
    """A request with this key is still running; retry after ``retry_after_s``."""

    default_code = "idempotency_in_progress"
    retryable = True


class IdempotentResponseNotStoredError(Conflict):
    """The first request completed (and was billed) but its response was too big to keep."""

    default_code = "idempotent_response_not_stored"


class IdempotencyKeyReusedError(Unprocessable):
    """The key was already used for a different request (body, project or conversation)."""

    default_code = "idempotency_key_reused"
