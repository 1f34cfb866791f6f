"""Admin API, accounts area: users (list and search, one user with their memberships, disable /
enable, a member's role in an org) and orgs (list with members, projects and wallet; one org
with its projects and members). Org admins see and act on their own org's users only.

Thin: queries and rules live in :mod:`deepspace_lab.auth` (``directory``, ``accounts``), which
the CLI's ``users`` and ``orgs`` commands call too.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth import change_role
from deepspace_lab.auth.directory import (
    USER_STATUSES,
    org_detail,
    search_orgs,
    search_users,
    set_status_by_admin,
    user_detail,
    user_dict,
)
from deepspace_lab.auth.models import User
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .admin_api import ADMIN, AdminHandler
from .api import field, iso, json_body, principal_of, query_params
from .openapi import ID, NSTR, PAGING, STR, TIME, listing, obj, op, path_id, ref

PATH_ID = r"([A-Za-z0-9_]{1,40})"
_ID = re.compile(r"[A-Za-z0-9_]{1,40}")
#: query parameters that name a row (an org, user, project, key): checked like path ids
ID_PARAMS = ("org_id", "user_id", "project_id")


def admin_params(handler: AdminHandler, *, allowed: tuple[str, ...]) -> dict[str, str]:
    """:func:`.api.query_params`, and each id among them well-formed (else 400 ``invalid_value``)."""
    params = query_params(handler, allowed=allowed)
    for name in ID_PARAMS:
        if name in params and not _ID.fullmatch(params[name]):
            raise InvalidRequest(f"`{name}` is an id ([A-Za-z0-9_], 1-40 characters)", code="invalid_value",
                                 param=name)
    return params


def flag(params: dict[str, str], name: str) -> bool | None:
    """A boolean query parameter: ``true`` or ``false`` (absent: None)."""
    value = params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise InvalidRequest(f"`{name}` is `true` or `false`", code="invalid_value", param=name)
    return value == "true"


def acting_role(handler: AdminHandler, ctx: RequestContext) -> str:
    """The role an admin acts with on an org: a platform admin's is the owner's."""
    return "owner" if handler.org_scope(ctx) is None else principal_of(ctx).role


class UsersHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("q", "status", "platform_admin", "org_id", "cursor", "limit"))
            users, nxt = await search_users(
                session, org_id=self.target_org(ctx, params.get("org_id")), q=params.get("q"),
                status=params.get("status"), platform_admin=flag(params, "platform_admin"),
                cursor=params.get("cursor"), limit=params.get("limit"))
            return 200, {"data": [dict(user_dict(u), role=role) for u, role in users], "next_cursor": nxt}

        await self.admin(kind="admin.users.list", work=work)


class UserHandler(AdminHandler):
    async def get(self, user_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            user, memberships = await user_detail(session, user_id=user_id, org_scope=self.org_scope(ctx))
            return 200, dict(user_dict(user), memberships=[
                {"org_id": m.org_id, "org_name": m.org_name, "role": m.role} for m in memberships])

        await self.admin(kind="admin.users.read", work=work)


class UserDisableHandler(AdminHandler):
    """Disable (or, as :class:`UserEnableHandler`, enable) a user: their keys and sessions are
    refused (or work again) from their next request, in every process."""

    async def post(self, user_id: str) -> None:
        await self.change_status(user_id, "disabled", verb="disable")

    async def change_status(self, user_id: str, status: str, *, verb: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            json_body(ctx, allowed=())
            p = principal_of(ctx)
            before, user = await set_status_by_admin(session, user_id=user_id, status=status,
                                                     org_scope=self.org_scope(ctx), acting_user_id=p.user_id,
                                                     acting_role=acting_role(self, ctx))
            ctx.detail.update(target_user_id=user.id, before={"status": before}, after={"status": user.status})
            return 200, user_dict(user)

        await self.admin(kind=f"admin.users.{verb}", work=work, write=True)


class UserEnableHandler(UserDisableHandler):
    async def post(self, user_id: str) -> None:
        await self.change_status(user_id, "active", verb="enable")


class MemberRoleHandler(AdminHandler):
    async def patch(self, org_id: str, user_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            org = self.target_org(ctx, org_id)
            assert org is not None
            role = field(json_body(ctx, required=("role",), allowed=("role",)), "role", str)
            before, after = await change_role(session, org_id=org, user_id=user_id, role=role,
                                              acting_role=acting_role(self, ctx))
            user = await session.get(User, user_id)
            assert user is not None
            ctx.detail.update(target_user_id=user_id, target_org_id=org, before={"role": before},
                              after={"role": after})
            return 200, {"org_id": org, "user_id": user.id, "email": user.email, "name": user.name, "role": after,
                         "status": user.status}

        await self.admin(kind="admin.members.role", work=work, write=True)


class OrgsHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("q", "cursor", "limit"))
            orgs, nxt = await search_orgs(session, org_scope=self.org_scope(ctx), q=params.get("q"),
                                          cursor=params.get("cursor"), limit=params.get("limit"))
            return 200, {"data": [o.to_dict() for o in orgs], "next_cursor": nxt}

        await self.admin(kind="admin.orgs.list", work=work)


class OrgHandler(AdminHandler):
    async def get(self, org_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            org = self.target_org(ctx, org_id)
            assert org is not None
            detail = await org_detail(session, org_id=org)
            return 200, dict(detail.summary.to_dict(), projects=[
                {"id": p.id, "org_id": p.org_id, "name": p.name, "created_at": iso(p.created_at)}
                for p in detail.projects], members=[
                {"user_id": u.id, "email": u.email, "name": u.name, "role": m.role, "status": u.status}
                for u, m in detail.members])

        await self.admin(kind="admin.orgs.read", work=work)


_USER = {"id": STR, "object": {"const": "user"}, "email": STR, "name": STR, "status": {"enum": list(USER_STATUSES)},
         "is_platform_admin": {"type": "boolean"}, "external_id": NSTR, "created_at": TIME,
         "locked_until": {"type": ["string", "null"], "format": "date-time"}}
_ORG = {"id": STR, "object": {"const": "org"}, "name": STR, "slug": STR, "created_at": TIME,
        "member_count": {"type": "integer"}, "project_count": {"type": "integer"},
        "balance_micros": {"type": "integer"}, "frozen_micros": {"type": "integer"}}
_ROLE = {"enum": ["viewer", "member", "admin", "owner"]}
_MEMBER = obj({"user_id": STR, "email": STR, "name": STR, "role": STR, "status": STR},
              ["user_id", "email", "name", "role", "status"])

#: OpenAPI fragments (merged into the document by :mod:`.openapi`).
OPENAPI_SCHEMAS: dict[str, Any] = {
    "AdminUser": obj(_USER, list(_USER)),
    "AdminUserListItem": obj({**_USER, "role": {"type": ["string", "null"],
                                                "description": "the role in `org_id` when filtered by it"}},
                             [*_USER, "role"]),
    "AdminUserPage": listing("AdminUserListItem", paged=True),
    "AdminUserDetail": obj({**_USER, "memberships": {"type": "array", "items": obj(
        {"org_id": STR, "org_name": STR, "role": STR}, ["org_id", "org_name", "role"])}}, [*_USER, "memberships"]),
    "AdminOrg": obj(_ORG, list(_ORG)),
    "AdminOrgPage": listing("AdminOrg", paged=True),
    "AdminOrgDetail": obj({**_ORG, "projects": {"type": "array", "items": ref("Project")},
                           "members": {"type": "array", "items": _MEMBER}}, [*_ORG, "projects", "members"]),
    "AdminRoleChange": obj({"role": _ROLE}, ["role"]),
    "AdminMember": obj({"org_id": STR, "user_id": STR, "email": STR, "name": STR, "role": STR, "status": STR},
                       ["org_id", "user_id", "email", "name", "role", "status"]),
}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


SEARCH = _q("q", {"type": "string", "minLength": 1, "maxLength": 200}, "a substring, any case")
BOOL = {"enum": ["true", "false"]}


def openapi_paths() -> dict[str, Any]:
    user = [path_id("user_id")]
    return {
        f"{ADMIN}/users": {"get": op(
            "Users, newest first (org admins: their org's)", "200", "AdminUserPage", errors=("404",), params=[
                SEARCH, _q("status", {"enum": list(USER_STATUSES)}, "active or disabled"),
                _q("platform_admin", BOOL, "only platform admins (true) or only others (false)"),
                _q("org_id", ID, "members of this org"), *PAGING])},
        f"{ADMIN}/users/{{user_id}}": {"get": op("A user with their memberships", "200", "AdminUserDetail",
                                                 errors=("404",), params=user)},
        f"{ADMIN}/users/{{user_id}}/disable": {"post": op(
            "Disable a user: their keys and sessions are refused from their next request", "200", "AdminUser",
            body="AdminNoBody", body_required=False, errors=("404",), params=user)},
        f"{ADMIN}/users/{{user_id}}/enable": {"post": op("Enable a user again", "200", "AdminUser", body="AdminNoBody",
                                                         body_required=False, errors=("404",), params=user)},
        f"{ADMIN}/orgs/{{org_id}}/members/{{user_id}}": {"patch": op(
            "Change a member's role (only an owner makes or unmakes an owner; the last owner stays)", "200",
            "AdminMember", body="AdminRoleChange", errors=("404", "409"), params=[path_id("org_id"), *user])},
        f"{ADMIN}/orgs": {"get": op("Orgs, newest first, with member count, projects and wallet (org admins: "
                                    "theirs)", "200", "AdminOrgPage", params=[SEARCH, *PAGING])},
        f"{ADMIN}/orgs/{{org_id}}": {"get": op("An org with its projects and members", "200", "AdminOrgDetail",
                                               errors=("404",), params=[path_id("org_id")])},
    }


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (ADMIN + "/users", UsersHandler, kwargs),
        (ADMIN + "/users/" + PATH_ID, UserHandler, kwargs),
        (ADMIN + "/users/" + PATH_ID + "/disable", UserDisableHandler, kwargs),
        (ADMIN + "/users/" + PATH_ID + "/enable", UserEnableHandler, kwargs),
        (ADMIN + "/orgs", OrgsHandler, kwargs),
        (ADMIN + "/orgs/" + PATH_ID, OrgHandler, kwargs),
        (ADMIN + "/orgs/" + PATH_ID + "/members/" + PATH_ID, MemberRoleHandler, kwargs),
    ]
