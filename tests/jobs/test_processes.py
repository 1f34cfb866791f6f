"""``deepspace-lab worker`` processes: two on one Redis queue run every job exactly once; a
worker killed (SIGKILL) mid-job loses nothing — another runs the job again."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepspace_lab.db.migrate import upgrade

from ..cli.conftest import CLI, Processes, clean_environ, sql
from ..conftest import make_settings
from ..helpers import TEST_SECRET
from .conftest import Jobs, queue_name

pytestmark = pytest.mark.slow


def worker_env(db_url: str, data_dir: Path, queue: str, **extra: str) -> dict[str, str]:
    return clean_environ(DEEPSPACE_DATABASE_URL=db_url, DEEPSPACE_DATA_DIR=str(data_dir),
                         DEEPSPACE_SECRET_KEY=TEST_SECRET, DEEPSPACE_WORKER_QUEUE=queue,
                         DEEPSPACE_LOG_LEVEL="WARNING", **extra)


def start_worker(spawn: Processes, env: dict[str, str], name: str) -> Any:
    proc = spawn([CLI, "worker", "--threads", "2"], env, name=name)
    proc.wait_output(" ready: ", timeout=60)
    return proc


def test_two_workers_on_one_redis_queue_run_every_job_exactly_once(
        pg_databases: Any, redis_url: str, tmp_path: Path, spawn: Processes,
        jobs_factory: Callable[..., Jobs]) -> None:
    db_url = pg_databases.create()
    upgrade(db_url)
    queue = queue_name()
    env = worker_env(db_url, tmp_path / "data", queue, DEEPSPACE_REDIS_URL=redis_url)
    workers = [start_worker(spawn, env, f"worker-{i}") for i in range(2)]
    jobs = jobs_factory(make_settings(db_url, tmp_path / "data", redis_url=redis_url, worker_queue=queue))
    submitted = [jobs.submit("sleep", seconds=0.05).id for _ in range(40)]
    for job_id in submitted:
        jobs.queue.enqueue(job_id)  # every id twice: the two workers race for the same job
    for job_id in submitted:
        jobs.wait(job_id, "done")
    jobs.wait(jobs.submit("noop").id, "done")  # queued after the duplicates: they were consumed
    assert jobs.queue.pending() == 0
    started = sql(db_url, "SELECT job_id, worker FROM job_events WHERE event = 'started'")
    assert Counter(r["job_id"] for r in started if r["job_id"] in submitted) == {job_id: 1 for job_id in submitted}
    pids = {str(w.popen.pid) for w in workers}
    assert {r["worker"].rsplit(":", 1)[1] for r in started} == pids  # both took part


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_job_of_a_worker_killed_mid_job_runs_again_on_another(
        backend: str, fresh_db_url: Callable[[], str], redis_url: str, tmp_path: Path, spawn: Processes,
        jobs_factory: Callable[..., Jobs]) -> None:
    db_url = fresh_db_url()
    upgrade(db_url)
    queue = queue_name()
    extra = {"DEEPSPACE_REDIS_URL": redis_url} if backend == "postgresql" else {}
    env = worker_env(db_url, tmp_path / "data", queue, DEEPSPACE_JOB_LEASE_S="1", **extra)
    jobs = jobs_factory(make_settings(db_url, tmp_path / "data", worker_queue=queue, job_lease_s=1,
                                      redis_url=extra.get("DEEPSPACE_REDIS_URL")))
    assert jobs.queue.backend == ("redis" if backend == "postgresql" else "sqlite")
    first = start_worker(spawn, env, "doomed")
    job = jobs.submit("sleep", seconds=2)
    running = jobs.wait(job.id, "running")
    assert running.worker is not None and running.worker.endswith(f":{first.popen.pid}")
    first.stop(signal.SIGKILL)
    second = start_worker(spawn, env, "survivor")
    done = jobs.wait(job.id, "done", timeout_s=60)
    assert done.attempts == 2 and done.worker is not None and done.worker.endswith(f":{second.popen.pid}")
    events = [r["event"] for r in sql(db_url, "SELECT event FROM job_events WHERE job_id = :j ORDER BY id", j=job.id)]
    assert events == ["queued", "started", "lost", "started", "done"]
