"""Definitions and their versions, and what callers read of runs (always within their org).

Saving a definition under a name the project already has adds a version (1, 2, …); a run names
the version it ran. Reads take a connection or a session (both ``execute``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.base import new_id, utcnow
from ..db.paging import check_limit, encode_cursor, newest_first
from ..errors import InvalidRequest
from .definitions import parse_definition
from .engine import load_run, load_steps
from .errors import WorkflowNotFoundError, WorkflowRunNotFoundError
from .models import RUN_ACTIVE, RUN_STATES, StepRun, Workflow, WorkflowEvent, WorkflowRun, WorkflowVersion

W, V = cast(Table, Workflow.__table__), cast(Table, WorkflowVersion.__table__)
R, S, E = (cast(Table, m.__table__) for m in (WorkflowRun, StepRun, WorkflowEvent))
Db = Any  # an AsyncSession or an AsyncConnection


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def workflow_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "object": "workflow", "name": row.name, "project_id": row.project_id,
            "latest_version": row.latest_version, "created_by": row.created_by, "created_at": _iso(row.created_at)}


def version_dict(row: Any, *, source: bool = True) -> dict[str, Any]:
    body = {"id": row.id, "object": "workflow_version", "workflow_id": row.workflow_id, "version": row.version,
            "format": row.format, "definition": row.definition, "created_by": row.created_by,
            "created_at": _iso(row.created_at)}
    if source:
        body["source"] = row.source
    return body


async def save_workflow(db: Db, *, org_id: str, project_id: str, source: str, fmt: str | None = None,
                        filename: str | None = None, created_by: str | None = None) -> tuple[dict[str, Any],
                                                                                             dict[str, Any]]:
    """Validate ``source`` and store it as the next version of the project's workflow of that
    name (made on first save). Returns (workflow, version)."""
    kind, definition = parse_definition(source, fmt=fmt, filename=filename)
    now = utcnow()
    row = (await db.execute(select(W).where(W.c.org_id == org_id, W.c.project_id == project_id,
                                            W.c.name == definition["name"]))).first()
    if row is None:
        workflow_id = new_id("wf")
        await db.execute(insert(W).values(id=workflow_id, org_id=org_id, project_id=project_id,
                                          name=definition["name"], latest_version=0, created_by=created_by,
                                          created_at=now))
        version = 1
    else:
        workflow_id, version = row.id, row.latest_version + 1
    changed = await db.execute(update(W).where(W.c.id == workflow_id, W.c.latest_version == version - 1)
                               .values(latest_version=version))
    if changed.rowcount != 1:
        from .errors import WorkflowRunStateError

        raise WorkflowRunStateError("the workflow was saved by someone else at the same time; save again",
                                    code="workflow_version_conflict")
    await db.execute(insert(V).values(id=new_id("wfv"), workflow_id=workflow_id, org_id=org_id, version=version,
                                      format=kind, source=source, definition=definition, created_by=created_by,
                                      created_at=now))
    workflow = (await db.execute(select(W).where(W.c.id == workflow_id))).one()
    saved = (await db.execute(select(V).where(V.c.workflow_id == workflow_id, V.c.version == version))).one()
    return workflow_dict(workflow), version_dict(saved)


async def list_workflows(db: Db, *, org_id: str, project_id: str | None = None,
                         name: str | None = None) -> list[dict[str, Any]]:
    query = select(W).where(W.c.org_id == org_id)
    if project_id is not None:
        query = query.where(W.c.project_id == project_id)
    if name is not None:
        query = query.where(W.c.name == name)
    return [workflow_dict(r) for r in (await db.execute(query.order_by(W.c.name))).all()]


async def get_workflow(db: Db, *, org_id: str, workflow_id: str) -> dict[str, Any]:
    row = (await db.execute(select(W).where(W.c.id == workflow_id, W.c.org_id == org_id))).first()
    if row is None:
        raise WorkflowNotFoundError(f"no workflow {workflow_id!r}", param="workflow_id")
    return workflow_dict(row)


async def list_versions(db: Db, *, org_id: str, workflow_id: str) -> list[dict[str, Any]]:
    await get_workflow(db, org_id=org_id, workflow_id=workflow_id)
    rows = (await db.execute(select(V).where(V.c.workflow_id == workflow_id, V.c.org_id == org_id)
                             .order_by(V.c.version.desc()))).all()
    return [version_dict(r, source=False) for r in rows]


async def get_version(db: Db, *, org_id: str, workflow_id: str, version: int | None = None) -> dict[str, Any]:
    """One version (default: the latest) of one of the org's workflows."""
    workflow = await get_workflow(db, org_id=org_id, workflow_id=workflow_id)
    number = workflow["latest_version"] if version is None else version
    row = (await db.execute(select(V).where(V.c.workflow_id == workflow_id, V.c.org_id == org_id,
                                            V.c.version == number))).first()
    if row is None:
        raise WorkflowNotFoundError(f"workflow {workflow_id!r} has no version {number}", param="version")
    return version_dict(row)


# -- runs ------------------------------------------------------------------------------------------
def step_dict(row: dict[str, Any]) -> dict[str, Any]:
    took = (row["finished_at"] - row["started_at"]).total_seconds() if row["finished_at"] and row["started_at"] \
        else None
    return {"step_id": row["step_id"], "kind": row["kind"], "state": row["state"], "attempts": row["attempts"],
            "inputs": row["inputs"], "outputs": row["outputs"], "artifacts": row["artifacts"] or [],
            "tokens": row["tokens"], "cost_micros": row["cost_micros"], "error_code": row["error_code"],
            "error": row["error"], "error_detail": row["error_detail"], "reused_from": row["reused_from"],
            "job_id": row["job_id"], "started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"]),
            "duration_s": took}


def run_dict(run: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a caller sees of a run (not its key)."""
    body = {"id": run["id"], "object": "workflow_run", "name": run["name"], "workflow_id": run["workflow_id"],
            "version_id": run["version_id"], "project_id": run["project_id"], "state": run["state"],
            "inputs": run["inputs"], "trace_id": run["trace_id"], "created_by": run["created_by"],
            "budget_micros": run["budget_micros"], "cost_micros": run["cost_micros"], "tokens": run["tokens"],
            "error_code": run["error_code"], "error": run["error"], "forked_from": run["forked_from"],
            "created_at": _iso(run["created_at"]), "started_at": _iso(run["started_at"]),
            "finished_at": _iso(run["finished_at"])}
    if steps is not None:
        body["steps"] = [step_dict(s) for s in steps]
    return body


async def get_run(db: Db, *, org_id: str, run_id: str) -> dict[str, Any]:
    run = await load_run(db, run_id, org_id=org_id)
    return run_dict(run, await load_steps(db, run_id))


async def list_runs(db: Db, *, org_id: str, workflow_id: str | None = None, state: str | None = None,
                    limit: int | str | None = None, cursor: str | None = None) -> tuple[list[dict[str, Any]],
                                                                                        str | None]:
    size = check_limit(limit)
    if state is not None and state not in RUN_STATES:
        raise InvalidRequest(f"`state` must be one of {list(RUN_STATES)}", code="invalid_value", param="state")
    query = select(R).where(R.c.org_id == org_id)
    for column, value in ((R.c.workflow_id, workflow_id), (R.c.state, state)):
        if value is not None:
            query = query.where(column == value)
    rows = [dict(r._mapping) for r in (await db.execute(newest_first(query, R.c.created_at, R.c.id, cursor=cursor,
                                                                     limit=size))).all()]
    page = rows[:size]
    nxt = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > size else None
    return [run_dict(r) for r in page], nxt


async def _events_after(db: Db, *, org_id: str, run_id: str, after: int, limit: int = 200) -> list[dict[str, Any]]:
    rows = (await db.execute(select(E).where(E.c.run_id == run_id, E.c.org_id == org_id, E.c.id > after)
                             .order_by(E.c.id).limit(limit))).all()
    return [{"id": r.id, "event": r.event, "step_id": r.step_id, "attempt": r.attempt, "message": r.message,
             "data": r.data, "created_at": _iso(r.created_at)} for r in rows]


async def run_events(db: Db, *, org_id: str, run_id: str, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """The run's events after event id ``after``, oldest first."""
    await load_run(db, run_id, org_id=org_id)
    return await _events_after(db, org_id=org_id, run_id=run_id, after=after, limit=limit)


async def _run_state(db: Db, *, org_id: str, run_id: str) -> str:
    """The run's state alone (a follower reads it every poll); as :func:`load_run`, not found raises."""
    state = (await db.execute(select(R.c.state).where(R.c.id == run_id, R.c.org_id == org_id))).scalar_one_or_none()
    if state is None:
        raise WorkflowRunNotFoundError(f"no workflow run {run_id!r}", param="run_id")
    return str(state)


async def follow_run(engine: AsyncEngine, *, org_id: str, run_id: str, after: int = 0,
                     poll_s: float = 0.25) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    """The run's events as they are recorded, in batches (oldest first, possibly empty) each with
    the run's state, every ``poll_s``, until the run has ended and its last event is out. A
    caller that has seen enough stops iterating.

    The state is read before the events: a run's end commits with its last events, so a state
    read as ended guarantees the events read after it include them (read the other way round,
    a run ending in between ended the loop with its last events unsent)."""
    while True:
        async with engine.connect() as conn:
            state = await _run_state(conn, org_id=org_id, run_id=run_id)
            events = await _events_after(conn, org_id=org_id, run_id=run_id, after=after)
        if events:
            after = events[-1]["id"]
        yield events, state
        if not events and state not in RUN_ACTIVE:
            return
        await asyncio.sleep(poll_s)
