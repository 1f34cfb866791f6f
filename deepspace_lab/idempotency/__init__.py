"""Idempotency keys (level 1): a retried request runs once and is answered from storage.

Design overview
---------------
A caller sends ``Idempotency-Key: <key>`` with a request; the key is scoped to the caller's
org and kept 24 h (:data:`DEFAULT_TTL_S`). The first request with a key *claims* it
(``in_progress``, with a lease its request renews while it runs), runs, and then either
*completes* it — the response (status, content type, body or whole SSE stream, and the
headers worth repeating) is stored — or *abandons* it on any failure, which frees the key
so a retry runs again. Later requests with the key:

- same request, completed → the stored response is replayed (nothing runs, nothing bills);
- same request, still running → ``idempotency_in_progress`` (409, retryable, Retry-After);
- same request, its gateway gone (lease lapsed) → the retry takes the claim over and runs;
- a different request (body, project or conversation) → ``idempotency_key_reused`` (422);
- an expired row counts as absent.

"Same request" is a SHA-256 over the body as sent plus the project and the conversation
header (:func:`request_sha256`). Every operation is one short transaction, atomic under
concurrency on SQLite and PostgreSQL (:mod:`.keys`); the pipeline step that uses them is
:mod:`deepspace_lab.pipeline.idempotency`.
"""

from .errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    IdempotentResponseNotStoredError,
    InvalidIdempotencyKeyError,
)
from .keys import (
    DEFAULT_LEASE_S,
    DEFAULT_TTL_S,
    MAX_KEY_LENGTH,
    MAX_RESPONSE_BYTES,
    Claim,
    KeyView,
    Replay,
    StoredResponse,
    abandon_key,
    claim_key,
    complete_key,
    lookup_key,
    parse_key,
    purge_expired_keys,
    renew_key,
    request_sha256,
)
from .models import IdempotencyKey

__all__ = [
    "DEFAULT_LEASE_S", "DEFAULT_TTL_S", "MAX_KEY_LENGTH", "MAX_RESPONSE_BYTES", "Claim", "IdempotencyInProgressError",
    "IdempotencyKey", "IdempotencyKeyReusedError", "IdempotentResponseNotStoredError", "InvalidIdempotencyKeyError",
    "KeyView", "Replay", "StoredResponse", "abandon_key", "claim_key", "complete_key", "lookup_key", "parse_key",
    "purge_expired_keys", "renew_key", "request_sha256",
]
