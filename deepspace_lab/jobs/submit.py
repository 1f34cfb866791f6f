"""Starting a job: check its kind and params, record it queued, put its id on the queue."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from .errors import UnknownJobKindError
from .kinds import job_kinds
from .queue import JobQueue
from .service import JobView, create_job

log = logging.getLogger("deepspace_lab.worker")


async def submit_job(engine: AsyncEngine, queue: JobQueue, *, kind: str, trace_id: str, org_id: str | None,
                     project_id: str | None = None, created_by: str | None = None,
                     params: dict[str, Any] | None = None, max_attempts: int | None = None) -> JobView:
    """Validate, record (committed) and enqueue a job (tried ``max_attempts`` times, default
    ``DEEPSPACE_JOB_MAX_ATTEMPTS``). If the queue cannot be reached the job
    stays ``queued`` and a worker's reaper sends it later; the caller still gets it."""
    spec = job_kinds().get(kind)
    if spec is None:
        raise UnknownJobKindError(f"unknown job kind {kind!r}; known: {sorted(job_kinds())}", param="kind")
    clean = spec.check(dict(params or {}))
    job = await create_job(engine, kind=kind, trace_id=trace_id, org_id=org_id, project_id=project_id,
                           created_by=created_by, params=clean,
                           max_attempts=max_attempts or queue.settings.job_max_attempts)
    try:
        await asyncio.to_thread(queue.enqueue, job.id)
    except Exception:
        log.warning("could not enqueue job %s now; a worker will pick it up later", job.id, exc_info=True)
    return job
