"""Scheduling overhead per workflow step (non-notebook steps), against bare Worker jobs, in the
same run on the same backend.

For each backend (SQLite; PostgreSQL with the queue on Redis when the test URLs are set): a
fresh database, one in-process Worker (2 threads), then, ``--repeat`` times:

- **workflow**: one run of N ``verify`` steps chained by ``depends_on`` (each step one trivial
  assertion): per step = (run finished − run started) / N. Each step is a ``workflow_step`` job:
  its row, claim, lease, events, the step run's rows and events, the template scope, the
  attempt, and ``advance`` queuing the next one.
- **baseline**: N ``noop`` jobs, each submitted as soon as the previous one is ``done`` (one
  client loop and engine; it polls the job row every millisecond): per job = (last finished −
  first created) / N — what a caller chaining bare Worker jobs by hand would get.

Prints one JSON line per backend and a Markdown table; the ratio workflow / baseline is the
figure to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from deepspace_lab.auth import create_org, create_project, create_user
from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine
from deepspace_lab.db.migrate import upgrade
from deepspace_lab.jobs import JobQueue, submit_job
from deepspace_lab.jobs.worker import Worker
from deepspace_lab.tracing import new_trace_id
from deepspace_lab.workflows.definitions import validate_definition
from deepspace_lab.workflows.engine import start_run

SECRET = "bench-secret-key-not-for-production-0123456789"


def settings_for(db_url: str, data_dir: Path, redis_url: str | None) -> Settings:
    return Settings.from_env({"database_url": db_url, "data_dir": str(data_dir), "secret_key": SECRET,
                              "worker_queue": f"bench_{secrets.token_hex(4)}", "redis_url": redis_url,
                              "log_level": "WARNING", "workflow_max_concurrent_runs": 0}, environ={})


async def tenant(settings: Settings) -> tuple[str, str, str]:
    engine = make_async_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            user = await create_user(session, email=f"bench-{secrets.token_hex(3)}@example.org")
            org = await create_org(session, name="bench", owner=user)
            project = await create_project(session, org_id=org.id, name="bench")
            await session.commit()
            return user.id, org.id, project.id
    finally:
        await engine.dispose()


def chain(n: int) -> dict[str, Any]:
    steps = [{"id": f"s{i}", "kind": "verify", "assert": [{"value": i, "equals": i}],
              **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(n)]
    return validate_definition({"name": "bench", "steps": steps})


def wait_row(db: Any, query: str, params: dict[str, Any], done: Any, timeout_s: float = 300) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        with db.connect() as conn:
            row = conn.execute(text(query), params).first()
        if row is not None and done(row):
            return row
        if time.monotonic() > deadline:
            raise TimeoutError(query)
        time.sleep(0.001)


def one_workflow(settings: Settings, queue: JobQueue, who: tuple[str, str, str], n: int, db: Any) -> float:
    user_id, org_id, project_id = who

    async def go() -> dict[str, Any]:
        engine = make_async_engine(settings.database_url)
        try:
            return await start_run(engine, queue, settings, org_id=org_id, project_id=project_id, user_id=user_id,
                                   definition=chain(n), inputs={}, trace_id=new_trace_id())
        finally:
            await engine.dispose()

    run = asyncio.run(go())
    row = wait_row(db, "SELECT state, started_at, finished_at FROM workflow_runs WHERE id = :r", {"r": run["id"]},
                   lambda r: r.state not in ("running", "cancelling"))
    assert row.state == "succeeded", row
    started, finished = (row.started_at, row.finished_at)
    return float((_dt(finished) - _dt(started)).total_seconds()) / n


def _dt(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def noop_chain(settings: Settings, queue: JobQueue, org_id: str, n: int, db: Any) -> float:
    """N noop jobs, each submitted (one engine, one loop) as soon as the previous one is done."""
    async def go() -> float:
        engine = make_async_engine(settings.database_url)
        first_created = last_finished = None
        try:
            for _ in range(n):
                job = await submit_job(engine, queue, kind="noop", trace_id=new_trace_id(), org_id=org_id)
                while True:
                    async with engine.connect() as conn:
                        row = (await conn.execute(text("SELECT state, created_at, finished_at FROM jobs "
                                                       "WHERE id = :j"), {"j": job.id})).one()
                    if row.state in ("done", "failed"):
                        break
                    await asyncio.sleep(0.001)
                first_created = first_created or _dt(row.created_at)
                last_finished = _dt(row.finished_at)
        finally:
            await engine.dispose()
        assert first_created is not None and last_finished is not None
        return float((last_finished - first_created).total_seconds()) / n

    return asyncio.run(go())


def bench(name: str, db_url: str, redis_url: str | None, n: int, repeat: int) -> dict[str, Any]:
    upgrade(db_url)
    data = Path(tempfile.mkdtemp(prefix="bench-wf-"))
    settings = settings_for(db_url, data, redis_url)
    who = asyncio.run(tenant(settings))
    worker = Worker(settings, threads=2)
    worker.start()
    queue = JobQueue(settings)
    db = make_sync_engine(db_url)
    try:
        one_workflow(settings, queue, who, 3, db)  # warm-up: imports, connections
        noop_chain(settings, queue, who[1], 3, db)
        flows, noops = [], []
        for _ in range(repeat):
            flows.append(one_workflow(settings, queue, who, n, db))
            noops.append(noop_chain(settings, queue, who[1], n, db))
    finally:
        worker.stop()
        queue.close()
        db.dispose()
    wf, base = statistics.median(flows), statistics.median(noops)
    return {"backend": name, "steps": n, "repeat": repeat, "workflow_ms_per_step": round(wf * 1000, 2),
            "noop_ms_per_job": round(base * 1000, 2), "ratio": round(wf / base, 2),
            "runs_ms_per_step": [round(v * 1000, 2) for v in flows],
            "noops_ms_per_job": [round(v * 1000, 2) for v in noops]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [bench("sqlite", f"sqlite:///{tempfile.mkdtemp(prefix='bench-wf-db-')}/db.sqlite", None, args.steps,
                  args.repeat)]
    pg, redis = os.environ.get("DEEPSPACE_TEST_DATABASE_URL"), os.environ.get("DEEPSPACE_TEST_REDIS_URL")
    if pg and redis:
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"bench_wf_{secrets.token_hex(4)}"
        admin = make_url(pg).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            rows.append(bench("postgresql (queue: redis)", make_url(pg).set(database=name).render_as_string(
                hide_password=False), redis, args.steps, args.repeat))
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for row in rows:
        print(json.dumps(row))
    print("\n| backend | workflow step (ms) | bare `noop` job (ms) | step / job |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['backend']} | {row['workflow_ms_per_step']} | {row['noop_ms_per_job']} | {row['ratio']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
