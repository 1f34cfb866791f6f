"""One worker on the embedded SQLite queue (the database on both backends): jobs run,
report progress, retry, fail with their error; a duplicate message runs nothing twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from deepspace_lab.db import make_sync_engine

from ..helpers import count
from .conftest import Jobs


def started_events(settings: Any, job_id: str) -> int:
    engine = make_sync_engine(settings.database_url)
    try:
        return count(engine, "job_events", job_id=job_id, event="started")
    finally:
        engine.dispose()


def test_a_job_runs_to_done_with_its_progress_and_result(job_settings: Callable[..., Any],
                                                          jobs_factory: Callable[..., Jobs],
                                                          worker_factory: Callable[..., Any]) -> None:
    settings = job_settings(worker_backend="sqlite")
    jobs = jobs_factory(settings)
    job = jobs.submit("sleep", seconds=3)
    assert job.state == "queued" and job.attempts == 0
    worker_factory(settings)
    seen = jobs.wait(job.id, "running")
    assert seen.worker and seen.attempts == 1
    while seen.state == "running" and not seen.progress_done:  # renewed with the lease, once a second
        seen = jobs.wait(job.id, "running", "done")
    assert seen.state == "running", "the job ended before its progress was ever seen"
    assert 0 < seen.progress_done < 20 and seen.progress_total == 20 and 0 < (seen.progress_percent or 0) < 100
    done = jobs.wait(job.id, "done")
    assert done.result == {"slept_s": 3} and done.progress_percent == 100.0 and done.last_error is None
    assert started_events(settings, job.id) == 1


def test_a_failing_job_is_retried_then_succeeds(job_settings: Callable[..., Any], jobs_factory: Callable[..., Jobs],
                                                worker_factory: Callable[..., Any]) -> None:
    settings = job_settings(worker_backend="sqlite")
    jobs = jobs_factory(settings)
    worker_factory(settings)
    job = jobs.submit("sleep", seconds=0, fail_times=1)
    done = jobs.wait(job.id, "done")
    assert done.attempts == 2 and started_events(settings, job.id) == 2


def test_a_job_failing_every_attempt_ends_failed_with_its_error(job_settings: Callable[..., Any],
                                                                jobs_factory: Callable[..., Jobs],
                                                                worker_factory: Callable[..., Any]) -> None:
    settings = job_settings(worker_backend="sqlite", job_max_attempts=2)
    jobs = jobs_factory(settings)
    worker_factory(settings)
    job = jobs.submit("sleep", seconds=0, fail_times=5)
    failed = jobs.wait(job.id, "failed")
    assert failed.attempts == 2 and "failing attempt 2 on purpose" in (failed.last_error or "")


def test_a_duplicate_message_does_not_run_a_job_twice(job_settings: Callable[..., Any],
                                                      jobs_factory: Callable[..., Jobs],
                                                      worker_factory: Callable[..., Any]) -> None:
    settings = job_settings(worker_backend="sqlite")
    jobs = jobs_factory(settings)
    job = jobs.submit("noop")
    for _ in range(3):
        jobs.queue.enqueue(job.id)  # the same id three more times
    worker_factory(settings)
    jobs.wait(job.id, "done")
    marker = jobs.submit("noop")  # queued after the duplicates: when it is done, they were consumed
    jobs.wait(marker.id, "done")
    assert jobs.queue.pending() == 0
    assert jobs.get(job.id).attempts == 1 and started_events(settings, job.id) == 1


def test_a_worker_that_starts_catches_up_on_the_rollups_it_missed(job_settings: Callable[..., Any],
                                                                  worker_factory: Callable[..., Any]) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from deepspace_lab.billing.models import UsageRecord

    from ..helpers import make_tenant

    settings = job_settings(worker_backend="sqlite")
    tenant = make_tenant(settings, email="missed@example.org", credit_micros=0)
    db = make_sync_engine(settings.database_url)
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    with Session(db) as session:  # usage from three days ago, while no worker ran
        for i in range(5):
            session.add(UsageRecord(request_id=f"req_missed_{i}", trace_id="t" * 32, org_id=tenant.org_id,
                                    project_id=tenant.project_id, model="m", cost_micros=10, measured="upstream",
                                    status="captured", created_at=three_days_ago + timedelta(hours=i)))
        session.commit()
    assert count(db, "usage_rollups") == 0
    worker_factory(settings)
    deadline = time.monotonic() + 30
    while count(db, "usage_rollups", period="day") == 0:
        assert time.monotonic() < deadline, "the worker did not catch up"
        time.sleep(0.05)
    assert count(db, "usage_rollups", period="hour") == 5 and count(db, "rollup_marks") == 2
    db.dispose()
