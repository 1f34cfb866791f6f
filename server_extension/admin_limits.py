"""Admin API, the effect of the rate limits: ``GET /limits?org_id=&project_id=&api_key_id=`` answers
the limits a caller of that org (project, key) is under and how much of each is used now — the
same numbers the Gateway's rate-limit step checks the next request against (in this process's
limiter, or Redis when configured). Org admins on their own org; a project or key of another
org is 404."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth.models import ApiKey, Org, Project
from deepspace_lab.errors import InvalidRequest, NotFound
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.pipeline.policy import rate_usage, snapshot
from deepspace_lab.runtime import Runtime

from .admin_accounts import admin_params
from .admin_api import ADMIN, AdminHandler
from .openapi import ID, NSTR, STR, obj, op


class RateUsageHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = admin_params(self, allowed=("org_id", "project_id", "api_key_id"))
            if "org_id" not in params:
                raise InvalidRequest("name the org with `org_id`", code="missing_field", param="org_id")
            org_id = self.target_org(ctx, params["org_id"])
            project_id, key_id = params.get("project_id"), params.get("api_key_id")
            if await session.get(Org, org_id) is None:
                raise NotFound(f"no org {org_id!r}", code="org_not_found", param="org_id")
            checks: tuple[tuple[type[Project] | type[ApiKey], str | None, str], ...] = (
                (Project, project_id, "project_not_found"), (ApiKey, key_id, "api_key_not_found"))
            for model, row_id, code in checks:
                owner = await session.scalar(select(model.org_id).where(model.id == row_id)) if row_id else None
                if row_id and owner != org_id:  # absent (owner None) or another org's
                    raise NotFound(f"no such {code.removesuffix('_not_found')} in this org", code=code)
            services = self.runtime.services
            rates = await rate_usage(services, await snapshot(services, ctx), org_id=org_id, project_id=project_id,
                                     api_key_id=key_id)
            return 200, {"object": "rate_usage", "org_id": org_id, "project_id": project_id, "api_key_id": key_id,
                         "data": rates}

        await self.admin(kind="admin.limits.usage", work=work)


_RATE = {"scope": {"enum": ["org", "project", "key"]}, "scope_id": STR,
         "limit": {"enum": ["requests_per_minute", "tokens_per_minute", "concurrent_requests"]},
         "max": {"type": "integer"}, "window_s": {"type": ["number", "null"]},
         "used": {"type": ["integer", "null"], "description": "now: this window's count, or requests in flight"}}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "AdminRateUsage": obj({"object": {"const": "rate_usage"}, "org_id": STR, "project_id": NSTR, "api_key_id": NSTR,
                           "data": {"type": "array", "items": obj(_RATE, list(_RATE))}},
                          ["object", "org_id", "project_id", "api_key_id", "data"]),
}


def openapi_paths() -> dict[str, Any]:
    ids = [{"name": name, "in": "query", "required": name == "org_id", "schema": ID}
           for name in ("org_id", "project_id", "api_key_id")]
    return {f"{ADMIN}/limits": {"get": op(
        "The rate limits a caller of this org (and project, key) is under, with how much of each is used now",
        "200", "AdminRateUsage", errors=("404",), params=ids)}}


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    return [(ADMIN + "/limits", RateUsageHandler, {"runtime": runtime})]
