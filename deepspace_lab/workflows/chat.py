"""The ``workflow`` pipeline step (the spec's Workflow Orchestration): a product-stream request
(``POST /deepspace/api/chat/stream``) that names a workflow runs it instead of a model call.

Body: the usual fields plus ``"workflow": {"id" | "name", "version"?, "inputs"?}`` (its shape is
checked with the body, :mod:`deepspace_lab.pipeline.product`). A request without it passes
through untouched. With it, the step

- finds the workflow in the caller's org (by id, or by name in the caller's project) and the
  version (default: the latest) — else 404 ``workflow_not_found``; a workflow that declares an
  input named ``message`` gets the request's ``content`` there unless ``inputs`` sets it (so a
  chat message can start it with nothing else); checks that the caller may
  start runs (the ``workflows`` action: a key needs the ``workflows`` scope, so a run's own key,
  scope ``chat``, cannot start another) and the inputs against the definition (400
  ``invalid_workflow_inputs`` naming ``workflow.inputs.<name>``) — all before anything starts;
- starts the run under the request's trace id: the chat request and the run are one trace;
- releases the request's own hold once the run has started. The request makes no model call
  itself; the run's calls are billed by their own requests (the run's key, idempotency keys
  ``wf:<run>:<step>:<n>``), so nothing is billed twice. Its usage row says ``released``, cost 0;
- streams the run's events as ``thought`` events (run started, step started, finished, failed,
  retried, its artifacts, run finished), each ``{"content", "event", "step_id",
  "workflow_run_id", "data"}``, then the run's result as the reply (``delta``), which the
  conversation keeps: the text of the last finished step that has one (its ``text`` output, else
  ``report``, else its first text output), or what became of the run;
- a Stop (``POST /deepspace/api/chat/{request_id}/cancel``) cancels the run; the stream then
  ends once the run is cancelled, ``done.cancelled`` true. A client that leaves stops the relay,
  not the run (it goes on; the runs API shows it). The relay ends after
  ``workflow_max_run_s`` at the latest.
"""

from __future__ import annotations

import time
from typing import Any

from ..auth import authorize
from ..billing import UsageOutcome
from ..errors import InvalidRequest, ServiceUnavailable
from ..pipeline.billing import settle
from ..pipeline.context import Next, RequestContext
from ..pipeline.steps import BaseStep
from ..upstream.sse import sse_event
from . import engine, service
from .errors import WorkflowDefinitionError, WorkflowNotFoundError, WorkflowRunStateError
from .models import RUN_ACTIVE

#: how often the relay reads the run's new events
POLL_S = 0.25
_SAID = {
    "run.started": "workflow run {run} started", "run.resumed": "run resumed",
    "step.started": "step {step} started (attempt {attempt})", "step.succeeded": "step {step} finished",
    "step.failed": "step {step} failed: {message}", "step.retry": "step {step} failed, trying again: {message}",
    "step.fallback": "step {step} failed; its fallback outputs stand in: {message}",
    "step.skipped": "step {step} skipped", "step.cancelled": "step {step} cancelled",
    "step.progress": "step {step}: {message}", "step.artifact": "step {step} stored {name}",
    "run.cancelling": "cancelling the run", "run.succeeded": "run succeeded", "run.failed": "run failed: {message}",
    "run.cancelled": "run cancelled",
}


class WorkflowChatStep(BaseStep):
    name = "workflow"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        chat = ctx.chat
        ref = chat.workflow if chat is not None else None
        if chat is None or ref is None:
            await call_next(ctx)
            return
        principal = ctx.principal
        assert principal is not None and ctx.sink is not None
        authorize(principal, "workflows")
        services = self.services
        if services.job_queue is None:
            raise ServiceUnavailable("this gateway has no Worker queue to run workflows on", code="no_worker_queue")
        async with services.engine.connect() as conn:
            workflow, version = await _resolve(conn, org_id=principal.org_id, project_id=principal.project_id, ref=ref)
        given = dict(ref.get("inputs") or {})
        if "message" in (version["definition"].get("inputs") or {}) and "message" not in given:
            given["message"] = chat.last_user_text()  # the chat's words are the run's `message`
        queue = services.job_queue()
        try:  # start_run checks the inputs first, before it writes anything
            run = await engine.start_run(
                services.engine, queue, services.settings, org_id=principal.org_id,
                project_id=workflow["project_id"], user_id=str(principal.user_id), definition=version["definition"],
                inputs=given, trace_id=ctx.trace_id, created_by=principal.actor, workflow_id=workflow["id"],
                version_id=version["id"])
        except WorkflowDefinitionError as exc:
            raise InvalidRequest(str(exc), code="invalid_workflow_inputs", param=f"workflow.{exc.field}") from None
        ctx.detail.update(workflow_id=workflow["id"], workflow_version=version["version"], workflow_run_id=run["id"])
        await settle(services, ctx, UsageOutcome(measured="none"))  # the run's calls bill themselves
        await self._relay(ctx, queue, run["id"], principal.org_id)

    async def _relay(self, ctx: RequestContext, queue: Any, run_id: str, org_id: str) -> None:
        sink = ctx.sink
        assert sink is not None
        sink.start_stream()
        cancelling = False
        deadline = time.monotonic() + self.services.settings.workflow_max_run_s
        async for events, state in service.follow_run(self.services.engine, org_id=org_id, run_id=run_id,
                                                      poll_s=POLL_S):
            thoughts = [t for t in (_thought(e, run_id) for e in events) if t is not None]
            if thoughts:
                sink.send(sse_event({"deepspace": {"thoughts": thoughts}}))
            if sink.client_gone:
                ctx.detail["client_disconnected"] = True
                return
            if ctx.cancel_requested and not cancelling and state in RUN_ACTIVE:
                cancelling = True
                try:
                    await engine.cancel_run(self.services.engine, queue, self.services.settings, org_id=org_id,
                                            run_id=run_id)
                except WorkflowRunStateError:
                    pass  # it ended meanwhile
            if time.monotonic() > deadline:
                break
        async with self.services.engine.connect() as conn:
            run = await service.get_run(conn, org_id=org_id, run_id=run_id)
        ctx.reply_text = reply_of(run)
        ctx.finish_reason = "stop"
        if cancelling and ctx.billing is not None:
            ctx.billing.cut = ctx.error_code = "cancelled"
        sink.send(sse_event({"choices": [{"index": 0, "delta": {"content": ctx.reply_text}}]}))
        sink.end_stream(b"")


async def _resolve(conn: Any, *, org_id: str, project_id: str, ref: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                          dict[str, Any]]:
    """(workflow, version) the request names, in the caller's org; 404 ``workflow_not_found``."""
    try:
        if "id" in ref:
            workflow = await service.get_workflow(conn, org_id=org_id, workflow_id=ref["id"])
        else:
            found = await service.list_workflows(conn, org_id=org_id, project_id=project_id, name=ref["name"])
            if not found:
                raise WorkflowNotFoundError(f"no workflow named {ref['name'][:200]!r} in your project", param="name")
            workflow = found[0]
        version = await service.get_version(conn, org_id=org_id, workflow_id=workflow["id"],
                                            version=ref.get("version"))
    except WorkflowNotFoundError as exc:
        raise WorkflowNotFoundError(exc.message, param=f"workflow.{exc.param}") from None
    return workflow, version


def _thought(event: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    said = _SAID.get(event["event"])
    if said is None:  # step.queued: bookkeeping
        return None
    data = event.get("data") or {}
    content = said.format(run=run_id, step=event.get("step_id"), attempt=event.get("attempt"),
                          message=event.get("message") or data.get("code") or "", name=data.get("name", ""))
    return {"content": content, "event": event["event"], "step_id": event.get("step_id"),
            "workflow_run_id": run_id, "data": data}


def reply_of(run: dict[str, Any]) -> str:
    """The run's answer: the text of the last finished step that has one, or what became of it."""
    if run["state"] == "succeeded":
        for step in reversed(run["steps"]):
            outputs = step["outputs"] if step["state"] == "succeeded" and isinstance(step["outputs"], dict) else {}
            named = [outputs.get("text"), outputs.get("report"), *outputs.values()]
            text = next((v for v in named if isinstance(v, str) and v.strip()), None)
            if text is not None:
                return text
    why = f": {run['error']}" if run.get("error") else "."
    return f"Workflow run {run['id']} ({run['name']}) {run['state']}{why}"
