"""The Admin API's observability area: usage records and the request log across orgs, trace
lookup, the overview, exports of any org's rows, and Prometheus metrics.

Thin: the queries are :mod:`deepspace_lab.observe`'s. Org admins (signed in) see their own org
only (``target_org``); the metrics are the deployment's, for platform admins (an ``admin-read``
key is what a scraper uses).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.audit.metrics import CONTENT_TYPE
from deepspace_lab.auth.models import Org, Project
from deepspace_lab.billing.models import Hold
from deepspace_lab.billing.usage_query import parse_time
from deepspace_lab.db.base import utcnow
from deepspace_lab.errors import InvalidRequest, NotFound
from deepspace_lab.jobs import get_job, submit_job
from deepspace_lab.jobs.exports import ADMIN_DATASETS, FORMATS
from deepspace_lab.observe import (
    AUDIT_FILTERS,
    ITEM_TYPES,
    USAGE_FILTERS,
    overview,
    search_audit,
    search_usage,
    trace_items,
)
from deepspace_lab.observe._query import check_id
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .admin_api import ADMIN, AdminHandler
from .api import field, json_body, principal_of, query_params
from .openapi import ID, NSTR, STR, TIME, obj, op, path_id, ref

OVERVIEW_DEFAULT_DAYS = 30
H, ORGS, PROJECTS = (cast(Table, m.__table__) for m in (Hold, Org, Project))


def _int_param(value: str | None, param: str, *, default: int, lo: int, hi: int) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 18 and lo <= int(value) <= hi):
        raise InvalidRequest(f"`{param}` must be an integer {lo}-{hi}", code="invalid_value", param=param)
    return int(value)


class RowSearchHandler(AdminHandler):
    """A filtered keyset page of rows across orgs: usage records or the request log (which one is
    given by the route's ``filters``, ``search`` and audit ``kind``)."""

    def initialize(self, runtime: Runtime, filters: tuple[str, ...] = (), search: Any = None,
                   kind: str = "") -> None:
        super().initialize(runtime)
        self._filters, self._search, self._kind = filters, search, kind

    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            args = query_params(self, allowed=(*self._filters, "cursor", "limit"))
            org = self.target_org(ctx, check_id(args.get("org_id"), "org_id"))
            page = await self._search(session, org_id=org, filters=args, cursor=args.get("cursor"),
                                      limit=args.get("limit"))
            return 200, page.to_dict()

        await self.admin(kind=self._kind, work=work)


class TraceHandler(AdminHandler):
    async def get(self, trace_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            items = await trace_items(session, trace_id, org_id=self.org_scope(ctx))
            if not items:
                raise NotFound(f"nothing carries trace {trace_id!r}", code="trace_not_found", param="trace_id")
            return 200, {"object": "trace", "trace_id": trace_id, "items": items}

        await self.admin(kind="admin.audit.trace", work=work)


class OverviewHandler(AdminHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            args = query_params(self, allowed=("org_id", "since", "until", "days", "top", "low_balance_micros"))
            org = self.target_org(ctx, check_id(args.get("org_id"), "org_id"))
            until = parse_time(args["until"], param="until") if "until" in args else utcnow()
            if "since" in args and "days" in args:
                raise InvalidRequest("give `since` or `days`, not both", code="invalid_value", param="days")
            days = _int_param(args.get("days"), "days", default=OVERVIEW_DEFAULT_DAYS, lo=1, hi=400)
            since = parse_time(args["since"], param="since") if "since" in args else until - timedelta(days=days)
            return 200, await overview(
                session, org_id=org, since=since, until=until,
                top=_int_param(args.get("top"), "top", default=10, lo=1, hi=100),
                low_balance_micros=_int_param(args.get("low_balance_micros"), "low_balance_micros",
                                              default=self.runtime.settings.webhook_low_balance_micros, lo=0,
                                              hi=10**15))

        await self.admin(kind="admin.overview.read", work=work)


async def _check_scope(session: AsyncSession, org_id: str | None, project_id: str | None) -> None:
    """404 for an org or a project (of ``org_id`` when given) that does not exist."""
    if org_id is not None and (await session.execute(select(ORGS.c.id).where(ORGS.c.id == org_id))).first() is None:
        raise NotFound(f"no org {org_id!r}", code="org_not_found", param="org_id")
    if project_id is not None:
        query = select(PROJECTS.c.id).where(PROJECTS.c.id == project_id)
        if org_id is not None:
            query = query.where(PROJECTS.c.org_id == org_id)
        if (await session.execute(query)).first() is None:
            raise NotFound(f"no project {project_id!r}", code="project_not_found", param="project_id")


class AdminExportsHandler(AdminHandler):
    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("dataset",),
                             allowed=("dataset", "format", "since", "until", "org_id", "project_id"))
            for name in body:  # every field a string: a null is a 400, not "absent"
                field(body, name, str)
            org = self.target_org(ctx, check_id(body.get("org_id"), "org_id"))
            if body["dataset"] not in ADMIN_DATASETS:
                raise InvalidRequest(f"`dataset` must be one of {list(ADMIN_DATASETS)}", code="invalid_value",
                                     param="dataset")
            await _check_scope(session, org, check_id(body.get("project_id"), "project_id"))
            params = {k: v for k, v in body.items() if k != "org_id"} | {"orgs": org or "*"}
            p = principal_of(ctx)
            job = await submit_job(self.runtime.engine, self.runtime.job_queue, kind="export", trace_id=ctx.trace_id,
                                   org_id=p.org_id, project_id=p.project_id, created_by=f"admin:{p.actor}",
                                   params=params)
            ctx.detail.update(job_id=job.id, before=None, after={"export": params})
            return 202, job.to_dict()

        await self.admin(kind="admin.export.create", work=work, write=True)


class AdminStatementsHandler(AdminHandler):
    """An org's monthly statement through the Worker's statement job; the files land in the
    admin's own org's files, as an admin export's do."""

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("month",), allowed=("month", "org_id"))
            for name in body:
                field(body, name, str)
            org = self.target_org(ctx, check_id(body.get("org_id"), "org_id"))
            if org is None:
                raise InvalidRequest("name the org whose statement to make (`org_id`)", code="missing_field",
                                     param="org_id")
            await _check_scope(session, org, None)
            params, p = {"month": body["month"], "org_id": org}, principal_of(ctx)
            job = await submit_job(self.runtime.engine, self.runtime.job_queue, kind="statement",
                                   trace_id=ctx.trace_id, org_id=p.org_id, project_id=p.project_id,
                                   created_by=f"admin:{p.actor}", params=params)
            ctx.detail.update(job_id=job.id, before=None, after={"statement": params})
            return 202, job.to_dict()

        await self.admin(kind="admin.statement.create", work=work, write=True)


class AdminExportHandler(AdminHandler):
    async def get(self, job_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            query_params(self, allowed=())
            job = await get_job(session, org_id=principal_of(ctx).org_id, job_id=job_id)
            if job.kind != "export" or "orgs" not in job.params:
                raise NotFound(f"no admin export {job_id!r}", code="job_not_found")
            org = self.org_scope(ctx)
            if org is not None and job.params["orgs"] != org:
                raise NotFound(f"no admin export {job_id!r}", code="job_not_found")
            return 200, job.to_dict()

        await self.admin(kind="admin.export.read", work=work)


class MetricsHandler(AdminHandler):
    """Prometheus text format; the counters are this process's, the hold gauges the database's."""

    async def get(self) -> None:
        async def endpoint(ctx: RequestContext) -> None:
            query_params(self, allowed=())
            async with self.runtime.sessions() as session:
                lapsed = func.count().filter(H.c.lease_expires_at < utcnow())
                row = (await session.execute(select(func.count(), lapsed).where(H.c.state == "open"))).one()
            text = self.runtime.metrics.render(open_holds=int(row[0]), holds_past_lease=int(row[1]))
            assert ctx.sink is not None
            ctx.sink.set_header("Content-Type", CONTENT_TYPE)
            ctx.sink.end_stream(text)

        await self.runtime.pipeline.run(self.context(kind="admin.metrics.read", action="admin.read"), endpoint)
        self.finish_sink()


_ROW = {"type": "object", "additionalProperties": True}
_COUNTS = {"requests": {"type": "integer"}, "prompt_tokens": {"type": "integer"},
           "completion_tokens": {"type": "integer"}, "cost_micros": {"type": "integer"}, "errors": {"type": "integer"}}
_RATE = obj({"requests": {"type": "integer"}, "errors": {"type": "integer"},
             "error_rate": {"type": ["number", "null"]}}, ["requests", "errors", "error_rate"])

OPENAPI_SCHEMAS: dict[str, Any] = {
    "AdminRowPage": obj({"object": {"const": "list"}, "data": {"type": "array", "items": _ROW},
                         "next_cursor": NSTR}, ["object", "data", "next_cursor"]),
    "TraceItem": obj({"type": {"enum": list(ITEM_TYPES)}, "at": TIME, "id": STR, "data": _ROW},
                     ["type", "at", "id", "data"]),
    "Trace": obj({"object": {"const": "trace"}, "trace_id": STR, "items": {"type": "array", "items": ref("TraceItem")}},
                 ["object", "trace_id", "items"]),
    "TrendRow": obj({"key": STR, **_COUNTS, "org_name": NSTR}, ["key", *_COUNTS]),
    "Overview": obj({
        "object": {"const": "overview"}, "since": TIME, "until": TIME, "org_id": NSTR,
        "trends": obj({f"by_{k}": {"type": "array", "items": ref("TrendRow")} for k in ("day", "model", "org")},
                      ["by_day", "by_model", "by_org"]),
        "top_spenders": {"type": "array", "items": ref("TrendRow")},
        "anomalies": obj({
            "holds_past_lease": obj({"count": {"type": "integer"}, "oldest_lease_expires_at": NSTR},
                                    ["count", "oldest_lease_expires_at"]),
            "low_balances": obj({"threshold_micros": {"type": "integer"}, "count": {"type": "integer"},
                                 "lowest": {"type": "array", "items": obj({
                                     "org_id": STR, "org_name": STR, "balance_micros": {"type": "integer"},
                                     "frozen_micros": {"type": "integer"}},
                                     ["org_id", "org_name", "balance_micros", "frozen_micros"])}},
                                ["threshold_micros", "count", "lowest"]),
            "reconciliation": {"type": ["object", "null"]},
            "error_rate": obj({"today": _RATE, "baseline_7d": _RATE, "ratio": {"type": ["number", "null"]}},
                              ["today", "baseline_7d", "ratio"])},
            ["holds_past_lease", "low_balances", "reconciliation", "error_rate"]),
        "rolled_until": {"type": "object", "additionalProperties": STR}},
        ["object", "since", "until", "org_id", "trends", "top_spenders", "anomalies", "rolled_until"]),
    "AdminStatementRequest": obj({
        "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "org_id": {**ID, "description": "the org whose statement (an org admin: their own, the default)"}},
        ["month"]),
    "AdminExportRequest": obj({
        "dataset": {"enum": list(ADMIN_DATASETS)}, "format": {"enum": sorted(FORMATS)},
        "since": TIME, "until": TIME,
        "org_id": {**ID, "description": "one org's rows; absent: every org (an org admin: always their own)"},
        "project_id": {**ID, "description": "usage and audit rows of one project"}}, ["dataset"]),
}


def _q(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    return param | ({"description": description} if description else {})


_TEXT = {"type": "string", "minLength": 1}
_WINDOW = [_q("since", TIME, "inclusive; ISO-8601, UTC when no offset is given"),
           _q("until", TIME, "exclusive; ISO-8601, UTC when no offset is given")]
_PAGING = [_q("cursor", STR), _q("limit", {"type": "integer", "minimum": 1, "maximum": 200})]


def openapi_paths() -> dict[str, Any]:
    usage = [_q(n, ID) for n in ("org_id", "project_id", "user_id", "api_key_id")] + [
        _q("model", {**_TEXT, "maxLength": 200}),
        _q("status", {"enum": ["pending", "captured", "released", "expired"]}),
        _q("measured", {"enum": ["pending", "upstream", "drained", "estimated", "none", "unknown"]})]
    audit = [_q(n, ID) for n in ("org_id", "user_id", "api_key_id")] + [
        _q("model", {**_TEXT, "maxLength": 200}),
        _q("status_code", {"type": "integer", "minimum": 100, "maximum": 599}),
        _q("error_code", {**_TEXT, "maxLength": 64}), _q("kind", {**_TEXT, "maxLength": 40}),
        _q("path", {**_TEXT, "maxLength": 300}, "a prefix of the request path"),
        _q("client_ip", {**_TEXT, "maxLength": 64})]
    overview_params = [_q("org_id", ID), *_WINDOW,
                       _q("days", {"type": "integer", "minimum": 1, "maximum": 400}, "the window (default 30) "
                          "ending at `until`, instead of `since`"),
                       _q("top", {"type": "integer", "minimum": 1, "maximum": 100}),
                       _q("low_balance_micros", {"type": "integer", "minimum": 0, "maximum": 10**15})]
    metrics = op("Prometheus metrics of this gateway process (platform admins; an admin-read key)", "200", None)
    metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return {
        f"{ADMIN}/usage": {"get": op("Usage records across orgs, filtered, keyset paged (org admins: their own)",
                                     "200", "AdminRowPage", params=usage + _WINDOW + _PAGING, errors=("404",))},
        f"{ADMIN}/audit": {"get": op("Request-log search over audit rows, keyset paged (org admins: their own)",
                                     "200", "AdminRowPage", params=audit + _WINDOW + _PAGING, errors=("404",))},
        f"{ADMIN}/traces/{{trace_id}}": {"get": op(
            "Everything that carried one trace id, in time order (org admins: their own org's items)", "200",
            "Trace", errors=("400", "404"),
            params=[{"name": "trace_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}}])},
        f"{ADMIN}/overview": {"get": op("Trends, top spenders and anomaly numbers (org admins: their own)", "200",
                                        "Overview", params=overview_params, errors=("404",))},
        f"{ADMIN}/exports": {"post": op("Export any org's (or every org's) usage, transactions or audit rows "
                                        "through the Worker; returns the job", "202", "Job",
                                        body="AdminExportRequest", errors=("404", "503"))},
        f"{ADMIN}/statements": {"post": op("An org's monthly statement (Markdown and CSV) through the Worker, into "
                                           "the admin's own org's files; returns the job", "202", "Job",
                                           body="AdminStatementRequest", errors=("404", "503"))},
        f"{ADMIN}/exports/{{job_id}}": {"get": op("An admin export job, with its file link when done", "200", "Job",
                                                  errors=("404",), params=[path_id("job_id")])},
        f"{ADMIN}/metrics": {"get": metrics},
    }


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (ADMIN + "/usage", RowSearchHandler,
         {**kwargs, "filters": USAGE_FILTERS, "search": search_usage, "kind": "admin.usage.list"}),
        (ADMIN + "/audit", RowSearchHandler,
         {**kwargs, "filters": AUDIT_FILTERS, "search": search_audit, "kind": "admin.audit.search"}),
        (ADMIN + r"/traces/([A-Za-z0-9_\-]{1,32})", TraceHandler, kwargs),
        (ADMIN + "/overview", OverviewHandler, kwargs),
        (ADMIN + "/exports", AdminExportsHandler, kwargs),
        (ADMIN + "/statements", AdminStatementsHandler, kwargs),
        (ADMIN + "/exports/([A-Za-z0-9_]{1,40})", AdminExportHandler, kwargs),
        (ADMIN + "/metrics", MetricsHandler, kwargs),
    ]
