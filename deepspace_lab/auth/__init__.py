"""Identity and tenancy (level 1): users, orgs, members, projects and API keys.

Keys are looked up by their visible prefix and checked with HMAC-SHA256 under the
deployment's secret key (:mod:`.keys`). :func:`authenticate_api_key` turns a key into a
:class:`Principal`, the one object every later step scopes its queries by.
"""

from .keys import generate_key, hash_key, key_prefix
from .service import (
    DEFAULT_SCOPES,
    Principal,
    authenticate_api_key,
    create_api_key,
    create_org,
    create_project,
    create_user,
)

__all__ = [
    "DEFAULT_SCOPES", "Principal", "authenticate_api_key", "create_api_key",
    "create_org", "create_project", "create_user", "generate_key", "hash_key", "key_prefix",
]
