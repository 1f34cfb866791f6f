"""Signing secrets of webhooks: made, sealed (encrypted at rest) and used to sign.

The secret is stored Fernet-encrypted (AES-128-CBC + HMAC, from ``cryptography``) under a key
derived from the deployment's ``DEEPSPACE_SECRET_KEY`` with HKDF and a label of its own, so
that the key which signs JWTs and the one which seals webhook secrets are never the same
bytes. Changing ``DEEPSPACE_SECRET_KEY`` makes stored secrets unreadable (rotate them then).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import DeepSpaceError

SECRET_PREFIX = "whsec_"
_LABEL = b"deepspace-lab webhook signing secrets v1"


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def new_secret() -> str:
    """A fresh signing secret (shown to the caller once)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def seal_secret(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def open_secret(secret_key: str, sealed: str) -> str:
    """The plaintext of a sealed secret; an error (never the secret) when the key changed."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise DeepSpaceError("a webhook secret cannot be read with this DEEPSPACE_SECRET_KEY; rotate it",
                             code="webhook_secret_unreadable") from None


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` (what a receiver checks)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"
