"""The Admin API's base: routes under ``/deepspace/admin/api/…`` for platform admins, and for
org admins on their own org (DESIGN §12.3), behind the same door steps as every route (audit,
IP rules, auth).

Each admin area is a module of its own (``admin_<area>.py``) ending in ``default_handlers`` and,
beside its handlers, ``openapi_paths()`` and ``OPENAPI_SCHEMAS`` (merged into the one document
by :mod:`.openapi`; a module listed in ``routes.ROUTE_MODULES`` is picked up). A handler says
whether it reads or writes and whether org admins may use it; :meth:`AdminHandler.org_scope`
then gives the org every query must be limited to (``None``: every org, a platform admin). A
change records ``before`` / ``after`` in ``ctx.detail``, which the request's audit row keeps.
"""

from __future__ import annotations

from typing import Any, overload

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth import admin_org_scope
from deepspace_lab.auth.permissions import MATRIX, ORG_ADMIN_ACTIONS, PLATFORM_ACTIONS, ROLES, SCOPES, role_allows
from deepspace_lab.errors import NotFound
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, Work, principal_of, query_params
from .openapi import op

ADMIN = "/deepspace/admin/api"


class AdminHandler(ApiHandler):
    async def admin(self, *, kind: str, work: Work, write: bool = False, org_admins: bool = True) -> None:
        """Run ``work`` for a platform admin (``admin.read|write``) or, when ``org_admins``,
        also for an org's admins (``org_admin.read|write``)."""
        action = ("org_admin." if org_admins else "admin.") + ("write" if write else "read")
        await self.api(action=action, kind=kind, work=work)

    @staticmethod
    def org_scope(ctx: RequestContext) -> str | None:
        """The org this caller's queries are limited to; ``None`` for a platform admin."""
        action = ctx.action if ctx.action in ORG_ADMIN_ACTIONS else None
        if action is None:  # a platform-only route: authorize() already required a platform admin
            return None
        return admin_org_scope(principal_of(ctx), action)

    @overload
    @classmethod
    def target_org(cls, ctx: RequestContext, requested: str) -> str: ...
    @overload
    @classmethod
    def target_org(cls, ctx: RequestContext, requested: str | None) -> str | None: ...
    @classmethod
    def target_org(cls, ctx: RequestContext, requested: str | None) -> str | None:
        """The org a request is about: ``requested`` (a filter or a path id) checked against the
        caller's scope. An org admin naming another org gets 404, as if it did not exist."""
        scope = cls.org_scope(ctx)
        if scope is None:
            return requested
        if requested is not None and requested != scope:
            raise NotFound("no such org", code="org_not_found")
        return scope


class PermissionsHandler(AdminHandler):
    """The roles & permissions matrix (read): who may do what, as ``authorize`` decides it."""

    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            actions: list[dict[str, Any]] = [
                {"action": action, "key_scope": scope, "roles": [r for r in ROLES if role_allows(r, action)]}
                for action, (_role, scope) in MATRIX.items()]
            actions += [{"action": action, "key_scope": scope, "roles": [], "platform_admins_only": True}
                        for action, scope in PLATFORM_ACTIONS.items()]
            actions += [{"action": action, "key_scope": PLATFORM_ACTIONS[platform],
                         "roles": [r for r in ROLES if role_allows(r, action)], "own_org_only": True}
                        for action, platform in ORG_ADMIN_ACTIONS.items()]
            return 200, {"roles": list(ROLES), "scopes": list(SCOPES), "actions": actions}

        await self.admin(kind="admin.permissions.read", work=work)


#: OpenAPI fragments (merged into the document by :mod:`.openapi`).
OPENAPI_SCHEMAS: dict[str, Any] = {
    "PermissionMatrix": {
        "type": "object", "additionalProperties": False, "required": ["roles", "scopes", "actions"],
        "properties": {
            "roles": {"type": "array", "items": {"type": "string"}},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "actions": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["action", "key_scope", "roles"],
                "properties": {"action": {"type": "string"}, "key_scope": {"type": "string"},
                               "roles": {"type": "array", "items": {"type": "string"}},
                               "platform_admins_only": {"type": "boolean"},
                               "own_org_only": {"type": "boolean"}}}}}},
}


def openapi_paths() -> dict[str, Any]:
    return {f"{ADMIN}/permissions": {
        "get": op("The roles & permissions matrix (platform admins; org admins)", "200", "PermissionMatrix")}}


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    return [(ADMIN + "/permissions", PermissionsHandler, {"runtime": runtime})]
