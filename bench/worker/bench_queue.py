"""Enqueue-to-start latency and jobs per second of a trivial job, through our Worker and through
bare Huey, on each queue backend, in the same run.

For each backend: a fresh database (SQLite file, or a new PostgreSQL database on --pg-url),
one worker process (``deepspace-lab worker --threads 2``), then:

- latency: N jobs submitted one at a time, each after the previous one finished (an idle
  queue, as an interactive export sees it); enqueue-to-start = ``started_at - created_at`` of
  the job row;
- throughput: N jobs queued first, then the worker started; jobs/s = N / (last finish - first
  start), i.e. how fast one worker drains a queue (the submit rate is reported beside it).

The same two measurements run against a bare Huey consumer (``raw_huey.py``: same backend,
same consumer settings, a task that only writes a timestamp). Prints a JSON line per backend
and a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _scratch import scratch_database
from sqlalchemy import text

from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine, make_sync_engine
from deepspace_lab.db.rawpool import conninfo_of
from deepspace_lab.jobs import JobQueue, submit_job

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(pct(ms, 0.95), 2),
            "mean_ms": round(statistics.fmean(ms), 2)}


def wait_for(predicate: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(0.002)


# -- ours ------------------------------------------------------------------------------------
def _ids_in(column: str, table_sql: str) -> Any:
    import sqlalchemy

    return text(table_sql.format(column=column)).bindparams(sqlalchemy.bindparam("ids", expanding=True))


def bench_ours(settings: Settings, env: dict[str, str], n: int) -> dict[str, Any]:
    db = make_sync_engine(settings.database_url)
    queue = JobQueue(settings)
    loop = asyncio.new_event_loop()
    engine = make_async_engine(settings.database_url)

    def submit() -> str:
        job = loop.run_until_complete(submit_job(engine, queue, kind="noop", trace_id=secrets.token_hex(16),
                                                 org_id=None))
        return job.id

    def one(sql: str, **params: Any) -> Any:
        with db.connect() as conn:
            return conn.execute(_ids_in("", sql) if "ids" in params else text(sql), params).scalar_one()

    worker = None
    try:
        # throughput: N jobs queued, then a worker drains them
        t0 = time.time()
        burst = [submit() for _ in range(n)]
        submit_s = time.time() - t0
        worker = subprocess.Popen([str(BIN / "deepspace-lab"), "worker", "--threads", "2"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done_sql = "SELECT COUNT(*) FROM jobs WHERE state = 'done' AND id IN :ids"
        wait_for(lambda: one(done_sql, ids=burst) == n, 300)
        first = _dt(one("SELECT MIN(started_at) FROM jobs WHERE id IN :ids", ids=burst))
        last = _dt(one("SELECT MAX(finished_at) FROM jobs WHERE id IN :ids", ids=burst))
        # latency: one job at a time on an idle queue
        latency = []
        for _ in range(n):
            job_id = submit()
            wait_for(lambda job_id=job_id: one("SELECT state FROM jobs WHERE id = :i", i=job_id) == "done")
            with db.connect() as conn:
                created, started = conn.execute(text("SELECT created_at, started_at FROM jobs WHERE id = :i"),
                                                {"i": job_id}).one()
            latency.append(_dt(started) - _dt(created))
        return {"latency": summary_ms(latency), "jobs_per_s": round(n / (last - first), 1),
                "submit_per_s": round(n / submit_s, 1)}
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGINT)
            worker.wait(30)
        loop.run_until_complete(engine.dispose())
        loop.close()
        queue.close()
        db.dispose()


def _dt(value: Any) -> float:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


# -- bare Huey -------------------------------------------------------------------------------
def bench_raw(raw_env: dict[str, str], n: int) -> dict[str, Any]:
    out = Path(raw_env["RAW_OUT"])
    out.write_text("")
    os.environ.update(raw_env)
    sys.path.insert(0, str(HERE))
    import raw_huey

    huey: Any = raw_huey.make()

    def lines() -> list[str]:
        return out.read_text().splitlines()

    consumer = None
    try:
        t0 = time.time()
        for _ in range(n):
            huey.enqueue(huey.raw.s(time.time()))
        submit_s = time.time() - t0
        consumer = subprocess.Popen([sys.executable, "-c", "import raw_huey; raw_huey.consume()"], cwd=HERE,
                                    env={**os.environ, **raw_env, "PYTHONPATH": str(HERE)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(lines()) == n, 300)
        starts = [float(line.split()[1]) for line in lines()]
        rate = n / (max(starts) - min(starts))
        out.write_text("")
        for i in range(n):
            huey.enqueue(huey.raw.s(time.time()))
            wait_for(lambda i=i: len(lines()) == i + 1)
        latency = [float(b) - float(a) for a, b in (line.split() for line in lines())]
        return {"latency": summary_ms(latency), "jobs_per_s": round(rate, 1), "submit_per_s": round(n / submit_s, 1)}
    finally:
        if consumer is not None:
            consumer.send_signal(signal.SIGINT)
            consumer.wait(30)
        huey.storage.flush_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,redis,postgresql")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--pg-url", default=os.environ.get("DEEPSPACE_TEST_DATABASE_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("DEEPSPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-worker-{backend}-"))
        queue = f"bench_{secrets.token_hex(4)}"
        with scratch_database("sqlite" if backend == "sqlite" else "postgresql", args.pg_url, "bench-worker",
                              folder=tmp) as db_url:
            extra = {"redis_url": args.redis_url} if backend == "redis" else {}
            settings = Settings.from_env({"data_dir": str(tmp), "database_url": db_url, "secret_key": "bench" * 8,
                                          "worker_queue": queue, "worker_backend": backend, **extra}, environ={})
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEEPSPACE_")},
                   "DEEPSPACE_DATA_DIR": str(tmp), "DEEPSPACE_DATABASE_URL": db_url,
                   "DEEPSPACE_SECRET_KEY": "bench" * 8, "DEEPSPACE_WORKER_QUEUE": queue,
                   "DEEPSPACE_WORKER_BACKEND": backend, "DEEPSPACE_LOG_LEVEL": "WARNING",
                   **({"DEEPSPACE_REDIS_URL": args.redis_url} if backend == "redis" else {})}
            raw_env = {"RAW_BACKEND": backend, "RAW_QUEUE": queue + "_raw", "RAW_REDIS_URL": args.redis_url,
                       "RAW_PG_DSN": conninfo_of(db_url), "RAW_SQLITE_FILE": str(tmp / "raw-queue.sqlite"),
                       "RAW_OUT": str(tmp / "raw.out")}
            ours = bench_ours(settings, env, args.jobs)
            raw = bench_raw(raw_env, args.jobs)
        results[backend] = {"ours": ours, "huey": raw}
        print(json.dumps({"backend": backend, "jobs": args.jobs, "ours": ours, "huey": raw,
                          "load_average": round(os.getloadavg()[0], 2)}), flush=True)
    print("\n| queue | enqueue→start p50 / p95 (ours) | (bare Huey) | jobs/s (ours) | (bare Huey) | ratio jobs/s |")
    print("|---|---|---|---|---|---|")
    for backend, r in results.items():
        o, h = r["ours"], r["huey"]
        print(f"| {backend} | {o['latency']['p50_ms']} / {o['latency']['p95_ms']} ms | "
              f"{h['latency']['p50_ms']} / {h['latency']['p95_ms']} ms | {o['jobs_per_s']} | {h['jobs_per_s']} | "
              f"{o['jobs_per_s'] / h['jobs_per_s']:.2f} |")


if __name__ == "__main__":
    main()
