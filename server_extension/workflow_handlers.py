"""Workflows' product API: definitions and their versions, runs (start, read, cancel, resume,
fork) and a run's events, paged or streamed (SSE). Thin: the org comes from the credential; the
engine (deepspace_lab.workflows) does the work and the Worker runs the steps."""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime
from deepspace_lab.workflows import engine, service
from deepspace_lab.workflows.definitions import workflow_schema

from .api import ApiHandler, field, json_body, principal_of, query_params
from .openapi import ID, NSTR, NTIME, STR, TIME, obj, op, path_id, ref
from .worker_handlers import _created_by, check_id

API = "/deepspace/api"
IDP = r"([A-Za-z0-9_]{1,40})"
#: how often a streamed run's events are read
EVENTS_POLL_S = 0.25
MAX_SOURCE_CHARS = 256 * 1024


class WorkflowSchemaHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, workflow_schema()

        await self.api(action="jobs.read", kind="api.workflow.schema", work=work)


class WorkflowsHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            arg = query_params(self, allowed=("project_id",)).get
            data = await service.list_workflows(session, org_id=principal_of(ctx).org_id,
                                                project_id=check_id(arg("project_id"), "project_id"))
            return 200, {"object": "list", "data": data}

        await self.api(action="jobs.read", kind="api.workflow.list", work=work)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("source",), allowed=("source", "format"))
            source = field(body, "source", str)
            if len(source) > MAX_SOURCE_CHARS:
                raise InvalidRequest(f"`source` is longer than {MAX_SOURCE_CHARS} characters", code="invalid_value",
                                     param="source")
            fmt = field(body, "format", str)
            p = principal_of(ctx)
            workflow, version = await service.save_workflow(session, org_id=p.org_id, project_id=p.project_id,
                                                            source=source, fmt=fmt, created_by=_created_by(ctx))
            ctx.detail.update(workflow_id=workflow["id"], version=version["version"])
            return 201, {**workflow, "version": version}

        await self.api(action="workflows", kind="api.workflow.save", work=work)


class WorkflowHandler(ApiHandler):
    async def get(self, workflow_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            org = principal_of(ctx).org_id
            workflow = await service.get_workflow(session, org_id=org, workflow_id=workflow_id)
            return 200, {**workflow, "versions": await service.list_versions(session, org_id=org,
                                                                             workflow_id=workflow_id)}

        await self.api(action="jobs.read", kind="api.workflow.read", work=work)


class WorkflowVersionHandler(ApiHandler):
    async def get(self, workflow_id: str, version: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, await service.get_version(session, org_id=principal_of(ctx).org_id, workflow_id=workflow_id,
                                                  version=int(version))

        await self.api(action="jobs.read", kind="api.workflow.version", work=work)


def _inputs(body: dict[str, Any]) -> dict[str, Any]:
    return dict(field(body, "inputs", dict, {}))


class RunsHandler(ApiHandler):
    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            arg = query_params(self, allowed=("workflow_id", "state", "cursor", "limit")).get
            data, nxt = await service.list_runs(session, org_id=principal_of(ctx).org_id,
                                                workflow_id=check_id(arg("workflow_id"), "workflow_id"),
                                                state=arg("state"), limit=arg("limit"), cursor=arg("cursor") or None)
            return 200, {"object": "list", "data": data, "next_cursor": nxt}

        await self.api(action="jobs.read", kind="api.workflow_run.list", work=work)

    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            body = json_body(ctx, required=("workflow_id",),
                             allowed=("workflow_id", "version", "inputs", "budget_micros"))
            p = principal_of(ctx)
            workflow_id = check_id(field(body, "workflow_id", str), "workflow_id")
            version = await service.get_version(session, org_id=p.org_id, workflow_id=str(workflow_id),
                                                version=field(body, "version", int))
            budget = field(body, "budget_micros", int)
            if budget is not None and budget < 0:
                raise InvalidRequest("`budget_micros` must be 0 or more", code="invalid_value", param="budget_micros")
            workflow = await service.get_workflow(session, org_id=p.org_id, workflow_id=str(workflow_id))
            run = await engine.start_run(
                self.runtime.engine, self.runtime.job_queue, self.runtime.settings, org_id=p.org_id,
                project_id=workflow["project_id"], user_id=p.user_id, definition=version["definition"],
                inputs=_inputs(body), trace_id=ctx.trace_id, created_by=_created_by(ctx), workflow_id=workflow_id,
                version_id=version["id"], budget_micros=budget)
            ctx.detail["run_id"] = run["id"]
            return 202, await _run(self, p.org_id, run["id"])

        await self.api(action="workflows", kind="api.workflow_run.start", work=work)


async def _run(handler: ApiHandler, org_id: str, run_id: str) -> dict[str, Any]:
    async with handler.runtime.engine.connect() as conn:
        return await service.get_run(conn, org_id=org_id, run_id=run_id)


class RunHandler(ApiHandler):
    async def get(self, run_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            return 200, await service.get_run(session, org_id=principal_of(ctx).org_id, run_id=run_id)

        await self.api(action="jobs.read", kind="api.workflow_run.read", work=work)


class RunActionHandler(ApiHandler):
    action = "cancel"

    async def post(self, run_id: str) -> None:
        action = self.action

        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            rt, p = self.runtime, principal_of(ctx)
            ctx.detail["run_id"] = run_id
            if action == "fork":
                body = json_body(ctx, required=("from",), allowed=("from", "inputs"))
                run = await engine.fork_run(rt.engine, rt.job_queue, rt.settings, org_id=p.org_id, run_id=run_id,
                                            from_step=field(body, "from", str), inputs=_inputs(body),
                                            trace_id=ctx.trace_id, user_id=p.user_id, created_by=_created_by(ctx))
                ctx.detail["fork_id"] = run["id"]
                return 202, await _run(self, p.org_id, run["id"])
            json_body(ctx, allowed=())
            act = engine.cancel_run if action == "cancel" else engine.resume_run
            await act(rt.engine, rt.job_queue, rt.settings, org_id=p.org_id, run_id=run_id)
            return 200 if action == "cancel" else 202, await _run(self, p.org_id, run_id)

        await self.api(action="workflows", kind=f"api.workflow_run.{action}", work=work)


class RunCancelHandler(RunActionHandler):
    action = "cancel"

    async def post(self, run_id: str) -> None:
        await super().post(run_id)


class RunResumeHandler(RunActionHandler):
    action = "resume"

    async def post(self, run_id: str) -> None:
        await super().post(run_id)


class RunForkHandler(RunActionHandler):
    action = "fork"

    async def post(self, run_id: str) -> None:
        await super().post(run_id)


def _sse(event: dict[str, Any]) -> bytes:
    return (f"id: {event['id']}\nevent: {event['event']}\n".encode() + b"data: " + orjson.dumps(event) + b"\n\n")


class RunEventsHandler(ApiHandler):
    def _params(self) -> tuple[int, int]:
        arg = query_params(self, allowed=("after", "limit")).get
        after_text = arg("after") or self.request.headers.get("Last-Event-ID") or "0"
        if not re.fullmatch(r"[0-9]{1,18}", after_text):
            raise InvalidRequest("`after` is an event id", code="invalid_value", param="after")
        limit_text = arg("limit") or "200"
        if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= 1000:
            raise InvalidRequest("`limit` is 1 to 1000", code="invalid_value", param="limit")
        return int(after_text), int(limit_text)

    async def get(self, run_id: str) -> None:
        if "text/event-stream" in self.request.headers.get("Accept", ""):
            await self._stream(run_id)
            return

        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            after, limit = self._params()
            data = await service.run_events(session, org_id=principal_of(ctx).org_id, run_id=run_id, after=after,
                                            limit=limit)
            return 200, {"object": "list", "data": data, "next_after": data[-1]["id"] if data else after}

        await self.api(action="jobs.read", kind="api.workflow_run.events", work=work)

    async def _stream(self, run_id: str) -> None:
        """Every event as it is recorded (SSE ``id`` = event id, ``event`` = its kind) until the run ends."""
        async def endpoint(ctx: RequestContext) -> None:
            org, sink = principal_of(ctx).org_id, ctx.sink
            assert sink is not None
            last, _ = self._params()
            async with self.runtime.engine.connect() as conn:
                await service.get_run(conn, org_id=org, run_id=run_id)  # 404 before the stream starts
            sink.start_stream()
            async for events, _state in service.follow_run(self.runtime.engine, org_id=org, run_id=run_id,
                                                           after=last, poll_s=EVENTS_POLL_S):
                if sink.client_gone:
                    break
                for event in events:
                    sink.send(_sse(event))
            sink.end_stream(b"event: end\ndata: {}\n\n")

        ctx = self.context(kind="api.workflow_run.events", action="jobs.read")
        await self.runtime.pipeline.run(ctx, endpoint)
        self.finish_sink()


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API + "/workflows/schema", WorkflowSchemaHandler, kwargs),
        (API + "/workflows", WorkflowsHandler, kwargs),
        (API + f"/workflows/{IDP}", WorkflowHandler, kwargs),
        (API + f"/workflows/{IDP}/versions/([0-9]{{1,9}})", WorkflowVersionHandler, kwargs),
        (API + "/workflow-runs", RunsHandler, kwargs),
        (API + f"/workflow-runs/{IDP}", RunHandler, kwargs),
        (API + f"/workflow-runs/{IDP}/cancel", RunCancelHandler, kwargs),
        (API + f"/workflow-runs/{IDP}/resume", RunResumeHandler, kwargs),
        (API + f"/workflow-runs/{IDP}/fork", RunForkHandler, kwargs),
        (API + f"/workflow-runs/{IDP}/events", RunEventsHandler, kwargs),
    ]


# -- the OpenAPI fragment (merged into the document by openapi.openapi_document) --------------------
_INT = {"type": "integer"}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "Workflow": obj({"id": STR, "object": {"const": "workflow"}, "name": STR, "project_id": STR,
                     "latest_version": _INT, "created_by": NSTR, "created_at": TIME,
                     "version": {"type": "object"}, "versions": {"type": "array", "items": {"type": "object"}}},
                    ["id", "object", "name", "latest_version"]),
    "WorkflowList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("Workflow")}},
                        ["object", "data"]),
    "WorkflowVersion": obj({"id": STR, "object": {"const": "workflow_version"}, "workflow_id": STR, "version": _INT,
                            "format": {"enum": ["yaml", "json"]}, "definition": {"type": "object"},
                            "source": STR, "created_by": NSTR, "created_at": TIME},
                           ["id", "object", "workflow_id", "version", "definition"]),
    "NewWorkflow": obj({"source": {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE_CHARS,
                                   "description": "the definition as YAML or JSON text"},
                        "format": {"enum": ["yaml", "json"]}}, ["source"]),
    "StepRun": obj({"step_id": STR, "kind": STR, "state": STR, "attempts": _INT}, ["step_id", "state"], extra=True),
    "WorkflowRun": obj({
        "id": STR, "object": {"const": "workflow_run"}, "name": STR, "workflow_id": NSTR, "version_id": NSTR,
        "project_id": STR, "state": {"enum": ["running", "cancelling", "succeeded", "failed", "cancelled"]},
        "inputs": {"type": "object"}, "trace_id": STR, "created_by": NSTR,
        "budget_micros": {"type": ["integer", "null"]}, "cost_micros": _INT, "tokens": _INT,
        "error_code": NSTR, "error": NSTR, "forked_from": NSTR, "created_at": TIME, "started_at": NTIME,
        "finished_at": NTIME, "steps": {"type": "array", "items": ref("StepRun")}},
        ["id", "object", "state", "trace_id"]),
    "WorkflowRunPage": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("WorkflowRun")},
                            "next_cursor": NSTR}, ["object", "data", "next_cursor"]),
    "NewWorkflowRun": obj({"workflow_id": ID, "version": {"type": "integer", "minimum": 1},
                           "inputs": {"type": "object"}, "budget_micros": {"type": "integer", "minimum": 0}},
                          ["workflow_id"]),
    "WorkflowFork": obj({"from": {"type": "string", "minLength": 1}, "inputs": {"type": "object"}}, ["from"]),
    "WorkflowEvent": obj({"id": _INT, "event": STR, "step_id": NSTR, "attempt": _INT, "message": NSTR,
                          "data": {"type": ["object", "null"]}, "created_at": TIME}, ["id", "event"]),
    "WorkflowEventPage": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("WorkflowEvent")},
                              "next_after": _INT}, ["data", "next_after"]),
}


def openapi_paths() -> dict[str, Any]:
    run = [path_id("run_id")]
    return {
        f"{API}/workflows/schema": {"get": {**op("The JSON Schema of workflow definitions (every step kind)", "200",
                                                 None),
                                            "responses": {**op("", "200", None)["responses"], "200": {
                                                "description": "a JSON Schema (2020-12)",
                                                "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        f"{API}/workflows": {
            "get": op("Your org's workflows", "200", "WorkflowList", params=[
                {"name": "project_id", "in": "query", "required": False, "schema": ID}]),
            "post": op("Save a workflow definition (YAML or JSON): a new workflow, or the next version of the "
                       "project's workflow of that name; 400 `invalid_workflow` names the field and the line", "201",
                       "Workflow", body="NewWorkflow", errors=("409",))},
        f"{API}/workflows/{{workflow_id}}/versions/{{version}}": {"get": op(
            "One version of a workflow, its source and definition", "200", "WorkflowVersion", errors=("404",),
            params=[path_id("workflow_id"), {"name": "version", "in": "path", "required": True,
                                             "schema": {"type": "integer", "minimum": 1, "maximum": 999999999}}])},
        f"{API}/workflows/{{workflow_id}}": {"get": op("A workflow and its versions", "200", "Workflow",
                                                       errors=("404",), params=[path_id("workflow_id")])},
        f"{API}/workflow-runs": {
            "get": op("Your org's workflow runs, newest first", "200", "WorkflowRunPage", params=[
                {"name": "workflow_id", "in": "query", "required": False, "schema": ID},
                {"name": "state", "in": "query", "required": False,
                 "schema": {"enum": ["running", "cancelling", "succeeded", "failed", "cancelled"]}},
                {"name": "cursor", "in": "query", "required": False, "schema": STR},
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                               "maximum": 200}}]),
            "post": op("Start a run of a workflow version (the Worker runs its steps; the run id comes back at "
                       "once)", "202", "WorkflowRun", body="NewWorkflowRun", errors=("404", "429"))},
        f"{API}/workflow-runs/{{run_id}}": {"get": op("A run with its steps (inputs, outputs, timing, tokens, cost, "
                                                      "attempts, errors)", "200", "WorkflowRun", errors=("404",),
                                                      params=run)},
        f"{API}/workflow-runs/{{run_id}}/cancel": {"post": op(
            "Cancel a running run (its running steps see the cancel and stop)", "200", "WorkflowRun",
            errors=("404", "409"), params=run)},
        f"{API}/workflow-runs/{{run_id}}/resume": {"post": op(
            "Resume a failed, cancelled or interrupted run from its last finished steps", "202", "WorkflowRun",
            errors=("404", "409"), params=run)},
        f"{API}/workflow-runs/{{run_id}}/fork": {"post": op(
            "A new run from a chosen step with edited inputs; the steps before it are reused, not paid again",
            "202", "WorkflowRun", body="WorkflowFork", errors=("404", "409", "429"), params=run)},
        f"{API}/workflow-runs/{{run_id}}/events": {"get": {**op(
            "A run's events, oldest first, after `after`; with `Accept: text/event-stream`, streamed until the run "
            "ends", "200", "WorkflowEventPage", errors=("404",), params=[*run, {
                "name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}}, {
                "name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                              "maximum": 1000}}])}},
    }
