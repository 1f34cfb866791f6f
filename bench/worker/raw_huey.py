"""The baseline: bare Huey on the same backend and consumer settings as our Worker, running a
trivial task that records when it started. No jobs table, no claim, no lease.

:func:`consume` runs the consumer (the environment names the backend); the bench imports
:func:`make` to enqueue. Both import this module as ``raw_huey``: Huey names a task by its
module and function.
"""

from __future__ import annotations

import os
import time

from huey import PostgresHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer


def make() -> object:
    backend, queue = os.environ["RAW_BACKEND"], os.environ["RAW_QUEUE"]
    common = {"name": queue, "results": False, "utc": True}
    if backend == "redis":
        huey = RedisHuey(url=os.environ["RAW_REDIS_URL"], **common)
    elif backend == "postgresql":
        huey = PostgresHuey(dsn=os.environ["RAW_PG_DSN"], **common)
    else:
        huey = SqliteHuey(filename=os.environ["RAW_SQLITE_FILE"], **common)
    out = os.environ["RAW_OUT"]

    @huey.task(name="raw")
    def raw(enqueued_at: float) -> None:
        started = time.time()
        with open(out, "a") as handle:  # one short line per task: atomic enough for O_APPEND
            handle.write(f"{enqueued_at} {started}\n")

    huey.raw = raw  # type: ignore[attr-defined]
    return huey


def consume() -> None:
    huey = make()
    # the same consumer settings as deepspace_lab.jobs.worker.Worker
    Consumer(huey, workers=2, worker_type="thread", periodic=False, initial_delay=0.05, backoff=1.5,
             max_delay=0.5, scheduler_interval=1).run()
