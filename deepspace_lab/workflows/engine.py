"""Runs: start, advance, finish, cancel, resume and fork — every change one short conditional
statement, so many workers (and the API) can act on one run at once.

::

    run:   running ──▶ succeeded | failed        running ──cancel──▶ cancelling ──▶ cancelled
    step:  pending ──advance──▶ queued ──job──▶ running ──▶ succeeded | failed | cancelled
           pending ──▶ skipped (a step it depends on did not finish well, or the run ended)

:func:`start_run` records the run and its steps, creates the run-scoped API key and queues the
steps with no unfinished dependency, each as one Worker job (``workflow_step``,
:mod:`.execute`). A step is queued by one conditional ``UPDATE … WHERE state = 'pending'``, so
of two workers advancing one run at once only one queues it. When a step's job ends it calls
:func:`advance` again, which queues what is now ready or, when every step is finished, ends
the run (its key revoked). A run interrupted anywhere is picked up again by the Worker
(a lost job runs again and its step starts a new attempt) or by :func:`resume_run`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.models import ApiKey
from ..billing.models import UsageRecord
from ..config import Settings
from ..db.base import new_id, utcnow
from ..idempotency.models import IdempotencyKey
from ..jobs import JobQueue
from ..jobs.models import Job
from ..jobs.service import create_job
from .definitions import ancestors, check_inputs
from .errors import WorkflowLimitError, WorkflowRunNotFoundError, WorkflowRunStateError
from .models import RUN_ACTIVE, STEP_FINISHED, StepRun, WorkflowEvent, WorkflowRun
from .steps import call_key_prefix

log = logging.getLogger("deepspace_lab.workflows")
R, S, E = (cast(Table, m.__table__) for m in (WorkflowRun, StepRun, WorkflowEvent))
K, J, U = cast(Table, ApiKey.__table__), cast(Table, Job.__table__), cast(Table, UsageRecord.__table__)
IK = cast(Table, IdempotencyKey.__table__)
JOB_KIND = "workflow_step"
#: the run-scoped key lives this much longer than the longest run (then expires by itself)
KEY_MARGIN = timedelta(hours=1)


# -- the run-scoped key: derived, never stored -----------------------------------------------------
def run_key(secret_key: str, run_id: str, generation: int) -> str:
    """The plaintext of a run's API key: an HMAC of the run id under the deployment's secret, so
    every worker can compute it and no table holds it (only its hash, like every key)."""
    digest = hmac.new(secret_key.encode(), f"workflow-run-key:{run_id}:{generation}".encode(), hashlib.sha256)
    prefix = hmac.new(secret_key.encode(), f"workflow-run-prefix:{run_id}:{generation}".encode(), hashlib.sha256)
    return f"dsk_{prefix.hexdigest()[:12]}_{base64.urlsafe_b64encode(digest.digest()).decode().rstrip('=')}"


async def _create_key(conn: AsyncConnection, settings: Settings, *, run: dict[str, Any], generation: int) -> str:
    from ..auth.keys import hash_key, key_prefix

    secret = settings.require_secret_key()
    plaintext = run_key(secret, run["id"], generation)
    key_id = new_id("key")
    now = utcnow()
    await conn.execute(insert(K).values(
        id=key_id, org_id=run["org_id"], project_id=run["project_id"], user_id=run["user_id"],
        name=key_name(run["id"]), prefix=key_prefix(plaintext), key_hash=hash_key(secret, plaintext),
        scopes=["chat"], created_at=now, expires_at=now + timedelta(seconds=settings.workflow_max_run_s) + KEY_MARGIN))
    return key_id


async def _revoke_key(conn: AsyncConnection, key_id: str | None) -> None:
    if key_id is not None:
        await conn.execute(update(K).where(K.c.id == key_id, K.c.revoked_at.is_(None)).values(revoked_at=utcnow()))


def key_name(run_id: str) -> str:
    return f"workflow run {run_id}"


async def tally_run(conn: AsyncConnection, run: dict[str, Any]) -> int:
    """Set the run's cost and tokens from the usage records of its keys (every generation): what
    billing charged for its model calls, notebook steps' own calls included, replays not. Returns
    the cost."""
    keys = select(K.c.id).where(K.c.org_id == run["org_id"], K.c.user_id == run["user_id"],
                                K.c.name == key_name(run["id"]))
    cost, tokens = await _usage_of(conn, run["org_id"], U.c.api_key_id.in_(keys.scalar_subquery()))
    await conn.execute(update(R).where(R.c.id == run["id"]).values(cost_micros=cost, tokens=tokens,
                                                                   updated_at=utcnow()))
    return cost


async def _usage_of(conn: AsyncConnection, org_id: str, which: Any) -> tuple[int, int]:
    """(cost in micro-credits, tokens) of the org's usage records ``which`` selects."""
    row = (await conn.execute(select(func.coalesce(func.sum(U.c.cost_micros), 0),
                                     func.coalesce(func.sum(U.c.prompt_tokens + U.c.completion_tokens), 0))
                              .where(U.c.org_id == org_id, which))).one()
    return int(row[0]), int(row[1])


async def step_calls(conn: AsyncConnection, run: dict[str, Any], step_id: str) -> tuple[int, int]:
    """(cost in micro-credits, tokens) of one step's model calls: the usage records of the requests
    that took the step's idempotency keys (``wf:<run>:<step>:<n>``) — an llm step's call and a
    notebook's calls through ``deepspace_lab.client`` alike, each counted once however often it was
    replayed. A call whose request failed freed its key and is not counted here (the run's
    :func:`tally_run` counts it)."""
    keys = select(IK.c.request_id).where(IK.c.org_id == run["org_id"],
                                         IK.c.key.startswith(call_key_prefix(run["id"], step_id), autoescape=True))
    return await _usage_of(conn, run["org_id"], U.c.request_id.in_(keys.scalar_subquery()))


# -- events ----------------------------------------------------------------------------------------
async def add_event(conn: AsyncConnection, *, run_id: str, org_id: str, event: str, step_id: str | None = None,
                    attempt: int = 0, message: str | None = None, data: dict[str, Any] | None = None) -> None:
    await conn.execute(insert(E).values(run_id=run_id, org_id=org_id, step_id=step_id, event=event, attempt=attempt,
                                        message=message, data=data, created_at=utcnow()))


async def record_event(engine: AsyncEngine, **values: Any) -> None:
    async with engine.begin() as conn:
        await add_event(conn, **values)


# -- reads -----------------------------------------------------------------------------------------
async def load_run(conn: AsyncConnection, run_id: str, *, org_id: str | None = None) -> dict[str, Any]:
    query = select(R).where(R.c.id == run_id)
    if org_id is not None:
        query = query.where(R.c.org_id == org_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise WorkflowRunNotFoundError(f"no workflow run {run_id!r}", param="run_id")
    return dict(row._mapping)


async def load_steps(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(S).where(S.c.run_id == run_id).order_by(S.c.position))).all()
    return [dict(r._mapping) for r in rows]


def step_spec(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in run["definition"]["steps"] if s["id"] == step_id)


def continues(spec: dict[str, Any]) -> bool:
    """Whether a step that failed for good lets the run go on (``on_failure: continue``)."""
    return bool(spec.get("on_failure", "fail") == "continue")


# -- start -----------------------------------------------------------------------------------------
async def start_run(engine: AsyncEngine, queue: JobQueue, settings: Settings, *, org_id: str, project_id: str,
                    user_id: str, definition: dict[str, Any], inputs: dict[str, Any], trace_id: str,
                    created_by: str | None = None, workflow_id: str | None = None, version_id: str | None = None,
                    budget_micros: int | None = None, forked_from: str | None = None,
                    reuse: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Record a run (its steps pending, or reused from an earlier run for a fork), create its key
    and queue its first steps. Returns the run at once; the Worker does the rest."""
    values = check_inputs(definition, inputs)
    budget = budget_micros if budget_micros is not None else definition.get("budget_micros")
    now = utcnow()
    run = {"id": new_id("wfr"), "org_id": org_id, "project_id": project_id, "workflow_id": workflow_id,
           "version_id": version_id, "name": definition["name"], "definition": definition, "inputs": values,
           "state": "running", "trace_id": trace_id, "user_id": user_id, "created_by": created_by,
           "key_generation": 0, "budget_micros": budget, "cost_micros": 0, "tokens": 0, "forked_from": forked_from,
           "started_at": now, "updated_at": now, "created_at": now}
    async with engine.begin() as conn:
        limit = settings.workflow_max_concurrent_runs
        if limit:
            active = (await conn.execute(select(func.count()).select_from(R).where(
                R.c.org_id == org_id, R.c.state.in_(RUN_ACTIVE)))).scalar_one()
            if active >= limit:
                raise WorkflowLimitError(f"your org has {active} workflow runs running; the limit is {limit}",
                                         retry_after_s=30)
        run["api_key_id"] = await _create_key(conn, settings, run=run, generation=0)
        await conn.execute(insert(R).values(**run))
        for position, spec in enumerate(definition["steps"]):
            earlier = (reuse or {}).get(spec["id"])
            row: dict[str, Any] = {"id": new_id("wfs"), "run_id": run["id"], "org_id": org_id, "step_id": spec["id"],
                                   "kind": spec["kind"], "position": position, "state": "pending", "attempts": 0,
                                   "tokens": 0, "cost_micros": 0, "created_at": now}
            if earlier is not None:
                row.update(state="succeeded", inputs=earlier["inputs"], outputs=earlier["outputs"],
                           artifacts=earlier["artifacts"], reused_from=earlier["id"], started_at=now, finished_at=now)
            await conn.execute(insert(S).values(**row))
        await add_event(conn, run_id=run["id"], org_id=org_id, event="run.started",
                        data={"forked_from": forked_from, "reused": sorted(reuse or {})})
    await advance(engine, queue, settings, run["id"])
    return run


# -- advance ---------------------------------------------------------------------------------------
async def advance(engine: AsyncEngine, queue: JobQueue, settings: Settings, run_id: str) -> None:
    """Queue every step now ready; skip the ones that cannot run; end the run when all are done."""
    async with engine.connect() as conn:
        run = await load_run(conn, run_id)
        steps = await load_steps(conn, run_id)
    if run["state"] not in RUN_ACTIVE:
        return
    by_id = {s["step_id"]: s for s in steps}
    if run["state"] == "cancelling":  # a queued step's job, when it runs, finds its step finished
        await _skip(engine, run, [s for s in steps if s["state"] in ("pending", "queued")], state="cancelled")
        if not any(s["state"] in ("queued", "running") for s in steps):
            await finish_run(engine, run_id, state="cancelled")
        return
    fatal = [s for s in steps if s["state"] == "failed" and not continues(step_spec(run, s["step_id"]))]
    if fatal:
        await _skip(engine, run, [s for s in steps if s["state"] == "pending"], state="skipped")
        await finish_run(engine, run_id, state="failed", error_code=fatal[0]["error_code"],
                         error=f"step {fatal[0]['step_id']} failed: {fatal[0]['error']}")
        return
    skipped, ready = [], []
    for step in steps:
        if step["state"] != "pending":
            continue
        deps = [by_id[d] for d in step_spec(run, step["step_id"]).get("depends_on", [])]
        if any(d["state"] in ("skipped", "cancelled") for d in deps):
            skipped.append(step)
        elif all(d["state"] in STEP_FINISHED for d in deps):
            ready.append(step)
    await _skip(engine, run, skipped, state="skipped")
    for step in ready:
        await _queue_step(engine, queue, settings, run, step)
    if not ready and not skipped and all(s["state"] in STEP_FINISHED for s in steps):
        await finish_run(engine, run_id, state="succeeded")
    elif skipped:
        await advance(engine, queue, settings, run_id)


async def _skip(engine: AsyncEngine, run: dict[str, Any], steps: list[dict[str, Any]], *, state: str) -> None:
    for step in steps:
        async with engine.begin() as conn:
            done = await conn.execute(update(S).where(S.c.id == step["id"], S.c.state == step["state"],
                                                      S.c.state.in_(("pending", "queued")))
                                      .values(state=state, finished_at=utcnow()))
            if done.rowcount == 1:
                step["state"] = state
                await add_event(conn, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"],
                                event=f"step.{state}")


async def _queue_step(engine: AsyncEngine, queue: JobQueue, settings: Settings, run: dict[str, Any],
                      step: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        won = await conn.execute(update(S).where(S.c.id == step["id"], S.c.state == "pending").values(state="queued"))
        if won.rowcount != 1:
            return  # another worker queued it
    job = await create_job(engine, kind=JOB_KIND, trace_id=run["trace_id"], org_id=run["org_id"],
                           project_id=run["project_id"], created_by=run["created_by"],
                           params={"run_id": run["id"], "step_id": step["step_id"]},
                           max_attempts=settings.job_max_attempts)
    async with engine.begin() as conn:
        await conn.execute(update(S).where(S.c.id == step["id"]).values(job_id=job.id))
        await add_event(conn, run_id=run["id"], org_id=run["org_id"], step_id=step["step_id"], event="step.queued",
                        data={"job_id": job.id})
    try:
        await asyncio.to_thread(queue.enqueue, job.id)
    except Exception:  # the job stays queued: a worker's reaper sends it again
        log.warning("could not enqueue step %s of run %s now", step["step_id"], run["id"], exc_info=True)


async def finish_run(engine: AsyncEngine, run_id: str, *, state: str, error_code: str | None = None,
                     error: str | None = None) -> bool:
    """End a running (or cancelling) run once; its key is revoked. False when it had ended."""
    now = utcnow()
    async with engine.begin() as conn:
        done = await conn.execute(update(R).where(R.c.id == run_id, R.c.state.in_(RUN_ACTIVE)).values(
            state=state, error_code=error_code, error=error, finished_at=now, updated_at=now)
            .returning(R.c.org_id, R.c.api_key_id, R.c.cost_micros, R.c.tokens))
        row = done.first()
        if row is None:
            return False
        await _revoke_key(conn, row.api_key_id)
        await add_event(conn, run_id=run_id, org_id=row.org_id, event=f"run.{state}", message=error,
                        data={"cost_micros": row.cost_micros, "tokens": row.tokens, "error_code": error_code})
    return True


async def fail_run(engine: AsyncEngine, queue: JobQueue, settings: Settings, run_id: str, *, code: str,
                   message: str) -> None:
    """End a run as failed now (budget, run time); its pending steps are skipped in the same
    transaction, so no one sees the run failed with steps left pending, or all finished and not."""
    now = utcnow()
    async with engine.begin() as conn:
        done = await conn.execute(update(R).where(R.c.id == run_id, R.c.state.in_(RUN_ACTIVE)).values(
            state="failed", error_code=code, error=message, finished_at=now, updated_at=now)
            .returning(R.c.org_id, R.c.api_key_id, R.c.cost_micros, R.c.tokens))
        row = done.first()
        if row is None:
            return
        skipped = await conn.execute(update(S).where(S.c.run_id == run_id, S.c.state == "pending")
                                     .values(state="skipped", finished_at=now).returning(S.c.step_id))
        for (step_id,) in skipped.all():
            await add_event(conn, run_id=run_id, org_id=row.org_id, step_id=step_id, event="step.skipped")
        await _revoke_key(conn, row.api_key_id)
        await add_event(conn, run_id=run_id, org_id=row.org_id, event="run.failed", message=message,
                        data={"cost_micros": row.cost_micros, "tokens": row.tokens, "error_code": code})


# -- cancel, resume, fork --------------------------------------------------------------------------
async def cancel_run(engine: AsyncEngine, queue: JobQueue, settings: Settings, *, org_id: str,
                     run_id: str) -> dict[str, Any]:
    """Mark a running run ``cancelling``: its running steps see ``ctx.cancelled()`` and stop, the
    pending ones are cancelled; the run is ``cancelled`` once no step runs."""
    async with engine.begin() as conn:
        run = await load_run(conn, run_id, org_id=org_id)
        if run["state"] == "running":
            await conn.execute(update(R).where(R.c.id == run_id, R.c.state == "running")
                               .values(state="cancelling", updated_at=utcnow()))
            await add_event(conn, run_id=run_id, org_id=org_id, event="run.cancelling")
        elif run["state"] != "cancelling":
            raise WorkflowRunStateError(f"the run is {run['state']}; only a running run can be cancelled",
                                        param="run_id")
    await advance(engine, queue, settings, run_id)
    async with engine.connect() as conn:
        return await load_run(conn, run_id)


async def _dead_job(conn: AsyncConnection, job_id: str | None) -> bool:
    if job_id is None:
        return True
    state = (await conn.execute(select(J.c.state).where(J.c.id == job_id))).scalar()
    return state in (None, "done", "failed")


async def resume_run(engine: AsyncEngine, queue: JobQueue, settings: Settings, *, org_id: str,
                     run_id: str) -> dict[str, Any]:
    """Go on with a run from its last finished steps: steps that failed, were cancelled or
    skipped, and steps whose job is gone, run again (finished ones keep their outputs; their
    model calls would replay anyway). An ended run gets a new key and its time limit anew."""
    async with engine.begin() as conn:
        run = await load_run(conn, run_id, org_id=org_id)
        if run["state"] == "cancelling":
            raise WorkflowRunStateError("the run is being cancelled; resume it once it is cancelled", param="run_id")
        steps = await load_steps(conn, run_id)
        redo = [s for s in steps if s["state"] in ("failed", "cancelled", "skipped")
                or (s["state"] in ("queued", "running") and await _dead_job(conn, s["job_id"]))]
        if run["state"] == "succeeded" or (run["state"] == "running" and not redo):
            raise WorkflowRunStateError(f"the run is {run['state']} with nothing to resume", param="run_id")
        now = utcnow()
        values: dict[str, Any] = {"state": "running", "error_code": None, "error": None, "finished_at": None,
                                  "updated_at": now}
        if run["state"] != "running":
            generation = run["key_generation"] + 1
            values.update(key_generation=generation, started_at=now,
                          api_key_id=await _create_key(conn, settings, run=run, generation=generation))
        await conn.execute(update(R).where(R.c.id == run_id, R.c.state == run["state"]).values(**values))
        for step in redo:
            await conn.execute(update(S).where(S.c.id == step["id"], S.c.state == step["state"]).values(
                state="pending", job_id=None, error=None, error_code=None, error_detail=None, finished_at=None))
        await add_event(conn, run_id=run_id, org_id=org_id, event="run.resumed",
                        data={"steps": [s["step_id"] for s in redo]})
    await advance(engine, queue, settings, run_id)
    async with engine.connect() as conn:
        return await load_run(conn, run_id)


async def fork_run(engine: AsyncEngine, queue: JobQueue, settings: Settings, *, org_id: str, run_id: str,
                   from_step: str, inputs: dict[str, Any], trace_id: str, user_id: str,
                   created_by: str | None = None) -> dict[str, Any]:
    """A new run of the same definition from ``from_step`` with edited inputs. ``from_step`` and
    every step downstream of it run again; the other steps that succeeded are reused as they
    were (outputs copied, ``reused_from`` set): not run, not paid again."""
    async with engine.connect() as conn:
        run = await load_run(conn, run_id, org_id=org_id)
        steps = await load_steps(conn, run_id)
    specs = run["definition"]["steps"]
    if from_step not in {s["id"] for s in specs}:
        raise WorkflowRunStateError(f"no step {from_step!r} in this run", code="unknown_step", param="from")
    upstream = ancestors(specs)
    again = {from_step} | {sid for sid, ups in upstream.items() if from_step in ups}
    reuse = {s["step_id"]: s for s in steps if s["state"] == "succeeded" and s["step_id"] not in again}
    return await start_run(engine, queue, settings, org_id=org_id, project_id=run["project_id"], user_id=user_id,
                           definition=run["definition"], inputs={**run["inputs"], **inputs}, trace_id=trace_id,
                           created_by=created_by, workflow_id=run["workflow_id"], version_id=run["version_id"],
                           budget_micros=run["budget_micros"], forked_from=run_id, reuse=reuse)


def run_deadline(run: dict[str, Any], settings: Settings) -> datetime:
    started: datetime = run["started_at"] or run["created_at"]
    return started + timedelta(seconds=settings.workflow_max_run_s)
