"""The queue under the Worker: Huey, on SQLite (one machine), Redis or PostgreSQL (many).

Why Huey (see the commit that brought it, and ``shared/reference/workflows_rag_mcp.md`` §4):
one small, dependency-free library with an embedded SQLite backend *and* Redis and
PostgreSQL backends behind the same API, a consumer with thread workers, delayed tasks
and crontab-style periodic tasks. RQ and arq are
Redis-only, Dramatiq has no persistent embedded broker, Celery is far heavier.

The queue carries only job ids. Everything a user sees (state, attempts, progress, result)
is in our ``jobs`` table (:mod:`.service`): Huey's own result store is off, and a message
Huey delivers twice, or that a reaper enqueues again, is harmless — a claim in the
database decides who runs a job.

Gateways and the CLI use :class:`JobQueue` to enqueue; ``deepspace-lab worker`` consumes
(:mod:`.worker`). Task names are fixed strings, so any process built from the same
settings (same backend and ``DEEPSPACE_WORKER_QUEUE``) shares the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey, crontab

from ..config import Settings
from ..db.rawpool import conninfo_of

RUN_JOB = "deepspace.run_job"
#: periodic tasks: name -> crontab (UTC). Roll-ups check every minute (cheap when nothing is
#: due); reconciliation hourly; retention daily. A worker also runs each once when it starts,
#: so a schedule missed while no worker ran is caught up at once. Webhook alerts check each
#: minute (budget thresholds, low balances, anomalies; :mod:`.alerts`).
SCHEDULES: dict[str, dict[str, str]] = {
    "rollups": {"minute": "*"},
    "reconcile": {"minute": "17"},
    "retention": {"minute": "37", "hour": "3"},
    "webhooks": {"minute": "*"},
}

#: Set by the worker process: runs a job id, or a scheduled task by name.
JobRunner = Callable[[str], None]
_runner: dict[str, JobRunner] = {}


def set_runners(*, job: JobRunner, scheduled: JobRunner) -> None:
    _runner["job"], _runner["scheduled"] = job, scheduled


def _run_job(job_id: str) -> None:
    _runner["job"](job_id)


def _scheduled(name: str) -> Callable[[], None]:
    def run() -> None:
        _runner["scheduled"](name)

    run.__name__ = f"scheduled_{name}"
    return run


def make_huey(settings: Settings) -> Huey:
    """The Huey instance for these settings' backend (nothing is connected yet)."""
    common: dict[str, Any] = {"name": settings.worker_queue, "results": False, "utc": True}
    backend = settings.queue_backend
    if backend == "redis":
        if not settings.redis_url:
            from ..config import ConfigError

            raise ConfigError("DEEPSPACE_WORKER_BACKEND=redis needs DEEPSPACE_REDIS_URL",
                              param="DEEPSPACE_REDIS_URL")
        return RedisHuey(url=settings.redis_url, **common)
    if backend == "postgresql":
        if settings.is_sqlite:
            from ..config import ConfigError

            raise ConfigError("DEEPSPACE_WORKER_BACKEND=postgresql needs a PostgreSQL DEEPSPACE_DATABASE_URL",
                              param="DEEPSPACE_WORKER_BACKEND")
        return PostgresHuey(dsn=conninfo_of(settings.database_url), **common)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(filename=str(settings.data_dir / "worker-queue.sqlite"), **common)


class JobQueue:
    """Enqueue job ids (and, in a worker, consume them) on the configured backend."""

    def __init__(self, settings: Settings, *, huey: Huey | None = None) -> None:
        self.settings = settings
        self.huey = huey or make_huey(settings)
        self._run_job = self.huey.task(name=RUN_JOB)(_run_job)
        for name, spec in SCHEDULES.items():
            self.huey.periodic_task(crontab(**spec), name=f"deepspace.{name}")(_scheduled(name))

    @property
    def backend(self) -> str:
        return self.settings.queue_backend

    def enqueue(self, job_id: str, *, delay_s: float = 0) -> None:
        """Put a job id on the queue (after ``delay_s`` seconds). Blocking: a short write."""
        if delay_s > 0:
            self._run_job.schedule(args=(job_id,), delay=delay_s)
        else:
            self.huey.enqueue(self._run_job.s(job_id))

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def close(self) -> None:
        storage = self.huey.storage
        close = getattr(storage, "close", None)
        if close is not None:
            close()
