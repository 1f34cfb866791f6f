"""API key format and hashing.

A key reads ``dsk_<12 hex>_<43 url-safe chars>``. The first part (``dsk_<12 hex>``) is the
visible, unique *prefix* used to find the row; the whole key is checked against an
HMAC-SHA256 under the deployment's secret key — a fast keyed hash, never a password hash on
the hot path (an API key has 256 random bits, so a slow hash adds nothing). The ``dsk_``
format can never be mistaken for a Jupyter token, and a gateway key never grants Jupyter
access.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_TAG = "dsk_"
_KEY_RE = re.compile(r"^(dsk_[0-9a-f]{12})_([A-Za-z0-9_-]{20,128})$")


def generate_key() -> tuple[str, str]:
    """A new key: (plaintext, prefix). Show the plaintext once; store only the hash."""
    prefix = KEY_TAG + secrets.token_hex(6)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(plaintext: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    match = _KEY_RE.match(plaintext)
    return match.group(1) if match else None


def hash_key(secret_key: str, plaintext: str) -> str:
    return hmac.new(secret_key.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_TAG)
