"""Identity services: users, orgs, projects and API keys.

Services only ``flush()``; the caller commits (one unit of work per request or command).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import new_id, utcnow
from ..errors import AuthError, InvalidRequest
from .keys import generate_key, hash_key, key_prefix
from .models import ApiKey, Org, OrgMember, Project, User

ROLES = ("owner", "admin", "member", "viewer")
DEFAULT_SCOPES = ("chat", "knowledge", "workflows")
#: last_used_at is written at most this often per key (a write on every request would cost more
#: than the whole rest of authentication).
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, resolved from a credential. Every query is scoped by ``org_id``."""

    user_id: str
    org_id: str
    project_id: str
    api_key_id: str | None
    scopes: tuple[str, ...]
    is_platform_admin: bool = False


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "org"


async def create_user(
    session: AsyncSession, *, email: str, name: str = "", password_hash: str | None = None,
    is_platform_admin: bool = False,
) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidRequest(f"not an email address: {email!r}", code="invalid_email", param="email")
    user = User(id=new_id("usr"), email=email, name=name, password_hash=password_hash,
                is_platform_admin=is_platform_admin, status="active")
    session.add(user)
    await session.flush()
    return user


async def create_org(session: AsyncSession, *, name: str, owner: User) -> Org:
    org = Org(id=new_id("org"), name=name, slug=f"{_slug(name)}-{new_id('x')[-6:]}")
    session.add(org)
    await session.flush()
    session.add(OrgMember(id=new_id("mem"), org_id=org.id, user_id=owner.id, role="owner"))
    await session.flush()
    return org


async def create_project(session: AsyncSession, *, org_id: str, name: str) -> Project:
    project = Project(id=new_id("prj"), org_id=org_id, name=name)
    session.add(project)
    await session.flush()
    return project


async def create_api_key(
    session: AsyncSession,
    *,
    secret_key: str,
    org_id: str,
    project_id: str,
    user_id: str,
    name: str = "",
    scopes: Sequence[str] = DEFAULT_SCOPES,
    expires_at: datetime | None = None,
    plaintext: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, plaintext). ``plaintext`` imports an existing well-formed key
    (operators moving keys between deployments, benchmarks); otherwise one is generated."""
    if plaintext is None:
        plaintext, prefix = generate_key()
    else:
        found = key_prefix(plaintext)
        if found is None:
            raise InvalidRequest("malformed API key", code="invalid_api_key_format")
        prefix = found
    row = ApiKey(
        id=new_id("key"), org_id=org_id, project_id=project_id, user_id=user_id, name=name,
        prefix=prefix, key_hash=hash_key(secret_key, plaintext), scopes=list(scopes),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, plaintext


_INVALID = "invalid API key: pass `Authorization: Bearer dsk_...` with a key made by `deepspace-lab init` or the API"


async def authenticate_api_key(
    session: AsyncSession, *, secret_key: str, plaintext: str, now: datetime | None = None
) -> Principal:
    """Resolve a key to a :class:`Principal`, or raise :class:`AuthError`.

    Refused: malformed, unknown, wrong secret part, revoked, expired, owner disabled.
    The message never says which, so a caller cannot probe for prefixes.
    """
    prefix = key_prefix(plaintext)
    if prefix is None:
        raise AuthError(_INVALID)
    now = now or utcnow()
    row = (await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(secret_key, plaintext)):
        raise AuthError(_INVALID)
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthError(_INVALID)
    user = await session.get(User, row.user_id)
    if user is None or user.status != "active":
        raise AuthError(_INVALID)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return Principal(
        user_id=row.user_id, org_id=row.org_id, project_id=row.project_id, api_key_id=row.id,
        scopes=tuple(row.scopes or ()), is_platform_admin=user.is_platform_admin,
    )
