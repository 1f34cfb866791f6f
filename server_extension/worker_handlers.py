"""The Worker's product API for the caller's org: its jobs, starting exports and statements,
and the usage summary over the roll-ups. Thin: the org comes from the credential."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth.models import Project
from deepspace_lab.billing import parse_time
from deepspace_lab.billing.rollups import rollup_marks, usage_summary
from deepspace_lab.db.base import utcnow
from deepspace_lab.errors import InvalidRequest, NotFound
from deepspace_lab.jobs import get_job, list_jobs, submit_job
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, json_body, principal_of, query_params

API = "/deepspace/api"
ID = r"([A-Za-z0-9_]{1,40})"
SUMMARY_DEFAULT_DAYS = 30


def check_id(value: str | None, param: str) -> str | None:
    """A query parameter that names an id: absent, or letters, digits and _ (1-40)."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_]{1,40}", value):
        raise InvalidRequest(f"`{param}` is not an id (letters, digits and _, at most 40)", code="invalid_id",
                             param=param)
    return value


def _created_by(ctx: RequestContext) -> str:
    p = principal_of(ctx)
    return f"key:{p.api_key_id}" if p.api_key_id else f"user:{p.user_id}"


class JobsHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            arg = query_params(self, allowed=("state", "kind", "project_id", "cursor", "limit")).get
            kind = arg("kind")
            if kind is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", kind):
                raise InvalidRequest("`kind` is a job kind such as `export`", code="invalid_value", param="kind")
            page = await list_jobs(session, org_id=principal_of(ctx).org_id, state=arg("state"), kind=kind,
                                   project_id=check_id(arg("project_id"), "project_id"), limit=arg("limit"),
                                   cursor=arg("cursor") or None)
            return 200, {"object": "list", "data": [j.to_dict() for j in page.jobs], "next_cursor": page.next_cursor}

        await self.api(action="jobs.read", kind="api.job.list", work=work)


class JobHandler(ApiHandler):
    async def get(self, job_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, (await get_job(session, org_id=principal_of(ctx).org_id, job_id=job_id)).to_dict()

        await self.api(action="jobs.read", kind="api.job.read", work=work)


async def _project_of_org(session: AsyncSession, org_id: str, project_id: Any) -> None:
    if project_id is None:
        return
    if not isinstance(project_id, str) or check_id(project_id, "project_id") is None:
        raise InvalidRequest("`project_id` must be a string", code="invalid_type", param="project_id")
    if (await session.execute(
            select(Project.id).where(Project.id == project_id, Project.org_id == org_id))).first() is None:
        raise NotFound(f"no project {project_id!r}", code="project_not_found", param="project_id")


class ExportsHandler(ApiHandler):
    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("dataset",),
                             allowed=("dataset", "format", "since", "until", "project_id"))
            p = principal_of(ctx)
            await _project_of_org(session, p.org_id, body.get("project_id"))
            job = await submit_job(self.runtime.engine, self.runtime.job_queue, kind="export", trace_id=ctx.trace_id,
                                   org_id=p.org_id, project_id=p.project_id, created_by=_created_by(ctx), params=body)
            ctx.detail["job_id"] = job.id
            return 202, job.to_dict()

        await self.api(action="exports.create", kind="api.export.create", work=work)


class StatementsHandler(ApiHandler):
    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("month",), allowed=("month",))
            p = principal_of(ctx)
            job = await submit_job(self.runtime.engine, self.runtime.job_queue, kind="statement",
                                   trace_id=ctx.trace_id, org_id=p.org_id, created_by=_created_by(ctx), params=body)
            ctx.detail["job_id"] = job.id
            return 202, job.to_dict()

        await self.api(action="exports.create", kind="api.statement.create", work=work)


class UsageSummaryHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            arg = query_params(self, allowed=("group_by", "since", "until")).get
            raw_until, raw_since = arg("until"), arg("since")
            until = parse_time(raw_until, param="until") if raw_until is not None else utcnow()
            since = (parse_time(raw_since, param="since") if raw_since is not None
                     else until - timedelta(days=SUMMARY_DEFAULT_DAYS))
            group_by = arg("group_by", "day")
            data = await usage_summary(session, org_id=principal_of(ctx).org_id, group_by=group_by, since=since,
                                       until=until)
            marks = await rollup_marks(session)
            rolled = marks.get("hour")
            return 200, {"object": "usage_summary", "group_by": group_by, "since": since.isoformat(),
                         "until": until.isoformat(), "rolled_until": rolled.isoformat() if rolled else None,
                         "data": data}

        await self.api(action="billing.read", kind="api.usage.summary", work=work)


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API + "/jobs", JobsHandler, kwargs),
        (API + f"/jobs/{ID}", JobHandler, kwargs),
        (API + "/exports", ExportsHandler, kwargs),
        (API + "/statements", StatementsHandler, kwargs),
        (API + "/usage/summary", UsageSummaryHandler, kwargs),
    ]
