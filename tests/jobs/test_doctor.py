"""doctor says when no worker runs (a job waiting too long) and when storage cannot be used."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from deepspace_lab.db import make_sync_engine
from deepspace_lab.db.base import utcnow
from deepspace_lab.doctor import run_checks
from deepspace_lab.jobs.models import Job

from .conftest import Jobs


def checks(settings: Any) -> dict[str, Any]:
    return {c.name: c for c in asyncio.run(run_checks(settings))}


def test_a_job_waiting_long_means_no_worker_runs(job_settings: Any, jobs_factory: Any) -> None:
    settings = job_settings(worker_backend="sqlite")
    jobs: Jobs = jobs_factory(settings)
    job = jobs.submit("noop")
    fresh = checks(settings)
    assert fresh["worker"].ok and fresh["storage"].ok
    engine = make_sync_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job.id).values(enqueued_at=utcnow() - timedelta(minutes=6)))
    engine.dispose()
    stale = checks(settings)["worker"]
    assert not stale.ok and "1 job(s) queued" in stale.message and "deepspace-lab worker" in stale.fix


def test_a_queue_backend_that_cannot_work_is_named(job_settings: Any) -> None:
    report = checks(job_settings(worker_backend="redis"))
    assert not report["worker"].ok and "DEEPSPACE_REDIS_URL" in report["worker"].message
