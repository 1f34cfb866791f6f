"""One ``deepspace-lab worker`` process: a Huey consumer whose tasks run our jobs.

Huey's worker threads take job ids off the queue; each hands its job to this process's one
asyncio loop (one thread, one database engine, one storage client), where the job is
claimed, run with its lease renewed and its progress recorded, and finished, retried or
failed (:mod:`.service`). A reaper thread queues again the jobs whose worker stopped
renewing their lease (a worker killed mid-job, on any machine) and re-sends queued jobs
whose message may have been lost. Huey's scheduler fires the periodic tasks
(:data:`.queue.SCHEDULES`); each also runs once at start, to catch up on what was missed
while no worker ran.

Many workers, on many machines, may share one backend (Redis or PostgreSQL): the claim in
the database makes sure each job runs once at a time; the scheduled work is idempotent and,
on PostgreSQL, skipped by a worker while another runs it (:mod:`.scheduled`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, TypeVar

from huey.consumer import Consumer
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..db import make_async_engine
from ..db.base import utcnow
from ..errors import DeepSpaceError
from ..storage import Storage, open_storage
from ..tracing import current_trace_id
from . import service
from .kinds import job_kinds
from .queue import SCHEDULES, JobQueue, set_runners
from .scheduled import run_scheduled

log = logging.getLogger("deepspace_lab.worker")
T = TypeVar("T")
#: how often (at most) a running job's lease and progress are written
HEARTBEAT_MAX_S = 1.0
#: queued jobs whose message is older than this many leases are sent again
STALE_QUEUED_LEASES = 10


class JobContext:
    """What a running job sees: its row, the settings, the engine and storage, and
    :meth:`progress` (recorded with the next lease renewal, at most once a second)."""

    def __init__(self, worker: Worker, job: service.JobView) -> None:
        self.worker = worker
        self.job = job
        self.settings = worker.settings
        self.engine = worker.engine
        self.storage = worker.storage
        self._progress: tuple[int, int | None] = (0, None)
        self.dirty = False

    def progress(self, done: int, total: int | None = None) -> None:
        self._progress = (done, total)
        self.dirty = True

    def take_progress(self) -> tuple[int, int | None] | None:
        if not self.dirty:
            return None
        self.dirty = False
        return self._progress


def _error_text(exc: Exception, trace_id: str) -> str:
    """What a job's ``last_error`` tells its org: our errors' messages; for database and I/O
    errors only their kind (their text may carry statements or hosts), the rest in the log."""
    if isinstance(exc, DeepSpaceError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, SQLAlchemyError | OSError):
        return f"{type(exc).__name__} (details in the worker's log, trace {trace_id})"
    return f"{type(exc).__name__}: {exc}"


def _backoff_s(attempt: int) -> float:
    return float(min(2 ** (attempt - 1), 60))


class _QuietConsumer(Consumer):  # type: ignore[misc]
    """A consumer that installs no signal handlers (run off the main thread: tests, lab)."""

    def _set_signal_handlers(self) -> None:
        pass


class Worker:
    def __init__(self, settings: Settings, *, threads: int | None = None) -> None:
        self.settings = settings
        self.threads = threads or settings.worker_threads
        self.name = service.worker_name()
        self.queue = JobQueue(settings)
        self.storage: Storage = open_storage(settings.storage_url)
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="deepspace-worker-loop", daemon=True)
        self._loop_thread.start()
        self.engine = make_async_engine(settings.database_url)
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self.consumer: Consumer | None = None
        set_runners(job=self.execute, scheduled=self.scheduled)

    # -- bridging Huey's threads to our loop ------------------------------------------------
    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout_s)

    def execute(self, job_id: str) -> None:
        """Huey task body: run one job to its next state."""
        self.call(self._execute(job_id))

    def scheduled(self, name: str) -> None:
        """Huey periodic task body: one scheduled task (skipped when another worker runs it)."""
        self.call(run_scheduled(name, self.settings, self.engine, self.queue))

    # -- one job -----------------------------------------------------------------------------
    async def _execute(self, job_id: str) -> None:
        settings = self.settings
        job = await service.claim_job(self.engine, job_id, worker=self.name, lease_s=settings.job_lease_s)
        if job is None:
            return  # someone else has it, or it is finished: a duplicate message
        token = current_trace_id.set(job.trace_id)
        try:
            kind = job_kinds().get(job.kind)
            if kind is None:
                await service.fail_attempt(self.engine, job_id, worker=self.name,
                                           error=f"unknown job kind {job.kind!r}", final=True)
                return
            ctx = JobContext(self, job)
            work = asyncio.ensure_future(kind.run(ctx))
            heartbeat = asyncio.ensure_future(self._heartbeat(ctx, work))
            try:
                result = await work
            except asyncio.CancelledError:
                log.warning("job %s lost its lease; another worker runs it", job_id)
                return
            except Exception as exc:
                log.warning("job %s (%s) attempt %s failed: %s", job_id, job.kind, job.attempts,
                            type(exc).__name__, exc_info=True)
                error = _error_text(exc, job.trace_id)
                state = await service.fail_attempt(self.engine, job_id, worker=self.name, error=error)
                if state == "queued":
                    await asyncio.to_thread(self.queue.enqueue, job_id, delay_s=_backoff_s(job.attempts))
                return
            finally:
                heartbeat.cancel()
            final = ctx.take_progress()
            if final is not None:
                await service.renew_lease(self.engine, job_id, worker=self.name, lease_s=settings.job_lease_s,
                                          progress=final)
            await service.finish_job(self.engine, job_id, worker=self.name, result=result)
        finally:
            current_trace_id.reset(token)

    async def _heartbeat(self, ctx: JobContext, work: asyncio.Future[Any]) -> None:
        interval = min(self.settings.job_lease_s / 3, HEARTBEAT_MAX_S)
        while not work.done():
            await asyncio.sleep(interval)
            try:
                ours = await service.renew_lease(self.engine, ctx.job.id, worker=self.name,
                                                 lease_s=self.settings.job_lease_s, progress=ctx.take_progress())
            except Exception:  # a database hiccup: try again at the next beat
                log.warning("could not renew the lease of job %s", ctx.job.id, exc_info=True)
                continue
            if not ours:
                work.cancel()
                return

    # -- the reaper --------------------------------------------------------------------------
    def reap_once(self) -> list[str]:
        """Queue again the jobs of lost workers, and re-send stale queued ones."""
        async def reap() -> list[str]:
            lost = await service.requeue_lapsed(self.engine)
            older = utcnow() - timedelta(seconds=STALE_QUEUED_LEASES * self.settings.job_lease_s)
            return lost + await service.stale_queued(self.engine, older_than=older)

        ids = self.call(reap())
        for job_id in ids:
            self.queue.enqueue(job_id)
        if ids:
            log.warning("queued again %d job(s) of lost workers or lost messages", len(ids))
        return ids

    def _reap_forever(self) -> None:
        interval = max(min(self.settings.job_lease_s / 2, 30.0), 0.2)
        while not self._stop.wait(interval):
            try:
                self.reap_once()
            except Exception:
                log.warning("reaper pass failed", exc_info=True)

    # -- running -----------------------------------------------------------------------------
    def _consumer(self, cls: type[Consumer]) -> Consumer:
        self.consumer = cls(self.queue.huey, workers=self.threads, worker_type="thread", periodic=True,
                            initial_delay=0.05, backoff=1.5, max_delay=0.5, scheduler_interval=1,
                            check_worker_health=True)
        job_kinds()  # import every kind now, not on the loop while a job's lease runs
        self.reap_once()
        for name in SCHEDULES:  # a schedule missed while no worker ran is caught up now
            threading.Thread(target=self._safe_scheduled, args=(name,), daemon=True).start()
        self._reaper = threading.Thread(target=self._reap_forever, name="deepspace-reaper", daemon=True)
        self._reaper.start()
        log.warning("worker %s ready: %s queue %r, %d thread(s)", self.name, self.queue.backend,
                    self.settings.worker_queue, self.threads)
        return self.consumer

    def _safe_scheduled(self, name: str) -> None:
        try:
            self.scheduled(name)
        except Exception:
            log.exception("scheduled task %s failed", name)

    def run(self) -> None:
        """Run in the foreground until SIGTERM / SIGINT (the CLI): Huey's consumer loop,
        which finishes the jobs in hand on SIGINT and interrupts them on SIGTERM (a job cut
        short runs again once its lease lapses)."""
        try:
            self._consumer(Consumer).run()
        finally:
            self.close()

    def start(self) -> None:
        """Start in background threads, with no signal handlers (tests; stop with :meth:`stop`)."""
        self._consumer(_QuietConsumer).start()

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
        self.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self.call(self.engine.dispose(), timeout_s=10)
        except Exception:
            log.warning("could not close the database engine", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(5)
        self.queue.close()
