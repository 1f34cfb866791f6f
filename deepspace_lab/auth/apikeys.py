"""API keys: create (shown once), list, revoke, and authenticate on every request.

Authentication is one indexed query (key ⨝ owner ⨝ owner's membership) per request, with no
cache: a revoked, expired or wrong-scope key, or one whose owner was disabled or left the
org, is refused on its very next request in every gateway process.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import new_id, utcnow
from ..errors import AuthError, InvalidRequest, NotFound
from .keys import generate_key, hash_key, key_prefix
from .models import ApiKey, OrgMember, User
from .permissions import DEFAULT_KEY_SCOPES
from .principal import Principal

#: last_used_at is written at most this often per key (a write on every request would cost
#: more than the rest of authentication).
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_KEY_NAME = 200  # the column's length
INVALID_KEY = "invalid API key: pass `Authorization: Bearer dsk_...` with a live key of yours"


async def create_api_key(
    session: AsyncSession,
    *,
    secret_key: str,
    org_id: str,
    project_id: str,
    user_id: str,
    name: str = "",
    scopes: Sequence[str] = DEFAULT_KEY_SCOPES,
    expires_at: datetime | None = None,
    plaintext: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, plaintext). ``plaintext`` imports an existing well-formed key
    (operators moving keys between deployments, benchmarks); otherwise one is generated.
    Scope and role checks are the caller's (see :func:`.permissions.check_scopes`)."""
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidRequest("expires_at is in the past", code="invalid_value", param="expires_at")
    if len(name) > MAX_KEY_NAME:  # refused, not cut: the caller would not find the name it gave
        raise InvalidRequest(f"`name` must be at most {MAX_KEY_NAME} characters", code="invalid_value", param="name")
    if plaintext is None:
        plaintext, prefix = generate_key()
    else:
        found = key_prefix(plaintext)
        if found is None:
            raise InvalidRequest("malformed API key", code="invalid_api_key_format")
        prefix = found
    row = ApiKey(
        id=new_id("key"), org_id=org_id, project_id=project_id, user_id=user_id, name=name,
        prefix=prefix, key_hash=hash_key(secret_key, plaintext), scopes=list(scopes), expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, plaintext


async def list_api_keys(session: AsyncSession, *, org_id: str, user_id: str | None = None) -> list[ApiKey]:
    """The org's keys (``user_id``: only that user's), newest first. Hashes stay in the row."""
    query = select(ApiKey).where(ApiKey.org_id == org_id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list((await session.execute(query.order_by(ApiKey.created_at.desc(), ApiKey.id))).scalars())


async def revoke_api_key(session: AsyncSession, *, org_id: str, key_id: str, user_id: str | None = None) -> ApiKey:
    """Revoke a key of the org (``user_id``: only if it is theirs). Revoking twice is a no-op."""
    query = select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    key = (await session.execute(query)).scalar_one_or_none()
    if key is None:
        raise NotFound(f"no API key {key_id!r}", code="api_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


def key_query(prefix: str) -> Any:
    """The one query that authenticates a key: key ⨝ owner ⨝ owner's membership."""
    return (
        select(ApiKey.id, ApiKey.org_id, ApiKey.project_id, ApiKey.user_id, ApiKey.key_hash, ApiKey.scopes,
               ApiKey.expires_at, ApiKey.revoked_at, ApiKey.last_used_at, User.status, User.is_platform_admin,
               OrgMember.role)
        .join(User, User.id == ApiKey.user_id)
        .outerjoin(OrgMember, (OrgMember.org_id == ApiKey.org_id) & (OrgMember.user_id == ApiKey.user_id))
        .where(ApiKey.prefix == prefix)
    )


def principal_from_key_row(row: Any, *, secret_key: str, plaintext: str, now: datetime) -> tuple[Principal, bool]:
    """Check a row of :func:`key_query` against the presented key: (principal, last-used is
    stale and should be written). Refused: unknown, wrong secret part, revoked, expired, owner
    disabled or no longer a member of the key's org — with one message, so a caller cannot probe."""
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(secret_key, plaintext)):
        raise AuthError(INVALID_KEY)
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthError(INVALID_KEY)
    if row.status != "active" or row.role is None:
        raise AuthError(INVALID_KEY)
    principal = Principal(
        user_id=row.user_id, org_id=row.org_id, project_id=row.project_id, role=row.role, api_key_id=row.id,
        scopes=tuple(row.scopes or ()), is_platform_admin=row.is_platform_admin,
    )
    return principal, row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION


async def touch_key(session: AsyncSession, *, key_id: str, now: datetime) -> None:
    """Record the key's last use (and commit: it runs in the request's auth step)."""
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    await session.commit()


async def authenticate_api_key(
    session: AsyncSession, *, secret_key: str, plaintext: str, now: datetime | None = None
) -> Principal:
    """Resolve a key to a :class:`Principal`, or raise :class:`AuthError` (see
    :func:`principal_from_key_row`)."""
    prefix = key_prefix(plaintext)
    if prefix is None:
        raise AuthError(INVALID_KEY)
    now = now or utcnow()
    row = (await session.execute(key_query(prefix))).first()
    principal, stale = principal_from_key_row(row, secret_key=secret_key, plaintext=plaintext, now=now)
    if stale:
        await touch_key(session, key_id=principal.api_key_id or "", now=now)
    return principal
