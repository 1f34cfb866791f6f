"""The jobs table's state machine; every transition is one short conditional statement.

    queued ──claim──▶ running ──▶ done
       ▲                 │
       └──── retry ──────┤ (an error, or its lease lapsed: worker lost)
                         └──▶ failed (attempts used up)

:func:`claim_job` is the only way into ``running`` and is a single ``UPDATE … WHERE
state = 'queued'``: of two workers handed the same job id, one wins and the other gets
None and drops its message — so a job never runs twice at once, whatever the queue
delivers. A running job holds a lease its worker renews (:func:`renew_lease`); a job whose
lease lapsed (its worker was killed) goes back to ``queued`` (:func:`requeue_lapsed`) and
runs again on another worker, its attempt counted. Every transition writes a
``job_events`` row (the job's log).

Reads for callers (:func:`get_job`, :func:`list_jobs`) always take the caller's org.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from ..db.base import new_id, utcnow
from ..db.paging import check_limit, encode_cursor, newest_first
from ..errors import InvalidRequest
from .errors import JobNotFoundError
from .models import JOB_STATES, Job, JobEvent

J = cast(Table, Job.__table__)
E = cast(Table, JobEvent.__table__)
#: last_error is cut to this many characters (a traceback never reaches callers)
MAX_ERROR_CHARS = 2000


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    kind: str
    org_id: str | None
    project_id: str | None
    created_by: str | None
    state: str
    params: dict[str, Any]
    attempts: int
    max_attempts: int
    last_error: str | None
    progress_done: int
    progress_total: int | None
    result: dict[str, Any] | None
    trace_id: str
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    lease_expires_at: datetime | None

    @property
    def progress_percent(self) -> float | None:
        if not self.progress_total:
            return 100.0 if self.state == "done" else None
        return round(100.0 * min(self.progress_done, self.progress_total) / self.progress_total, 1)

    def to_dict(self) -> dict[str, Any]:
        """What a caller sees (not the worker's host name)."""
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {"id": self.id, "object": "job", "kind": self.kind, "project_id": self.project_id,
                "created_by": self.created_by, "state": self.state, "params": self.params,
                "attempts": self.attempts, "max_attempts": self.max_attempts, "last_error": self.last_error,
                "progress": {"done": self.progress_done, "total": self.progress_total,
                             "percent": self.progress_percent},
                "result": self.result, "trace_id": self.trace_id, "created_at": self.created_at.isoformat(),
                "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
                "updated_at": iso(self.updated_at)}


_VIEW_COLUMNS = [J.c[name] for name in JobView.__dataclass_fields__]


def _view(row: Any) -> JobView:
    return JobView(**dict(row._mapping))


async def _event(conn: AsyncConnection, *, job_id: str, org_id: str | None, event: str, attempt: int,
                 worker: str | None = None, message: str | None = None, at: datetime | None = None) -> None:
    await conn.execute(insert(E).values(job_id=job_id, org_id=org_id, event=event, attempt=attempt, worker=worker,
                                        message=message, created_at=at or utcnow()))


async def create_job(engine: AsyncEngine, *, kind: str, trace_id: str, org_id: str | None = None,
                     project_id: str | None = None, created_by: str | None = None,
                     params: dict[str, Any] | None = None, max_attempts: int = 3) -> JobView:
    """Insert a ``queued`` job (committed) and return it; the caller then enqueues its id."""
    now = utcnow()
    job_id = new_id("job")
    async with engine.begin() as conn:
        await conn.execute(insert(J).values(
            id=job_id, kind=kind, org_id=org_id, project_id=project_id, created_by=created_by, state="queued",
            params=params or {}, attempts=0, max_attempts=max_attempts, progress_done=0, trace_id=trace_id,
            created_at=now, enqueued_at=now, updated_at=now))
        await _event(conn, job_id=job_id, org_id=org_id, event="queued", attempt=0, at=now)
        row = (await conn.execute(select(*_VIEW_COLUMNS).where(J.c.id == job_id))).one()
    return _view(row)


async def claim_job(engine: AsyncEngine, job_id: str, *, worker: str, lease_s: float) -> JobView | None:
    """Move a ``queued`` job to ``running`` for ``worker`` (one attempt more, a fresh lease).
    None when the job is not queued any more (another worker has it, it finished, it is gone)."""
    now = utcnow()
    async with engine.begin() as conn:
        result = await conn.execute(
            update(J).where(J.c.id == job_id, J.c.state == "queued")
            .values(state="running", attempts=J.c.attempts + 1, worker=worker,
                    lease_expires_at=now + timedelta(seconds=lease_s), started_at=now, updated_at=now,
                    progress_done=0, progress_total=None))
        if result.rowcount != 1:
            return None
        row = (await conn.execute(select(*_VIEW_COLUMNS).where(J.c.id == job_id))).one()
        await _event(conn, job_id=job_id, org_id=row.org_id, event="started", attempt=row.attempts,
                     worker=worker, at=now)
    return _view(row)


async def renew_lease(engine: AsyncEngine, job_id: str, *, worker: str, lease_s: float,
                      progress: tuple[int, int | None] | None = None) -> bool:
    """Extend the lease of a job ``worker`` runs (and record its progress). False when the job
    is no longer this worker's (its lease lapsed and it was queued again)."""
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}
    if progress is not None:
        values["progress_done"], values["progress_total"] = progress
    async with engine.begin() as conn:
        result = await conn.execute(update(J).where(J.c.id == job_id, J.c.state == "running", J.c.worker == worker)
                                    .values(**values))
    return result.rowcount == 1


async def finish_job(engine: AsyncEngine, job_id: str, *, worker: str, result: dict[str, Any] | None) -> bool:
    """``running`` → ``done`` with its result; False when the job was not this worker's."""
    now = utcnow()
    async with engine.begin() as conn:
        changed = await conn.execute(
            update(J).where(J.c.id == job_id, J.c.state == "running", J.c.worker == worker)
            .values(state="done", result=result, finished_at=now, updated_at=now, lease_expires_at=None,
                    last_error=None, progress_done=_all_done())
            .returning(J.c.org_id, J.c.attempts))
        row = changed.first()
        if row is None:
            return False
        await _event(conn, job_id=job_id, org_id=row.org_id, event="done", attempt=row.attempts, worker=worker, at=now)
    return True


def _all_done() -> Any:
    """A finished job's progress: its total when it had one."""
    return case((J.c.progress_total.is_not(None), J.c.progress_total), else_=J.c.progress_done)


async def fail_attempt(engine: AsyncEngine, job_id: str, *, worker: str, error: str,
                       final: bool = False) -> str | None:
    """Record a failed attempt: back to ``queued`` when attempts remain and the error is not
    ``final`` (returns ``"queued"``; the caller enqueues it again), else ``failed``. None when
    the job was not this worker's."""
    now = utcnow()
    message = error[:MAX_ERROR_CHARS]
    async with engine.begin() as conn:
        row = (await conn.execute(select(J.c.org_id, J.c.attempts, J.c.max_attempts)
                                  .where(J.c.id == job_id, J.c.state == "running", J.c.worker == worker))).first()
        if row is None:
            return None
        state = "queued" if row.attempts < row.max_attempts and not final else "failed"
        changed = await conn.execute(
            update(J).where(J.c.id == job_id, J.c.state == "running", J.c.worker == worker)
            .values(state=state, last_error=message, updated_at=now, lease_expires_at=None,
                    finished_at=now if state == "failed" else None, enqueued_at=now if state == "queued" else None))
        if changed.rowcount != 1:
            return None
        await _event(conn, job_id=job_id, org_id=row.org_id, event="retry" if state == "queued" else "failed",
                     attempt=row.attempts, worker=worker, message=message, at=now)
    return state


async def requeue_lapsed(engine: AsyncEngine, *, now: datetime | None = None,
                         limit: int = 100) -> list[str]:
    """Jobs whose worker stopped renewing their lease (killed, machine lost): back to
    ``queued`` (or ``failed`` when their attempts are used up). Returns the ids queued again,
    which the caller enqueues."""
    at = now or utcnow()
    requeued: list[str] = []
    async with engine.connect() as conn:
        rows = (await conn.execute(select(J.c.id).where(J.c.state == "running", J.c.lease_expires_at < at)
                                   .limit(limit))).all()
    for (job_id,) in rows:
        async with engine.begin() as conn:
            row = (await conn.execute(select(J.c.org_id, J.c.attempts, J.c.max_attempts, J.c.worker,
                                             J.c.lease_expires_at).where(J.c.id == job_id, J.c.state == "running",
                                             J.c.lease_expires_at < at))).first()
            if row is None:
                continue
            state = "queued" if row.attempts < row.max_attempts else "failed"
            message = f"worker {row.worker} stopped renewing its lease (lost)"
            changed = await conn.execute(
                update(J).where(J.c.id == job_id, J.c.state == "running", J.c.lease_expires_at == row.lease_expires_at)
                .values(state=state, last_error=message, updated_at=at, lease_expires_at=None,
                        finished_at=at if state == "failed" else None, enqueued_at=at if state == "queued" else None))
            if changed.rowcount != 1:
                continue
            await _event(conn, job_id=job_id, org_id=row.org_id, event="lost" if state == "queued" else "failed",
                         attempt=row.attempts, worker=row.worker, message=message, at=at)
        if state == "queued":
            requeued.append(job_id)
    return requeued


async def stale_queued(engine: AsyncEngine, *, older_than: datetime, limit: int = 100) -> list[str]:
    """Queued jobs enqueued before ``older_than``: their queue message may be lost (a queue
    flushed or restarted without persistence). Enqueuing them again is safe: a claim
    decides who runs a job, so a second message for it is dropped."""
    async with engine.begin() as conn:
        rows = (await conn.execute(select(J.c.id).where(J.c.state == "queued", J.c.enqueued_at < older_than)
                                   .limit(limit))).all()
        ids = [r[0] for r in rows]
        if ids:
            await conn.execute(update(J).where(J.c.id.in_(ids), J.c.state == "queued").values(enqueued_at=utcnow()))
    return ids


async def get_job(session: AsyncSession, *, org_id: str, job_id: str) -> JobView:
    """One of the org's jobs; :class:`JobNotFoundError` for an unknown or another org's id."""
    row = (await session.execute(select(*_VIEW_COLUMNS).where(J.c.id == job_id, J.c.org_id == org_id))).first()
    if row is None:
        raise JobNotFoundError(f"no job {job_id!r}", param="job_id")
    return _view(row)


async def get_any_job(engine: AsyncEngine, job_id: str) -> JobView | None:
    """A job whatever its org (the worker's and the operator's view)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(*_VIEW_COLUMNS).where(J.c.id == job_id))).first()
    return _view(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[JobView]
    next_cursor: str | None


async def list_jobs(session: AsyncSession, *, org_id: str, state: str | None = None, kind: str | None = None,
                    project_id: str | None = None, limit: int | str | None = None,
                    cursor: str | None = None) -> JobPage:
    """The org's jobs, newest first, paged; filters combine."""
    size = check_limit(limit)
    if state is not None and state not in JOB_STATES:
        raise InvalidRequest(f"`state` must be one of {list(JOB_STATES)}", code="invalid_value", param="state")
    query = select(*_VIEW_COLUMNS).where(J.c.org_id == org_id)
    for column, value in ((J.c.state, state), (J.c.kind, kind), (J.c.project_id, project_id)):
        if value is not None:
            query = query.where(column == value)
    rows = (await session.execute(newest_first(query, J.c.created_at, J.c.id, cursor=cursor, limit=size))).all()
    jobs = [_view(r) for r in rows[:size]]
    nxt = encode_cursor(jobs[-1].created_at, jobs[-1].id) if len(rows) > size else None
    return JobPage(jobs, nxt)


async def list_any_jobs(engine: AsyncEngine, *, org_id: str | None = None, state: str | None = None,
                        limit: int = 50) -> list[JobView]:
    """The newest jobs of every org (or one), deployment jobs included: the operator's view."""
    query = select(*_VIEW_COLUMNS)
    if org_id is not None:
        query = query.where(J.c.org_id == org_id)
    if state is not None:
        query = query.where(J.c.state == state)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(J.c.created_at.desc(), J.c.id.desc()).limit(limit))).all()
    return [_view(r) for r in rows]


async def job_events(engine: AsyncEngine, job_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(E).where(E.c.job_id == job_id).order_by(E.c.id))).all()
    return [dict(r._mapping) for r in rows]
