"""Identity routes: login / refresh / logout, me, orgs, members, projects and API keys.

Every route is scoped to the caller's org (and project where it applies); ids of other orgs
are 404. Rights come from :func:`deepspace_lab.auth.authorize` via each route's ``action``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth import (
    add_member,
    change_role,
    check_scopes,
    create_api_key,
    create_project,
    delete_project,
    get_project,
    list_api_keys,
    list_members,
    list_projects,
    login,
    logout,
    memberships_of,
    refresh,
    remove_member,
    rename_project,
    revoke_api_key,
)
from deepspace_lab.auth.models import ApiKey, User
from deepspace_lab.auth.permissions import DEFAULT_KEY_SCOPES, role_allows
from deepspace_lab.errors import AuthError, InvalidRequest, PermissionDenied
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, field, iso, json_body, principal_of

API = "/deepspace/api"


class LoginHandler(ApiHandler):
    async def post(self) -> None:
        await self.api(action="", kind="auth.login", work=self._login, public=True)

    async def _login(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        body = json_body(ctx, required=("email", "password"), allowed=("email", "password"))
        email, password = field(body, "email", str), field(body, "password", str)
        ctx.detail["email"] = email[:320]
        async with self.runtime.login_limiter.attempt(ctx.client_ip or "unknown", failures=(AuthError,)):
            pair = await login(session, secret_key=self.runtime.settings.require_secret_key(), email=email,
                               password=password, client_ip=ctx.client_ip)
        ctx.detail["user_id"] = pair.user_id
        return 200, pair.to_dict()


class RefreshHandler(ApiHandler):
    async def post(self) -> None:
        await self.api(action="", kind="auth.refresh", work=self._refresh, public=True)

    async def _refresh(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        token = field(json_body(ctx, required=("refresh_token",), allowed=("refresh_token",)), "refresh_token", str)
        pair = await refresh(session, secret_key=self.runtime.settings.require_secret_key(), refresh_token=token,
                             client_ip=ctx.client_ip)
        ctx.detail["user_id"] = pair.user_id
        return 200, pair.to_dict()


class LogoutHandler(ApiHandler):
    async def post(self) -> None:
        await self.api(action="", kind="auth.logout", work=self._logout)

    async def _logout(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        principal = principal_of(ctx)
        if principal.session_id is None:
            raise PermissionDenied("logout ends a login session; API keys are revoked instead",
                                   code="not_a_session")
        await logout(session, session_id=principal.session_id)
        return 204, None


class MeHandler(ApiHandler):
    async def get(self) -> None:
        await self.api(action="", kind="api.me", work=self._me)

    async def _me(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        p = principal_of(ctx)
        user = await session.get(User, p.user_id)
        assert user is not None
        return 200, {
            "user": {"id": user.id, "email": user.email, "name": user.name,
                     "is_platform_admin": user.is_platform_admin},
            "org_id": p.org_id, "project_id": p.project_id, "role": p.role, "via": p.via,
            "scopes": list(p.scopes) if p.api_key_id else None,
            "orgs": [{"id": m.org_id, "name": m.org_name, "role": m.role}
                     for m in await memberships_of(session, p.user_id)],
        }


class OrgsHandler(ApiHandler):
    async def get(self) -> None:
        await self.api(action="account.read", kind="api.orgs.list", work=self._list)

    async def _list(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        rows = await memberships_of(session, principal_of(ctx).user_id)
        return 200, {"data": [{"id": m.org_id, "name": m.org_name, "role": m.role} for m in rows]}


def _member_json(user: User, role: str) -> dict[str, Any]:
    return {"user_id": user.id, "email": user.email, "name": user.name, "role": role, "status": user.status}


class MembersHandler(ApiHandler):
    async def get(self) -> None:
        await self.api(action="account.read", kind="api.members.list", work=self._list)

    async def post(self) -> None:
        await self.api(action="members.write", kind="api.members.add", work=self._add)

    async def _list(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        rows = await list_members(session, org_id=principal_of(ctx).org_id)
        return 200, {"data": [_member_json(user, member.role) for user, member in rows]}

    async def _add(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        p = principal_of(ctx)
        body = json_body(ctx, required=("email", "role"), allowed=("email", "role"))
        member = await add_member(session, org_id=p.org_id, email=field(body, "email", str),
                                  role=field(body, "role", str), acting_role=p.role)
        user = await session.get(User, member.user_id)
        assert user is not None
        ctx.detail.update(target_user_id=user.id, before=None, after={"role": member.role})
        return 201, _member_json(user, member.role)


class MemberHandler(ApiHandler):
    async def patch(self, user_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            p = principal_of(ctx)
            role = field(json_body(ctx, required=("role",), allowed=("role",)), "role", str)
            before, after = await change_role(session, org_id=p.org_id, user_id=user_id, role=role,
                                              acting_role=p.role)
            user = await session.get(User, user_id)
            assert user is not None
            ctx.detail.update(target_user_id=user_id, before={"role": before}, after={"role": after})
            return 200, _member_json(user, after)

        await self.api(action="members.write", kind="api.members.role", work=work)

    async def delete(self, user_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            p = principal_of(ctx)
            role = await remove_member(session, org_id=p.org_id, user_id=user_id, acting_role=p.role)
            ctx.detail.update(target_user_id=user_id, before={"role": role}, after=None)
            return 204, None

        await self.api(action="members.write", kind="api.members.remove", work=work)


def _project_json(project: Any) -> dict[str, Any]:
    return {"id": project.id, "org_id": project.org_id, "name": project.name, "created_at": iso(project.created_at)}


class ProjectsHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, {"data": [_project_json(p) for p in await list_projects(session,
                                                                                 org_id=principal_of(ctx).org_id)]}

        await self.api(action="account.read", kind="api.projects.list", work=work)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            name = field(json_body(ctx, required=("name",), allowed=("name",)), "name", str)
            project = await create_project(session, org_id=principal_of(ctx).org_id, name=name)
            ctx.detail.update(project_id=project.id, after={"name": project.name})
            return 201, _project_json(project)

        await self.api(action="projects.write", kind="api.projects.create", work=work)


class ProjectHandler(ApiHandler):
    async def get(self, project_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, _project_json(await get_project(session, org_id=principal_of(ctx).org_id,
                                                        project_id=project_id))

        await self.api(action="account.read", kind="api.projects.read", work=work)

    async def patch(self, project_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            name = field(json_body(ctx, required=("name",), allowed=("name",)), "name", str)
            before = (await get_project(session, org_id=principal_of(ctx).org_id, project_id=project_id)).name
            project = await rename_project(session, org_id=principal_of(ctx).org_id, project_id=project_id, name=name)
            ctx.detail.update(project_id=project_id, before={"name": before}, after={"name": project.name})
            return 200, _project_json(project)

        await self.api(action="projects.write", kind="api.projects.rename", work=work)

    async def delete(self, project_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            await delete_project(session, org_id=principal_of(ctx).org_id, project_id=project_id)
            ctx.detail.update(project_id=project_id)
            return 204, None

        await self.api(action="projects.write", kind="api.projects.delete", work=work)


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "project_id": key.project_id,
            "user_id": key.user_id, "scopes": list(key.scopes or ()), "created_at": iso(key.created_at),
            "expires_at": iso(key.expires_at), "revoked_at": iso(key.revoked_at),
            "last_used_at": iso(key.last_used_at)}


class KeysHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            p = principal_of(ctx)
            mine_only = not role_allows(p.role, "keys.manage")
            keys = await list_api_keys(session, org_id=p.org_id, user_id=p.user_id if mine_only else None)
            return 200, {"data": [_key_json(k) for k in keys]}

        await self.api(action="keys.own", kind="api.keys.list", work=work)

    async def post(self) -> None:
        await self.api(action="keys.own", kind="api.keys.create", work=self._create)

    async def _create(self, ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
        p = principal_of(ctx)
        body = json_body(ctx, allowed=("name", "project_id", "scopes", "expires_at"))
        scopes = field(body, "scopes", list, list(DEFAULT_KEY_SCOPES))
        if not all(isinstance(s, str) for s in scopes):
            raise InvalidRequest("`scopes` is a list of strings", code="invalid_type", param="scopes")
        scopes = check_scopes(scopes, is_platform_admin=p.is_platform_admin)
        project_id = field(body, "project_id", str, p.project_id)
        if not project_id:  # "" is not "my project" (leave the field out for that)
            raise InvalidRequest("`project_id` must be a project id", code="invalid_value", param="project_id")
        await get_project(session, org_id=p.org_id, project_id=project_id)
        expires_raw = field(body, "expires_at", str)
        try:  # "" is not "never" (leave the field out for that); UTC must stay within the calendar
            expires_at = datetime.fromisoformat(expires_raw) if expires_raw is not None else None
            if expires_at is not None and expires_at.tzinfo is not None:
                expires_at = expires_at.astimezone(UTC)
        except (ValueError, OverflowError):
            raise InvalidRequest("`expires_at` is an ISO 8601 time", code="invalid_value", param="expires_at") from None
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidRequest("`expires_at` needs a time zone (e.g. ...Z)", code="invalid_value", param="expires_at")
        key, plaintext = await create_api_key(
            session, secret_key=self.runtime.settings.require_secret_key(), org_id=p.org_id, project_id=project_id,
            user_id=p.user_id, name=field(body, "name", str, "") or "", scopes=scopes, expires_at=expires_at)
        ctx.detail.update(key_id=key.id, key_prefix=key.prefix, scopes=list(scopes))
        return 201, dict(_key_json(key), api_key=plaintext)


class KeyHandler(ApiHandler):
    async def delete(self, key_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            p = principal_of(ctx)
            mine_only = not role_allows(p.role, "keys.manage")
            key = await revoke_api_key(session, org_id=p.org_id, key_id=key_id,
                                       user_id=p.user_id if mine_only else None)
            ctx.detail.update(key_id=key.id, key_prefix=key.prefix)
            return 200, _key_json(key)

        await self.api(action="keys.own", kind="api.keys.revoke", work=work)


ID = r"([A-Za-z0-9_]{1,40})"


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API + "/auth/login", LoginHandler, kwargs),
        (API + "/auth/refresh", RefreshHandler, kwargs),
        (API + "/auth/logout", LogoutHandler, kwargs),
        (API + "/me", MeHandler, kwargs),
        (API + "/orgs", OrgsHandler, kwargs),
        (API + "/members", MembersHandler, kwargs),
        (API + "/members/" + ID, MemberHandler, kwargs),
        (API + "/projects", ProjectsHandler, kwargs),
        (API + "/projects/" + ID, ProjectHandler, kwargs),
        (API + "/keys", KeysHandler, kwargs),
        (API + "/keys/" + ID, KeyHandler, kwargs),
    ]
