"""Access tokens: short-lived JWTs (HS256 under the deployment's secret key).

PyJWT does the signature work: a well-kept library, and the one place not to write our own.
Only HS256 is accepted (``alg: none`` and every other algorithm are refused), and ``exp``,
``iat``, ``sub``, ``sid`` and ``typ`` are required.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jwt

from ..db.base import utcnow
from ..errors import AuthError

ALGORITHM = "HS256"
ACCESS_TTL = timedelta(minutes=15)
_REQUIRED = ["exp", "iat", "sub", "sid", "typ"]


def issue_access_token(*, secret_key: str, user_id: str, session_id: str, ttl: timedelta = ACCESS_TTL,
                       now: datetime | None = None) -> tuple[str, datetime]:
    """(token, expiry) for a user's session."""
    now = now or utcnow()
    expires = now + ttl
    claims = {"sub": user_id, "sid": session_id, "typ": "access", "iat": int(now.timestamp()),
              "exp": int(expires.timestamp())}
    return jwt.encode(claims, secret_key, algorithm=ALGORITHM), expires


def verify_access_token(*, secret_key: str, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(token, secret_key, algorithms=[ALGORITHM],
                                            options={"require": _REQUIRED})
    except jwt.ExpiredSignatureError:
        raise AuthError("the access token has expired; refresh it", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("invalid access token", code="invalid_token") from None
    if claims.get("typ") != "access":
        raise AuthError("invalid access token", code="invalid_token")
    return claims


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("eyJ")
