"""Trace lookup: everything that carried one trace id, merged in time order.

A request's trace id is on its audit row, its usage record, its hold and ledger entries, the
messages it wrote and the Worker jobs it started (each job's events follow its id). A workflow
run is one trace: its run row carries the id, its steps follow the run's id, and every model
call its steps made carries the run's trace id like any request. Each item
is ``{"type", "at", "id", "data"}``; ``type`` is one of :data:`ITEM_TYPES`, so a timeline can
draw each kind its own way. Items at the same instant keep the order of :data:`ITEM_TYPES`
(the request, then its money, then its work), then their id. Message contents are left out,
and so are a run's definition and inputs and a step's inputs and outputs: a trace is about
what happened, not what was said.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..billing.models import Hold, Transaction, UsageRecord
from ..conversations.models import Message
from ..errors import InvalidRequest
from ..jobs.models import Job, JobEvent
from ..workflows.models import StepRun, WorkflowRun
from ._query import plain

ITEM_TYPES = ("audit", "usage", "hold", "transaction", "message", "workflow_run", "step_run", "job", "job_event")
_TRACE = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_TABLES: dict[str, Table] = {name: cast(Table, model.__table__) for name, model in (
    ("audit", AuditLog), ("usage", UsageRecord), ("hold", Hold), ("transaction", Transaction), ("job", Job))}
MSG = cast(Table, Message.__table__)
EV = cast(Table, JobEvent.__table__)
RUN, STEP = cast(Table, WorkflowRun.__table__), cast(Table, StepRun.__table__)
#: what a run or a step was told and answered stays out of a trace
_UNSAID = ("content", "definition", "inputs", "outputs", "error_detail")


def _said_nothing(table: Table) -> list[Any]:
    return [c for c in table.c if c.name not in _UNSAID]


def check_trace_id(trace_id: str) -> str:
    if not _TRACE.fullmatch(trace_id):
        raise InvalidRequest("`trace_id` is letters, digits, - and _ (1-32)", code="invalid_trace_id",
                             param="trace_id")
    return trace_id


def _item(kind: str, row: Any) -> dict[str, Any]:
    data = plain(row)
    stamp: datetime = row.created_at
    return {"type": kind, "at": stamp.isoformat(), "id": str(data.pop("id")), "data": data, "_at": stamp}


async def trace_items(session: AsyncSession, trace_id: str, *, org_id: str | None) -> list[dict[str, Any]]:
    """Every item carrying ``trace_id``, oldest first; only ``org_id``'s when given. Raises
    ``invalid_trace_id``. An unknown trace is an empty list."""
    check_trace_id(trace_id)
    items: list[dict[str, Any]] = []
    for kind, table in _TABLES.items():
        query = select(table).where(table.c.trace_id == trace_id)
        if org_id is not None:
            query = query.where(table.c.org_id == org_id)
        items += [_item(kind, row) for row in (await session.execute(query)).all()]
    for kind, table in (("message", MSG), ("workflow_run", RUN)):
        query = select(*_said_nothing(table)).where(table.c.trace_id == trace_id)
        if org_id is not None:
            query = query.where(table.c.org_id == org_id)
        items += [_item(kind, row) for row in (await session.execute(query)).all()]
    run_ids = [item["id"] for item in items if item["type"] == "workflow_run"]
    if run_ids:
        steps = (await session.execute(select(*_said_nothing(STEP)).where(STEP.c.run_id.in_(run_ids)))).all()
        items += [_item("step_run", row) for row in steps]
    job_ids = [item["id"] for item in items if item["type"] == "job"]
    if job_ids:
        events = (await session.execute(select(EV).where(EV.c.job_id.in_(job_ids)))).all()
        items += [_item("job_event", row) for row in events]
    order = {kind: i for i, kind in enumerate(ITEM_TYPES)}
    items.sort(key=lambda item: (item["_at"], order[item["type"]], item["id"].zfill(24)))
    for item in items:
        del item["_at"]
    return items
