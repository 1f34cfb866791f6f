"""Roles, scopes and the permission matrix — enforced in one place, :func:`authorize`.

A caller's rights on an action are its **role** in the org allowing it, and, for an API key,
the key's **scopes** covering it (a key's rights = its scopes ∩ its owner's *current* role).
A JWT (a logged-in user, or a kernel's token) carries every scope its role allows.
Platform admins are a flag on the user, for the Admin API. The ``org_admin.*`` actions are the
Admin API routes an org's admins and owners may also use, with their JWT (DESIGN §12.3) and
limited to their own org (:func:`admin_org_scope`).

| action                | viewer | member | admin | owner | key scope   |
|-----------------------|:------:|:------:|:-----:|:-----:|-------------|
| chat                  |        |   ✓    |   ✓   |   ✓   | chat        |
| models.read           |   ✓    |   ✓    |   ✓   |   ✓   | chat        |
| billing.read          |   ✓    |   ✓    |   ✓   |   ✓   | chat        |
| billing.redeem        |        |   ✓    |   ✓   |   ✓   | account     |
| conversations.read    |   ✓    |   ✓    |   ✓   |   ✓   | chat        |
| conversations.write   |        |   ✓    |   ✓   |   ✓   | chat        |
| knowledge             |        |   ✓    |   ✓   |   ✓   | knowledge   |
| workflows             |        |   ✓    |   ✓   |   ✓   | workflows   |
| jobs.read             |   ✓    |   ✓    |   ✓   |   ✓   | workflows   |
| files.read            |   ✓    |   ✓    |   ✓   |   ✓   | workflows   |
| files.write           |        |   ✓    |   ✓   |   ✓   | workflows   |
| exports.create        |        |   ✓    |   ✓   |   ✓   | workflows   |
| account.read          |   ✓    |   ✓    |   ✓   |   ✓   | account     |
| keys.own              |        |   ✓    |   ✓   |   ✓   | account     |
| keys.manage           |        |        |   ✓   |   ✓   | account     |
| projects.write        |        |        |   ✓   |   ✓   | account     |
| members.write         |        |        |   ✓   |   ✓   | account     |
| org.write             |        |        |       |   ✓   | account     |
| admin.read            | platform admins only                  | admin-read  |
| admin.write           | platform admins only                  | admin       |
| org_admin.read        | platform admins; org admins, own org  | admin-read  |
| org_admin.write       | platform admins; org admins, own org  | admin       |

``account.read`` covers me, orgs, projects and members lists; ``billing.read`` the org's wallet,
ledger entries and usage records (a key that may spend may see the balance); ``billing.redeem``
redeeming a credit code into the org's wallet (an account action: a signed-in member, or a key
with the ``account`` scope — not every chat key); ``jobs.read`` the
org's Worker jobs; ``files.*`` its files and artifacts; ``exports.create`` starting exports
and statements (the download needs ``files.read``). Only an owner may make or
unmake an owner; the last owner cannot leave or be demoted.
"""

from __future__ import annotations

from ..errors import InvalidRequest, PermissionDenied
from .principal import Principal

ROLES = ("viewer", "member", "admin", "owner")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
SCOPES = ("chat", "knowledge", "workflows", "account", "admin-read", "admin")
ADMIN_SCOPES = frozenset({"admin-read", "admin"})
DEFAULT_KEY_SCOPES = ("chat", "knowledge", "workflows")

#: action -> (lowest role that may do it, scope a key needs)
MATRIX: dict[str, tuple[str, str]] = {
    "chat": ("member", "chat"),
    "models.read": ("viewer", "chat"),
    "billing.read": ("viewer", "chat"),
    "billing.redeem": ("member", "account"),
    "conversations.read": ("viewer", "chat"),
    "conversations.write": ("member", "chat"),
    "knowledge": ("member", "knowledge"),
    "workflows": ("member", "workflows"),
    "jobs.read": ("viewer", "workflows"),
    "files.read": ("viewer", "workflows"),
    "files.write": ("member", "workflows"),
    "exports.create": ("member", "workflows"),
    "account.read": ("viewer", "account"),
    "keys.own": ("member", "account"),
    "keys.manage": ("admin", "account"),
    "projects.write": ("admin", "account"),
    "members.write": ("admin", "account"),
    "org.write": ("owner", "account"),
}
PLATFORM_ACTIONS = {"admin.read": "admin-read", "admin.write": "admin"}
#: Admin API actions org admins may take on their own org: action -> the platform action
ORG_ADMIN_ACTIONS = {"org_admin.read": "admin.read", "org_admin.write": "admin.write"}
ORG_ADMIN_ROLE = "admin"


def role_allows(role: str, action: str) -> bool:
    if action in PLATFORM_ACTIONS:
        return False
    if action in ORG_ADMIN_ACTIONS:
        return ROLE_RANK.get(role, -1) >= ROLE_RANK[ORG_ADMIN_ROLE]
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[MATRIX[action][0]]


def authorize(principal: Principal, action: str) -> None:
    """Raise :class:`PermissionDenied` unless ``principal`` may do ``action``."""
    if action in ORG_ADMIN_ACTIONS:
        admin_org_scope(principal, action)
        return
    if action in PLATFORM_ACTIONS:
        allowed = _platform_allowed(principal, action)
    else:
        if action not in MATRIX:
            raise KeyError(f"unknown action {action!r}")
        scope = MATRIX[action][1]
        allowed = role_allows(principal.role, action) and (principal.api_key_id is None or scope in principal.scopes)
    if not allowed:
        raise PermissionDenied(f"your role or key does not allow `{action}`", code="permission_denied",
                               detail={"action": action})


def _platform_allowed(principal: Principal, action: str) -> bool:
    scope = PLATFORM_ACTIONS[action]
    return principal.is_platform_admin and (principal.api_key_id is None or scope in principal.scopes
                                            or (scope == "admin-read" and "admin" in principal.scopes))


def admin_org_scope(principal: Principal, action: str) -> str | None:
    """Which orgs an Admin API caller may see for ``action`` (``org_admin.read|write``):
    ``None`` for every org (a platform admin), else its own org id (an org admin or owner
    signed in with a JWT; API keys carry admin rights only through the admin scopes).
    Raises :class:`PermissionDenied` (``admin_required``) for anyone else."""
    if _platform_allowed(principal, ORG_ADMIN_ACTIONS[action]):
        return None
    if principal.api_key_id is None and role_allows(principal.role, action):
        return principal.org_id
    raise PermissionDenied("the Admin API is for platform admins and for org admins (signed in, own org)",
                           code="admin_required", detail={"action": action})


def check_scopes(scopes: list[str] | tuple[str, ...], *, is_platform_admin: bool) -> tuple[str, ...]:
    """Validate the scopes asked for a new key."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidRequest(f"unknown scopes {unknown}; known: {list(SCOPES)}", code="invalid_scope", param="scopes")
    if ADMIN_SCOPES & set(scopes) and not is_platform_admin:
        raise PermissionDenied("admin scopes are only for platform admins", code="admin_scope_denied")
    if not scopes:
        raise InvalidRequest("a key needs at least one scope", code="invalid_scope", param="scopes")
    return tuple(dict.fromkeys(scopes))


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {list(ROLES)}", code="invalid_role", param="role")
    return role
