"""Logins: password check with lockout, refresh-token rotation, logout, and the JWT path of
authentication.

- Five wrong passwords in a row lock the account for 15 minutes (``account_locked``); a
  success resets the count. An unknown email costs the same argon2 work as a wrong password
  and gets the same answer, so the answer does not tell whether an account exists.
- A refresh token (``dsr_…``) is stored as an HMAC, used once: each refresh revokes it and
  issues a new pair in the same family. A used token presented again revokes the family
  (a stolen token is useless after its owner's next refresh).
- Access JWTs name their session; the session row is checked on every request, so logout,
  a disabled user or a lost membership take effect on the next request in every process.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import new_id, utcnow
from ..errors import AuthError, NotFound
from .accounts import default_project, project_role
from .keys import hash_key
from .models import AuthSession, User
from .passwords import hash_password, verify_password
from .principal import Principal
from .tokens import ACCESS_TTL, issue_access_token, verify_access_token

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=30)
REFRESH_TAG = "dsr_"
_BAD_LOGIN = "invalid email or password"


@functools.cache
def _dummy_hash() -> str:
    """What an unknown email's password is checked against, so it costs the same argon2 work as a
    wrong password. Made on first use: at import it cost every CLI command and process start a
    full hash (~0.2-0.3 s)."""
    return hash_password(secrets.token_urlsafe(16))


async def _verify(password_hash: str | None, password: str) -> bool:
    """Check a password (against the dummy hash when ``password_hash`` is None) off the event
    loop: argon2 takes ~0.17 s of CPU (and releases the GIL), which on the loop would stall every
    stream of the process and time out its Redis calls (the login limiter's included) during a
    burst of logins."""
    return await asyncio.to_thread(lambda: verify_password(password_hash or _dummy_hash(), password))


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    session_id: str
    user_id: str

    def to_dict(self) -> dict[str, object]:
        return {"access_token": self.access_token, "token_type": "bearer",
                "expires_in": int((self.access_expires_at - utcnow()).total_seconds()),
                "refresh_token": self.refresh_token, "refresh_expires_at": self.refresh_expires_at.isoformat()}


async def _new_session(session: AsyncSession, *, secret_key: str, user_id: str, family_id: str | None,
                       client_ip: str | None, kind: str = "login", access_ttl: timedelta = ACCESS_TTL,
                       refresh_ttl: timedelta = REFRESH_TTL) -> TokenPair:
    now = utcnow()
    refresh = REFRESH_TAG + secrets.token_urlsafe(32)
    row = AuthSession(id=new_id("ses"), user_id=user_id, refresh_hash=hash_key(secret_key, refresh), kind=kind,
                      expires_at=now + refresh_ttl, client_ip=client_ip)
    row.family_id = family_id or row.id
    session.add(row)
    await session.flush()
    access, access_expires = issue_access_token(secret_key=secret_key, user_id=user_id, session_id=row.id,
                                                ttl=access_ttl, now=now)
    return TokenPair(access, access_expires, refresh, row.expires_at, row.id, user_id)


async def login(session: AsyncSession, *, secret_key: str, email: str, password: str,
                client_ip: str | None = None) -> TokenPair:
    """Check the password and open a session; commits (failures are recorded too)."""
    now = utcnow()
    user = (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()
    if user is None or user.password_hash is None:
        await _verify(None, password)
        raise AuthError(_BAD_LOGIN, code="invalid_credentials")
    if user.locked_until is not None and user.locked_until > now:
        raise AuthError("too many failed logins: the account is locked for a while", code="account_locked",
                        retry_after_s=(user.locked_until - now).total_seconds())
    if not await _verify(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        await session.commit()
        raise AuthError(_BAD_LOGIN, code="invalid_credentials")
    if user.status != "active":
        raise AuthError(_BAD_LOGIN, code="invalid_credentials")
    user.failed_logins = 0
    user.locked_until = None
    pair = await _new_session(session, secret_key=secret_key, user_id=user.id, family_id=None, client_ip=client_ip)
    await session.commit()
    return pair


async def open_session(session: AsyncSession, *, secret_key: str, user_id: str, kind: str,
                       access_ttl: timedelta = ACCESS_TTL, refresh_ttl: timedelta = REFRESH_TTL) -> TokenPair:
    """A session for a user the caller has already authenticated (e.g. a Jupyter kernel's)."""
    return await _new_session(session, secret_key=secret_key, user_id=user_id, family_id=None, client_ip=None,
                              kind=kind, access_ttl=access_ttl, refresh_ttl=refresh_ttl)


async def refresh(session: AsyncSession, *, secret_key: str, refresh_token: str,
                  client_ip: str | None = None) -> TokenPair:
    """Rotate: revoke the presented refresh token and issue a new pair; commits."""
    now = utcnow()
    if not refresh_token.startswith(REFRESH_TAG):
        raise AuthError("invalid refresh token", code="invalid_token")
    row = (await session.execute(select(AuthSession).where(
        AuthSession.refresh_hash == hash_key(secret_key, refresh_token)))).scalar_one_or_none()
    if row is None:
        raise AuthError("invalid refresh token", code="invalid_token")
    if row.revoked_at is not None:
        # A used (rotated) token came back: someone else has it. End the whole family.
        await session.execute(update(AuthSession).where(AuthSession.family_id == row.family_id,
                                                        AuthSession.revoked_at.is_(None)).values(revoked_at=now))
        await session.commit()
        raise AuthError("refresh token already used; every session of this login is now revoked",
                        code="refresh_token_reused")
    user = await session.get(User, row.user_id)
    if row.expires_at <= now or user is None or user.status != "active":
        raise AuthError("invalid refresh token", code="invalid_token")
    row.revoked_at = now
    pair = await _new_session(session, secret_key=secret_key, user_id=row.user_id, family_id=row.family_id,
                              client_ip=client_ip, kind=row.kind)
    await session.commit()
    return pair


async def logout(session: AsyncSession, *, session_id: str) -> None:
    """Revoke a session (its refresh token and, from the next request on, its access tokens)."""
    await session.execute(update(AuthSession).where(AuthSession.id == session_id,
                                                    AuthSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
    await session.commit()


async def authenticate_access_token(session: AsyncSession, *, secret_key: str, token: str,
                                    project_id: str | None) -> Principal:
    """JWT → Principal in the named project (``X-DeepSpace-Project``) or the default one."""
    claims = verify_access_token(secret_key=secret_key, token=token)
    row = (await session.execute(
        select(AuthSession.revoked_at, AuthSession.expires_at, User.status, User.is_platform_admin)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.id == claims["sid"], AuthSession.user_id == claims["sub"]))).first()
    if row is None or row.revoked_at is not None or row.status != "active":
        raise AuthError("the session has ended; log in again", code="session_revoked")
    user_id = str(claims["sub"])
    if project_id:
        org_id, role = await project_role(session, user_id=user_id, project_id=project_id)
    else:
        found = await default_project(session, user_id)
        if found is None:
            raise NotFound("you are not a member of any org with a project", code="project_not_found")
        project_id, org_id, role = found
    return Principal(user_id=user_id, org_id=org_id, project_id=project_id, role=role, session_id=str(claims["sid"]),
                     is_platform_admin=row.is_platform_admin)
