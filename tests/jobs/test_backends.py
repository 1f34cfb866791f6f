"""The shared queue backends, one in-process worker each: on Redis and on PostgreSQL (the queue in
the database) a worker runs every job once whatever the queue delivers twice, and retries a
failing one after its backoff (Huey's delayed schedule on that backend); on PostgreSQL a
scheduled task that another worker is running is skipped, and runs again once that worker's
connection is gone (a killed worker leaves no lock behind; the lock's connection has the
server-side keepalives that end a vanished machine's session)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from deepspace_lab.db import make_async_engine
from deepspace_lab.db.migrate import upgrade
from deepspace_lab.jobs.scheduled import PG_LOCK_BASE, run_scheduled, task_lock

from ..cli.conftest import sql
from ..conftest import make_settings
from .conftest import Jobs, queue_name


@pytest.fixture
def pg_url(pg_databases: Any) -> Iterator[str]:
    """A migrated PostgreSQL database of the test's own (the shared backends need one)."""
    url = pg_databases.create()
    upgrade(url)
    yield url
    pg_databases.drop([url])


@pytest.mark.parametrize("backend", ["redis", "postgresql"])
def test_a_shared_queue_runs_each_job_once_and_retries_after_the_backoff(
        backend: str, pg_url: str, redis_url: str, tmp_path: Path, jobs_factory: Callable[..., Jobs],
        worker_factory: Callable[..., Any]) -> None:
    settings = make_settings(pg_url, tmp_path / "data", worker_queue=queue_name(), worker_backend=backend,
                             job_lease_s=5, redis_url=redis_url if backend == "redis" else None)
    jobs = jobs_factory(settings)
    assert type(jobs.queue.huey).__name__ == {"redis": "RedisHuey", "postgresql": "PostgresHuey"}[backend]
    plain = [jobs.submit("noop").id for _ in range(6)]
    for job_id in plain:
        jobs.queue.enqueue(job_id)  # every id a second time: the worker's two threads race for it
    flaky = jobs.submit("sleep", seconds=0, fail_times=1).id
    worker_factory(settings)
    assert jobs.wait(flaky, "done").attempts == 2
    for job_id in plain:
        assert jobs.wait(job_id, "done").attempts == 1
    marker = jobs.submit("noop").id  # queued after the duplicates: once it is done they were consumed
    jobs.wait(marker, "done")
    assert jobs.queue.pending() == 0
    started = sql(pg_url, "SELECT job_id FROM job_events WHERE event = 'started'")
    counts = {job_id: sum(r["job_id"] == job_id for r in started) for job_id in (*plain, flaky, marker)}
    assert counts == {**{job_id: 1 for job_id in (*plain, marker)}, flaky: 2}
    retry, again = sql(pg_url, "SELECT event, created_at FROM job_events WHERE job_id = :j AND event IN "
                               "('retry', 'started') AND attempt >= 1 ORDER BY id", j=flaky)[1:]
    assert (retry["event"], again["event"]) == ("retry", "started")
    assert (again["created_at"] - retry["created_at"]).total_seconds() >= 0.9  # the 1 s backoff, then again


def test_on_postgresql_a_scheduled_task_another_worker_runs_is_skipped(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(pg_url, tmp_path / "data")

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        other, ours = make_async_engine(pg_url), make_async_engine(pg_url)
        try:
            async with other.connect() as conn:  # another worker, in the middle of its roll-ups
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_BASE})
                await conn.commit()
                skipped = await run_scheduled("rollups", settings, ours)
            await other.dispose()  # that worker dies: its connection, and the lock, are gone
            await until_no_advisory_lock(ours)  # the server ends a closed session a moment later
            ran = await run_scheduled("rollups", settings, ours)
            async with task_lock(ours, "rollups") as held:  # a vanished machine's lock lapses in ~1 min
                assert held is not None
                tcp, idle = (await held.execute(text("SELECT inet_client_addr() IS NOT NULL, "
                                                     "current_setting('tcp_keepalives_idle')"))).one()
                # the test URL is TCP (127.0.0.1, as .ci/run sets it): a Unix socket has no keepalives
                assert (tcp, idle) == (True, "30")
            return skipped, ran
        finally:
            await ours.dispose()

    skipped, ran = asyncio.run(go())
    assert skipped == {"skipped": True}
    assert ran.get("periods_built") == {"hour": 0, "day": 0}, ran


async def until_no_advisory_lock(engine: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    async with engine.connect() as conn:
        while (await conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                       "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                                       ))).scalar():
            assert time.monotonic() < deadline, "the dead connection's advisory lock was never released"
            await asyncio.sleep(0.02)
