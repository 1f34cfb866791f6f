"""Who is signed in to the console, kept on the server: each browser login gets a random id
(the only thing its cookie holds, signed) that maps to an :class:`AdminSession` — a client
with that admin's tokens, renewed by the client as they expire, and the admin's scope. Tokens
never reach the page, the cookie or the logs."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass

from deepspace_lab.client import (
    AsyncDeepSpaceClient,
    AuthenticationError,
    ClientConfig,
    ConnectionFailed,
    Credentials,
    DeepSpaceClientError,
    PermissionDeniedError,
    RateLimitedError,
    gateway_root,
)

log = logging.getLogger("deepspace_lab.dashboards")

#: a console login lasts this long without use (the Gateway's refresh token may end it sooner)
IDLE_TTL_S = 12 * 3600.0


@dataclass(frozen=True)
class Identity:
    """The signed-in admin, from ``GET /deepspace/api/me``."""

    user_id: str
    email: str
    role: str
    org_id: str
    org_name: str
    is_platform_admin: bool

    @property
    def scope(self) -> str | None:
        """The org every page is limited to; ``None`` for a platform admin (every org)."""
        return None if self.is_platform_admin else self.org_id


class AdminRefused(Exception):
    """Sign-in refused; ``reason`` is a text key (``refused_*``) the login page shows."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class AdminSession:
    client: AsyncDeepSpaceClient
    identity: Identity
    last_used: float = 0.0

    async def close(self) -> None:
        """End the Gateway login (best effort: it expires anyway) and the connection pool."""
        try:
            await self.client.logout()
        except DeepSpaceClientError:
            pass
        await self.client.aclose()


def new_client(gateway_url: str, *, timeout_s: float = 30.0) -> AsyncDeepSpaceClient:
    """A client with no credentials yet (never the environment's: the console acts only as
    the admin who signed in)."""
    return AsyncDeepSpaceClient(config=ClientConfig(base_url=gateway_root(gateway_url), credentials=Credentials(),
                                                    timeout_s=timeout_s))


async def sign_in(gateway_url: str, email: str, password: str) -> AdminSession:
    """Log in at the Gateway, then make sure the Admin API lets this account in."""
    if not email or not password:
        raise AdminRefused("refused_missing")
    client = new_client(gateway_url)
    try:
        await client.login(email, password)
    except (AuthenticationError, PermissionDeniedError):
        await client.aclose()
        raise AdminRefused("refused_credentials") from None
    except RateLimitedError:
        await client.aclose()
        raise AdminRefused("refused_rate_limited") from None
    except ConnectionFailed:
        await client.aclose()
        raise AdminRefused("refused_unreachable") from None
    session = AdminSession(client, Identity("", email, "", "", "", False))
    try:
        await client.admin_permissions()
    except PermissionDeniedError:
        log.info("admin console: refused %s (not an admin)", email)
        await session.close()
        raise AdminRefused("refused_not_admin") from None
    me = await client.me()
    orgs = {o["id"]: o["name"] for o in me.get("orgs") or ()}
    user = me["user"]
    session.identity = Identity(user["id"], user["email"], str(me.get("role") or ""), str(me.get("org_id") or ""),
                                orgs.get(me.get("org_id"), str(me.get("org_id") or "")),
                                bool(user.get("is_platform_admin")))
    log.info("admin console: %s signed in (%s)", email,
             "platform" if session.identity.is_platform_admin else f"org {session.identity.org_id}")
    return session


class SessionStore:
    """Console logins by id, in this process's memory (a restart signs everyone out)."""

    def __init__(self, *, idle_ttl_s: float = IDLE_TTL_S) -> None:
        self.idle_ttl_s = idle_ttl_s
        self._sessions: dict[str, AdminSession] = {}
        self._lock = threading.Lock()

    def add(self, session: AdminSession) -> str:
        sid = secrets.token_urlsafe(32)
        session.last_used = time.monotonic()
        with self._lock:
            self._sessions[sid] = session
        return sid

    def get(self, sid: str | None) -> AdminSession | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.last_used > self.idle_ttl_s:
                del self._sessions[sid]
                return None
            session.last_used = now
            return session

    def pop(self, sid: str | None) -> AdminSession | None:
        with self._lock:
            return self._sessions.pop(sid, None) if sid else None

    def __len__(self) -> int:
        return len(self._sessions)
