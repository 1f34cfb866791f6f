"""Workflow engine fixtures: an in-process gateway (simulated model) and worker sharing a queue of
the test's own (SQLite's queue on SQLite, real Redis beside PostgreSQL), and :class:`Flows`, which
starts runs through the engine and waits on their state."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine
from deepspace_lab.jobs import JobQueue
from deepspace_lab.jobs.worker import Worker
from deepspace_lab.tracing import new_trace_id
from deepspace_lab.workflows import engine as wf_engine
from deepspace_lab.workflows.definitions import parse_definition
from deepspace_lab.workflows.service import get_run

from ..cli.conftest import spawn  # noqa: F401  (the process tests' fixture)
from ..helpers import TEST_SECRET, Gateway
from ..jobs.conftest import queue_name

T = TypeVar("T")
MODEL = "deepspace-simulated-chat"


class Flows:
    """Starts, reads and waits on runs of the gateway's tenant from the test's thread."""

    def __init__(self, gw: Gateway, settings: Settings) -> None:
        self.gw, self.settings = gw, settings
        self.queue = JobQueue(settings)

    def call(self, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        async def go() -> T:
            engine = make_async_engine(self.settings.database_url)
            try:
                return await fn(engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def start(self, source: str, inputs: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        _, definition = parse_definition(source)
        t = self.gw.tenant
        return self.call(lambda engine: wf_engine.start_run(
            engine, self.queue, self.settings, org_id=t.org_id, project_id=t.project_id, user_id=t.user_id,
            definition=definition, inputs=inputs or {}, trace_id=kwargs.pop("trace_id", new_trace_id()),
            created_by="tests", **kwargs))

    def api_key(self, *scopes: str) -> str:
        """A new key of the tenant's user with these scopes."""
        from deepspace_lab.auth import create_api_key
        from deepspace_lab.db import make_sessionmaker

        async def make(engine: Any) -> str:
            t = self.gw.tenant
            async with make_sessionmaker(engine)() as session:
                _, plaintext = await create_api_key(session, secret_key=TEST_SECRET, org_id=t.org_id,
                                                    project_id=t.project_id, user_id=t.user_id, scopes=scopes)
                await session.commit()
            return plaintext

        return self.call(make)

    def get(self, run_id: str) -> dict[str, Any]:
        async def read(engine: Any) -> dict[str, Any]:
            async with engine.connect() as conn:
                return await get_run(conn, org_id=self.gw.tenant.org_id, run_id=run_id)

        return self.call(read)

    def wait(self, run_id: str, *states: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get(run_id)
            if run["state"] in states:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['state']} (wanted {states}): {run}"
            time.sleep(0.05)

    def wait_step(self, run_id: str, step_id: str, *states: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            step = next(s for s in self.get(run_id)["steps"] if s["step_id"] == step_id)
            if step["state"] in states:
                return step
            assert time.monotonic() < deadline, f"step {step_id} still {step['state']} (wanted {states})"
            time.sleep(0.05)

    def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with self.gw.db.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text(query), params)]
        for row in rows:
            for key, value in row.items():
                if isinstance(value, str) and value[:1] in "{[" and key in ("detail", "data", "params"):
                    row[key] = json.loads(value)
        return rows

    def events(self, run_id: str) -> list[str]:
        return [r["event"] for r in self.rows("SELECT event FROM workflow_events WHERE run_id = :r ORDER BY id",
                                              r=run_id)]

    def close(self) -> None:
        try:
            self.queue.huey.storage.flush_all()
        finally:
            self.queue.close()


@pytest.fixture
def flow_settings(backend: str, redis_url: str) -> Callable[..., dict[str, Any]]:
    """Overrides for a gateway whose worker queue is the test's own (Redis beside PostgreSQL)."""
    def make(**extra: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"worker_queue": queue_name(), "job_lease_s": 2}
        if backend == "postgresql":
            values["redis_url"] = redis_url
        return {**values, **extra}
    return make


@pytest.fixture
def flow_gateway(gateway_factory: Callable[..., Gateway], flow_settings: Callable[..., dict[str, Any]]) -> Gateway:
    return gateway_factory(**flow_settings())


@pytest.fixture
def flows(flow_gateway: Gateway) -> Iterator[Flows]:
    made = Flows(flow_gateway, flow_gateway.settings.replace(workflow_gateway_url=flow_gateway.url))
    yield made
    made.close()


@pytest.fixture
def start_worker(flows: Flows) -> Iterator[Callable[..., Worker]]:
    """In-process workers on the flows' queue (stopped after the test)."""
    started: list[Worker] = []

    def start(**overrides: Any) -> Worker:
        worker = Worker(flows.settings.replace(**overrides), threads=2)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if not worker._stop.is_set():  # not stopped by the test already
            worker.stop()


@pytest.fixture
def worker(start_worker: Callable[..., Worker]) -> Worker:
    return start_worker()
