"""Identity and tenancy (level 1): users, orgs, members, projects, API keys and logins.

Two credentials reach the gateway: API keys (``dsk_…``, looked up by visible prefix and
checked with HMAC-SHA256 under the deployment's secret key — :mod:`.keys`, :mod:`.apikeys`)
and short-lived JWT access tokens from a login or a Jupyter server (:mod:`.sessions`,
:mod:`.tokens`). Either becomes a :class:`Principal`, the one object every later step scopes
its queries by; :func:`authorize` (:mod:`.permissions`) is the one place rights are decided.
"""

from .accounts import (
    add_member,
    change_role,
    create_org,
    create_project,
    create_user,
    delete_project,
    get_project,
    get_user_by_email,
    list_members,
    list_projects,
    memberships_of,
    remove_member,
    rename_project,
    set_user_status,
)
from .apikeys import authenticate_api_key, create_api_key, list_api_keys, revoke_api_key
from .keys import generate_key, hash_key, key_prefix
from .permissions import DEFAULT_KEY_SCOPES, ROLES, SCOPES, admin_org_scope, authorize, check_scopes
from .principal import Principal
from .sessions import TokenPair, authenticate_access_token, login, logout, open_session, refresh

__all__ = [
    "DEFAULT_KEY_SCOPES", "ROLES", "SCOPES", "Principal", "TokenPair", "add_member", "admin_org_scope",
    "authenticate_access_token", "authenticate_api_key", "authorize", "change_role", "check_scopes",
    "create_api_key", "create_org", "create_project", "create_user", "delete_project", "generate_key",
    "get_project", "get_user_by_email", "hash_key", "key_prefix", "list_api_keys", "list_members",
    "list_projects", "login", "logout", "memberships_of", "open_session", "refresh", "remove_member",
    "rename_project", "revoke_api_key", "set_user_status",
]
