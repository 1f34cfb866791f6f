"""Claim, complete, abandon, renew, look up and purge idempotency keys.

Every function runs one short transaction of its own on a pooled connection of the engine
and commits before it returns, so a claim can be taken before an upstream call and
completed after it with nothing held across it. Concurrency is decided by the database,
never by locks in Python, and the same statements serve SQLite and PostgreSQL:

- a claim first tries ``INSERT … ON CONFLICT (org_id, key) DO NOTHING``: of concurrent
  inserts exactly one creates the row;
- if the row exists, one conditional ``UPDATE`` takes it over, but only if it expired or if
  it is the same request whose lease lapsed (its gateway crashed). Under READ COMMITTED
  PostgreSQL re-checks the WHERE against the newest row version after waiting for a
  concurrent writer, and SQLite serialises writers, so of concurrent takeovers one wins;
- otherwise the row is read and answered: replay, in progress, or reused.

Completing, abandoning and renewing are conditional on the claim's token, so a request
whose lease was taken over can no longer write. Times come from the gateway's clock
(``now`` exists for tests).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Table, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.base import utcnow
from ..errors import ServiceUnavailable
from .errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    IdempotentResponseNotStoredError,
    InvalidIdempotencyKeyError,
)
from .models import COMPLETED, IN_PROGRESS, IdempotencyKey

T = TypeVar("T")
#: How long a key is kept, from its (last) claim.
DEFAULT_TTL_S = 24 * 3600.0
#: A claim's lease; a running request renews it (:func:`renew_key`), so only a crashed
#: gateway's claim lapses, and a retry may take it over this long after the crash.
DEFAULT_LEASE_S = 60.0
MAX_KEY_LENGTH = 255
#: Responses above this size (JSON body or whole SSE stream) are not kept: a retry is then
#: answered ``idempotent_response_not_stored`` rather than run and billed again.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: The hint sent with ``idempotency_in_progress``.
IN_PROGRESS_RETRY_AFTER_S = 1.0
_CLAIM_ROUNDS = 4
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
_T = cast(Table, IdempotencyKey.__table__)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What a replay answers: status, content type, body and the headers worth repeating.

    ``body`` is None when the response was too big to keep (:data:`MAX_RESPONSE_BYTES`).
    """

    status_code: int
    content_type: str
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds the key: run it, then :func:`complete_key` or :func:`abandon_key`."""

    org_id: str
    key: str
    token: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The key's request already completed: answer with its stored response."""

    response: StoredResponse
    request_id: str | None
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class KeyView:
    org_id: str
    key: str
    request_sha256: str
    state: str
    request_id: str | None
    trace_id: str | None
    locked_until: datetime | None
    expires_at: datetime
    created_at: datetime
    response: StoredResponse | None


def parse_key(value: str) -> str:
    """The key of an ``Idempotency-Key`` header value; raises ``InvalidIdempotencyKeyError``.

    1 to 255 printable ASCII characters. The IETF draft sends the key as a structured-field
    string (``"…"``); its quotes are dropped, so ``"k1"`` and ``k1`` are the same key.
    """
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.fullmatch(value) or value.strip() != value:
        raise InvalidIdempotencyKeyError(
            f"`Idempotency-Key` must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without "
            "surrounding spaces; a random UUID per logical request is a good choice")
    return value


def request_sha256(body: bytes, *context: str) -> str:
    """SHA-256 (hex) of a request body as sent plus the ``context`` that changes what it does
    outside the body (project, conversation header)."""
    digest = hashlib.sha256()
    for part in context:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


async def claim_key(
    engine: AsyncEngine, *, org_id: str, key: str, request_sha256: str, request_id: str | None = None,
    trace_id: str | None = None, lease_s: float = DEFAULT_LEASE_S, ttl_s: float = DEFAULT_TTL_S,
    now: datetime | None = None,
) -> Claim | Replay:
    """Claim ``key`` for this request, or find the completed request to replay.

    A claim when the key is new, expired, or held by the same request whose lease lapsed.
    Raises ``IdempotencyKeyReusedError`` (the key belongs to another request),
    ``IdempotencyInProgressError`` (its request is still running; ``retry_after_s`` set) or
    ``IdempotentResponseNotStoredError`` (it completed, but its response was not kept).
    """
    for _ in range(_CLAIM_ROUNDS):
        moment = now or utcnow()
        token = secrets.token_hex(16)
        values: dict[str, Any] = {
            "request_sha256": request_sha256, "state": IN_PROGRESS, "claim_token": token,
            "request_id": request_id, "trace_id": trace_id, "status_code": None, "content_type": None,
            "response_body": None, "response_headers": None, "locked_until": moment + timedelta(seconds=lease_s),
            "expires_at": moment + timedelta(seconds=ttl_s), "created_at": moment,
        }
        if await _write(engine, functools.partial(_insert, org_id=org_id, key=key, values=values)):
            return Claim(org_id, key, token)
        if await _write(engine, functools.partial(_take_over, org_id=org_id, key=key, values=values, now=moment)):
            return Claim(org_id, key, token)
        view = await lookup_key(engine, org_id=org_id, key=key, now=moment)
        if view is None:
            continue  # released or expired since the insert: claim again
        if view.request_sha256 != request_sha256:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was already used for a different request (body, project or "
                "conversation); use a new key for a new request")
        if view.state == COMPLETED and view.response is not None:
            if view.response.body is None:
                raise IdempotentResponseNotStoredError(
                    f"the request with this Idempotency-Key completed (request id {view.request_id}), but its "
                    f"response was larger than {MAX_RESPONSE_BYTES} bytes and was not kept; it is not run again")
            return Replay(view.response, view.request_id, view.trace_id)
        if view.locked_until is not None and view.locked_until <= moment:
            continue  # its lease lapsed since the takeover was tried
        break
    raise IdempotencyInProgressError(
        "a request with this Idempotency-Key is still in progress; retry after it ends",
        retry_after_s=IN_PROGRESS_RETRY_AFTER_S)


async def complete_key(engine: AsyncEngine, claim: Claim, *, response: StoredResponse) -> bool:
    """Store the claim's response; False if the claim was lost (lease taken over)."""
    stmt = _claimed(update(_T), claim).values(
        state=COMPLETED, status_code=response.status_code, content_type=response.content_type[:200],
        response_body=response.body, response_headers=response.headers or None, locked_until=None)
    return await _write(engine, lambda conn: _changed(conn, stmt))


async def abandon_key(engine: AsyncEngine, claim: Claim) -> bool:
    """Release the claim (the request failed): the key is free again. False if already lost."""
    stmt = _claimed(delete(_T), claim)
    return await _write(engine, lambda conn: _changed(conn, stmt))


async def renew_key(engine: AsyncEngine, claim: Claim, *, lease_s: float = DEFAULT_LEASE_S,
                    now: datetime | None = None) -> bool:
    """Extend the claim's lease by ``lease_s`` from now; False if the claim was lost."""
    stmt = _claimed(update(_T), claim).values(locked_until=(now or utcnow()) + timedelta(seconds=lease_s))
    return await _write(engine, lambda conn: _changed(conn, stmt))


async def lookup_key(engine: AsyncEngine, *, org_id: str, key: str, now: datetime | None = None) -> KeyView | None:
    """The key's row, or None if there is none or it expired."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(_T).where(_T.c.org_id == org_id, _T.c.key == key))).one_or_none()
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    response = None
    if row.state == COMPLETED:
        response = StoredResponse(row.status_code, row.content_type or "application/json", row.response_body,
                                  dict(row.response_headers or {}))
    return KeyView(org_id=row.org_id, key=row.key, request_sha256=row.request_sha256, state=row.state,
                   request_id=row.request_id, trace_id=row.trace_id, locked_until=row.locked_until,
                   expires_at=row.expires_at, created_at=row.created_at, response=response)


async def purge_expired_keys(engine: AsyncEngine, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete up to ``limit`` expired rows; the number deleted."""
    moment = now or utcnow()
    batch = select(_T.c.id).where(_T.c.expires_at <= moment).limit(limit).scalar_subquery()
    # The outer condition is re-checked on a row a concurrent claim just took over (PostgreSQL
    # re-evaluates it on the new version; the IN list it would not): that row is kept.
    stmt = delete(_T).where(_T.c.expires_at <= moment, _T.c.id.in_(batch))

    async def work(conn: AsyncConnection) -> int:
        return int((await conn.execute(stmt)).rowcount)

    return await _write(engine, work)


def _claimed(stmt: Any, claim: Claim) -> Any:
    return stmt.where(_T.c.org_id == claim.org_id, _T.c.key == claim.key, _T.c.claim_token == claim.token,
                      _T.c.state == IN_PROGRESS)


async def _changed(conn: AsyncConnection, stmt: Any) -> bool:
    return bool((await conn.execute(stmt)).rowcount == 1)


async def _insert(conn: AsyncConnection, *, org_id: str, key: str, values: dict[str, Any]) -> bool:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (insert(_T).values(org_id=org_id, key=key, **values)
            .on_conflict_do_nothing(index_elements=["org_id", "key"]).returning(_T.c.id))
    return (await conn.execute(stmt)).first() is not None


async def _take_over(conn: AsyncConnection, *, org_id: str, key: str, values: dict[str, Any],
                     now: datetime) -> bool:
    lapsed = and_(_T.c.state == IN_PROGRESS, _T.c.locked_until <= now,
                  _T.c.request_sha256 == values["request_sha256"])
    stmt = (update(_T).where(_T.c.org_id == org_id, _T.c.key == key, or_(_T.c.expires_at <= now, lapsed))
            .values(**values).returning(_T.c.id))
    return (await conn.execute(stmt)).first() is not None


async def _write(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """One short transaction, run to its end even if the caller is cancelled meanwhile (a
    client disconnect must not cut a commit in half or strand a SQLite write lock)."""

    async def run() -> T:
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except OperationalError as exc:
            if "database is locked" in str(exc):
                raise ServiceUnavailable("the database is busy; retry in a moment", code="database_busy",
                                         retry_after_s=1) from exc
            raise

    task = asyncio.ensure_future(run())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return await asyncio.shield(task)
