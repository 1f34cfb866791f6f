"""The ``workflow_step`` job kind: one step of a run, run by a Worker.

A job runs its step's attempts (retries with backoff inside the job, under the job's lease),
records the outcome and advances the run. It is safe to run again — after a worker died
mid-step the Worker queues the job again: a finished step is not run twice (the job only
advances the run), a step cut short starts a new attempt whose model calls replay the ones
that had finished (same idempotency keys), and the attempt is counted.

Each attempt gets a :class:`~.steps.StepContext`: the step's fields with templates resolved,
the run-scoped key (derived from the deployment's secret, :func:`.engine.run_key`), the
Gateway URL (``DEEPSPACE_WORKFLOW_GATEWAY_URL``), the run's trace id, a deadline (the step's
``timeout_s`` and the run's time limit), ``cancelled()`` (the run is being cancelled; polled
from the database) and progress and artifacts recorded as the run's events and files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from ..db.base import utcnow
from ..files import store_file
from ..jobs.errors import JobParamsError
from ..jobs.kinds import JobKind
from .engine import (
    JOB_KIND,
    R,
    S,
    add_event,
    advance,
    fail_run,
    load_run,
    load_steps,
    record_event,
    run_deadline,
    run_key,
    step_calls,
    step_spec,
    tally_run,
)
from .models import RUN_ACTIVE, STEP_FINISHED
from .steps import StepContext, StepFailed, StepOutcome, step_kinds
from .templates import TemplateError, render

if TYPE_CHECKING:
    from ..jobs.worker import JobContext

log = logging.getLogger("deepspace_lab.workflows")
#: how often a running step looks whether its run is being cancelled
CANCEL_POLL_S = 0.25
#: how long a step may take to stop by itself after a cancel or its deadline before it is cut off
STOP_GRACE_S = 5.0
COMMON = ("id", "kind", "description", "depends_on", "retry", "timeout_s", "on_failure")


def _check(params: dict[str, Any]) -> dict[str, Any]:
    if set(params) != {"run_id", "step_id"} or not all(isinstance(v, str) for v in params.values()):
        raise JobParamsError("a workflow step job takes `run_id` and `step_id`", param="params")
    return params


def backoff_s(retry: dict[str, Any], attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1-based)."""
    base = float(retry.get("backoff_s", 1.0))
    return float(min(base * float(retry.get("backoff_factor", 2.0)) ** (attempt - 1),
                     float(retry.get("max_backoff_s", 60.0))))


def retries(retry: dict[str, Any], failure: StepFailed, attempt: int) -> bool:
    if not failure.retryable or attempt >= int(retry.get("max_attempts", 1)):
        return False
    codes = retry.get("codes")
    return codes is None or failure.code in codes


class _Attempt:
    """Runs one attempt of a step under its deadline and the run's cancel."""

    def __init__(self, jctx: JobContext, run: dict[str, Any]) -> None:
        self.jctx, self.wf_run = jctx, run
        self.cancel_seen = False

    def cancelled(self) -> bool:
        return self.cancel_seen

    async def _watch_cancel(self) -> None:
        while not self.cancel_seen:
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                async with self.jctx.engine.connect() as conn:
                    state = (await conn.execute(select(R.c.state).where(R.c.id == self.wf_run["id"]))).scalar()
            except Exception:
                log.warning("could not read the state of run %s", self.wf_run["id"], exc_info=True)
                continue
            if state != "running":
                self.cancel_seen = True

    async def run(self, step: Callable[[StepContext], Awaitable[StepOutcome]], ctx: StepContext) -> StepOutcome:
        watcher = asyncio.ensure_future(self._watch_cancel())
        task = asyncio.ensure_future(step(ctx))
        try:
            while not task.done():
                left = None if ctx.deadline is None else ctx.deadline - time.monotonic()
                if self.cancel_seen or (left is not None and left <= 0):
                    with contextlib.suppress(asyncio.TimeoutError):  # it may stop by itself
                        await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                    break
                await asyncio.wait({task}, timeout=min(CANCEL_POLL_S, left) if left is not None else CANCEL_POLL_S)
            if self.cancel_seen and (task.cancelled() or task.exception() is not None):
                raise StepFailed("the run was cancelled", code="cancelled", retryable=False)
            if task.cancelled():
                raise StepFailed(f"the step took longer than its {ctx.spec.get('timeout_s')} s", code="step_timeout")
            return task.result()
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()


async def run_workflow_step(jctx: JobContext) -> dict[str, Any]:
    engine, settings = jctx.engine, jctx.settings
    queue = jctx.worker.queue
    run_id, step_id = jctx.job.params["run_id"], jctx.job.params["step_id"]
    await asyncio.to_thread(step_kinds)  # the first time, imports every kind: off the loop the lease needs
    async with engine.connect() as conn:
        run = await load_run(conn, run_id)
        step = next(s for s in await load_steps(conn, run_id) if s["step_id"] == step_id)
    if step["job_id"] != jctx.job.id:
        # a job of an earlier queuing of this step (queued before a cancel, run after the resume
        # queued the step again): the step is another job's now, and this one must not touch it
        return {"state": "superseded"}
    if step["state"] in STEP_FINISHED or run["state"] not in RUN_ACTIVE or run["state"] == "cancelling":
        if step["state"] not in STEP_FINISHED:
            await _end_step(jctx, run, step, state="cancelled", error_code="cancelled", error="the run ended")
        await advance(engine, queue, settings, run_id)
        return {"state": step["state"]}
    if utcnow() >= run_deadline(run, settings):
        await _end_step(jctx, run, step, state="failed", error_code="run_time_exceeded", error="run time limit")
        await fail_run(engine, queue, settings, run_id, code="run_time_exceeded",
                       message=f"the run took longer than {settings.workflow_max_run_s:g} s")
        return {"state": "failed"}
    if run["budget_micros"] is not None and run["cost_micros"] >= run["budget_micros"]:
        await _end_step(jctx, run, step, state="failed", error_code="budget_exceeded", error="run budget spent")
        await fail_run(engine, queue, settings, run_id, code="budget_exceeded",
                       message=f"the run spent {run['cost_micros']} of its budget of {run['budget_micros']} micros")
        return {"state": "failed"}
    state = await _run_attempts(jctx, run, step)
    await advance(engine, queue, settings, run_id)
    return {"state": state}


def _scope(run: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": run["inputs"],
            "steps": {s["step_id"]: {"outputs": s["outputs"] or {}} for s in steps if s["state"] in STEP_FINISHED}}


async def _run_attempts(jctx: JobContext, run: dict[str, Any], step: dict[str, Any]) -> str:
    engine = jctx.engine
    spec = step_spec(run, step["step_id"])
    kind = step_kinds().get(spec["kind"])
    retry = spec.get("retry") or {}
    async with engine.connect() as conn:
        steps = await load_steps(conn, run["id"])
    try:
        if kind is None:
            raise StepFailed(f"no step kind {spec['kind']!r} on this worker", code="unknown_step_kind",
                             retryable=False)
        try:
            rendered = {k: render(v, _scope(run, steps)) for k, v in spec.items() if k not in COMMON}
        except TemplateError as exc:
            raise StepFailed(str(exc), code="template_error", retryable=False) from None
    except StepFailed as failure:
        return await _give_up(jctx, run, step, spec, failure, attempt=step["attempts"])
    lost = step["state"] == "running"  # its worker died mid-attempt: that attempt does not count
    while True:
        attempt = await _begin_attempt(jctx, run, step, rendered.get("inputs") or {}, lost=lost)
        if attempt is None:
            return "lost"  # another job has this step now
        lost = False
        try:
            runner = _Attempt(jctx, run)
            ctx = _context(jctx, run, step, spec, rendered, attempt, runner.cancelled)
            outcome = await runner.run(kind.run, ctx)
        except StepFailed as failure:
            if failure.code != "cancelled" and retries(retry, failure, attempt):
                wait = backoff_s(retry, attempt)
                await record_event(engine, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"],
                                   event="step.retry", attempt=attempt, message=str(failure),
                                   data={"code": failure.code, "wait_s": wait})
                await asyncio.sleep(wait)
                continue
            return await _give_up(jctx, run, step, spec, failure, attempt=attempt)
        except Exception as exc:  # a bug in a step kind: shown by its type, logged in full
            log.exception("step %s of run %s raised", step["step_id"], run["id"])
            bug = StepFailed(f"{type(exc).__name__}: {exc}"[:500], code="step_error")
            if retries(retry, bug, attempt):
                await asyncio.sleep(backoff_s(retry, attempt))
                continue
            return await _give_up(jctx, run, step, spec, bug, attempt=attempt)
        await _succeed(jctx, run, step, outcome, attempt=attempt)
        return "succeeded"


async def _begin_attempt(jctx: JobContext, run: dict[str, Any], step: dict[str, Any], inputs: dict[str, Any], *,
                         lost: bool) -> int | None:
    now = utcnow()
    async with jctx.engine.begin() as conn:
        row = (await conn.execute(update(S).where(S.c.id == step["id"], S.c.state.in_(("queued", "running")),
                                                  S.c.job_id == jctx.job.id)
                                  .values(state="running", attempts=S.c.attempts + 1, inputs=inputs, started_at=now)
                                  .returning(S.c.attempts))).first()
        if row is None:
            return None
        await add_event(conn, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"], event="step.started",
                        attempt=row.attempts, data={"job_id": jctx.job.id, "after_lost_attempt": lost})
    return int(row.attempts)


def _context(jctx: JobContext, run: dict[str, Any], step: dict[str, Any], spec: dict[str, Any],
             rendered: dict[str, Any], attempt: int, cancelled: Callable[[], bool]) -> StepContext:
    settings = jctx.settings
    engine = jctx.engine
    timeout = spec.get("timeout_s")
    left_s = (run_deadline(run, settings) - utcnow()).total_seconds()
    limit = min(float(timeout), left_s) if timeout is not None else left_s

    async def progress(message: str, fraction: float | None) -> None:
        await record_event(engine, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"],
                           event="step.progress", attempt=attempt, message=message[:2000],
                           data={"fraction": fraction})

    async def save_artifact(name: str, data: bytes, content_type: str) -> str:
        stored = await store_file(engine, jctx.storage, org_id=run["org_id"], project_id=run["project_id"],
                                  name=name, content_type=content_type, data=data, kind="artifact",
                                  created_by=run["created_by"], job_id=jctx.job.id, trace_id=run["trace_id"])
        await record_event(engine, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"],
                           event="step.artifact", attempt=attempt, data={"file_id": stored.id, "name": stored.name})
        return stored.id

    gateway = settings.workflow_gateway_url
    return StepContext(
        run_id=run["id"], step_id=step["step_id"], attempt=attempt, org_id=run["org_id"],
        project_id=run["project_id"], trace_id=run["trace_id"], spec={**spec, **rendered},
        inputs=rendered.get("inputs") or {}, gateway_url=(gateway or "").rstrip("/"),
        api_key=run_key(settings.require_secret_key(), run["id"], run["key_generation"]),
        deadline=time.monotonic() + max(limit, 0.0), cancelled=cancelled,
        progress=progress, save_artifact=save_artifact, settings=settings)


async def _succeed(jctx: JobContext, run: dict[str, Any], step: dict[str, Any], outcome: StepOutcome, *,
                   attempt: int) -> None:
    engine = jctx.engine
    async with engine.begin() as conn:
        spent = {"tokens": outcome.tokens, "cost_micros": outcome.cost_micros}
        if not (outcome.tokens and outcome.cost_micros):  # a kind that reports none (a notebook): its calls'
            calls_cost, calls_tokens = await step_calls(conn, run, step["step_id"])
            spent = {"tokens": outcome.tokens or calls_tokens, "cost_micros": outcome.cost_micros or calls_cost}
        done = await conn.execute(update(S).where(S.c.id == step["id"], S.c.state == "running",
                                                  S.c.attempts == attempt, S.c.job_id == jctx.job.id)
                                  .values(state="succeeded", outputs=outcome.outputs, artifacts=outcome.artifacts,
                                          error=None, error_code=None, error_detail=None, finished_at=utcnow(),
                                          **spent))
        if done.rowcount != 1:
            return
        cost = await tally_run(conn, run)
        await add_event(conn, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"],
                        event="step.succeeded", attempt=attempt, data=spent)
    if run["budget_micros"] is not None and cost > run["budget_micros"]:
        await fail_run(engine, jctx.worker.queue, jctx.settings, run["id"], code="budget_exceeded",
                       message=f"the run spent {cost} of its budget of {run['budget_micros']} micros")


async def _give_up(jctx: JobContext, run: dict[str, Any], step: dict[str, Any], spec: dict[str, Any],
                   failure: StepFailed, *, attempt: int) -> str:
    """A step failed for good: its ``on_failure`` decides (fail the run, continue, fallback)."""
    rule = spec.get("on_failure", "fail")
    if failure.code == "cancelled":
        state, outputs = "cancelled", None
    elif isinstance(rule, dict):
        state, outputs = "succeeded", dict(rule["fallback"])
    else:
        state, outputs = "failed", None
    await _end_step(jctx, run, step, state=state, error_code=failure.code, error=str(failure),
                    detail=failure.detail, outputs=outputs, attempt=attempt,
                    fallback=isinstance(rule, dict) and state == "succeeded")
    return state


async def _end_step(jctx: JobContext, run: dict[str, Any], step: dict[str, Any], *, state: str, error_code: str,
                    error: str, detail: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None,
                    attempt: int | None = None, fallback: bool = False) -> None:
    async with jctx.engine.begin() as conn:
        calls_cost, calls_tokens = await step_calls(conn, run, step["step_id"])
        cost = int((detail or {}).get("cost_micros") or 0) or calls_cost
        done = await conn.execute(update(S).where(S.c.id == step["id"], S.c.job_id == jctx.job.id,
                                                  S.c.state.in_(("pending", "queued", "running")))
                                  .values(state=state, error_code=error_code, error=error[:2000],
                                          error_detail=detail or None, outputs=outputs, cost_micros=cost,
                                          tokens=calls_tokens, finished_at=utcnow()))
        if done.rowcount != 1:
            return
        await tally_run(conn, run)
        event = "step.fallback" if fallback else f"step.{state}"
        await add_event(conn, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"], event=event,
                        attempt=attempt or step["attempts"], message=error[:2000],
                        data={"code": error_code, "detail": detail or {}})


WORKFLOW_STEP = JobKind(JOB_KIND, run_workflow_step, _check,
                        "One step of a workflow run (started by the workflow engine, not by callers).")
