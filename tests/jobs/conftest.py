"""Worker fixtures: settings with a queue of the test's own, in-process workers, a helper
that submits jobs and one that waits for a job to reach a state."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine
from deepspace_lab.jobs import JobQueue, JobView, submit_job
from deepspace_lab.jobs.service import get_any_job
from deepspace_lab.jobs.worker import Worker

from ..cli.conftest import cli_env, spawn  # noqa: F401  (fixtures the CLI and process tests use)
from ..conftest import make_settings


def queue_name() -> str:
    return f"t_{secrets.token_hex(5)}"


@pytest.fixture
def job_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the backend's database with a queue name no other test uses."""
    return lambda **overrides: make_settings(db_url, tmp_path / "data", worker_queue=queue_name(),
                                             **{"job_lease_s": 5, **overrides})


class Jobs:
    """Submits and reads jobs from the test's thread (each call on a fresh loop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = JobQueue(settings)

    def _run(self, coro_fn: Callable[[Any], Any]) -> Any:
        async def go() -> Any:
            engine = make_async_engine(self.settings.database_url)
            try:
                return await coro_fn(engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def submit(self, kind: str, *, org_id: str | None = None, **params: Any) -> JobView:
        return self._run(lambda engine: submit_job(engine, self.queue, kind=kind, trace_id=secrets.token_hex(16),
                                                   org_id=org_id, params=params))

    def get(self, job_id: str) -> JobView:
        job = self._run(lambda engine: get_any_job(engine, job_id))
        assert job is not None
        return job

    def wait(self, job_id: str, *states: str, timeout_s: float = 30) -> JobView:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.state in states:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job.state} (wanted {states})"
            time.sleep(0.05)

    def close(self) -> None:
        try:
            self.queue.huey.storage.flush_all()
        finally:
            self.queue.close()


@pytest.fixture
def jobs_factory() -> Iterator[Callable[[Settings], Jobs]]:
    made: list[Jobs] = []

    def make(settings: Settings) -> Jobs:
        made.append(Jobs(settings))
        return made[-1]

    yield make
    for jobs in made:
        jobs.close()


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., Worker]]:
    """In-process workers (Huey threads, no signal handlers), stopped after the test."""
    started: list[Worker] = []

    def start(settings: Settings, **kwargs: Any) -> Worker:
        worker = Worker(settings, **kwargs)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
