"""Worker commands: ``worker`` (run one), ``jobs`` (start, show), ``rollups`` (build now)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..config import Settings
from ..tracing import new_trace_id
from ._common import actor, emit


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from ..db.migrate import upgrade
    from ..jobs.worker import Worker

    upgrade(settings.database_url)
    Worker(settings, threads=args.threads).run()
    return 0


def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    from ..db import make_async_engine
    from ..jobs import JobQueue, submit_job
    from ..jobs.service import get_any_job, job_events, list_any_jobs

    async def work() -> Any:
        engine = make_async_engine(settings.database_url)
        try:
            if args.jobs_cmd == "run":
                queue = JobQueue(settings)
                try:
                    job = await submit_job(engine, queue, kind=args.kind, trace_id=new_trace_id(), org_id=args.org,
                                           project_id=args.project, created_by=actor(),
                                           params=json.loads(args.params) if args.params else {})
                finally:
                    queue.close()
                return job.to_dict()
            if args.jobs_cmd == "list":
                return [{**j.to_dict(), "org_id": j.org_id, "worker": j.worker}
                        for j in await list_any_jobs(engine, org_id=args.org, state=args.state, limit=args.limit)]
            found = await get_any_job(engine, args.job_id)
            if found is None:
                from ..jobs import JobNotFoundError

                raise JobNotFoundError(f"no job {args.job_id!r}")
            job = found
            events = [{"event": e["event"], "attempt": e["attempt"], "worker": e["worker"], "message": e["message"],
                       "at": e["created_at"].isoformat()} for e in await job_events(engine, args.job_id)]
            return {**job.to_dict(), "org_id": job.org_id, "worker": job.worker, "events": events}
        finally:
            await engine.dispose()

    result = asyncio.run(work())
    if args.jobs_cmd == "list":
        emit(args, result, "\n".join(
            f"{j['id']}  {j['kind']:10} {j['state']:8} attempt {j['attempts']}/{j['max_attempts']}  "
            f"{j['progress']['percent'] if j['progress']['percent'] is not None else '-'}%  "
            f"org {j['org_id'] or '(deployment)'}  {j['created_at']}" for j in result) or "(no jobs)")
        return 0
    emit(args, result, f"job {result['id']} ({result['kind']}): {result['state']}, attempt {result['attempts']}"
         + (f", error: {result['last_error']}" if result.get("last_error") else ""))
    return 0


def _rollups(args: argparse.Namespace, settings: Settings) -> int:
    from ..db import make_async_engine
    from ..jobs.scheduled import run_scheduled

    async def work() -> Any:
        engine = make_async_engine(settings.database_url)
        try:
            return await run_scheduled(args.task, settings, engine)
        finally:
            await engine.dispose()

    result = asyncio.run(work())
    emit(args, result, json.dumps(result, indent=2, default=str))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a Worker: jobs, scheduled roll-ups, reconciliation, retention")
    p.add_argument("--threads", type=int, help="jobs at once (default DEEPSPACE_WORKER_THREADS)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("jobs", help="start a job, or show one with its log")
    jsub = p.add_subparsers(dest="jobs_cmd", required=True, metavar="ACTION")
    q = jsub.add_parser("run", help="queue a job of KIND (noop, sleep, export, statement)")
    q.add_argument("kind")
    q.add_argument("--org", help="the org it is for (none: a deployment job)")
    q.add_argument("--project")
    q.add_argument("--params", help="JSON object of the kind's params")
    q.add_argument("--json", action="store_true")
    q = jsub.add_parser("list", help="the newest jobs of every org (or --org), deployment jobs included")
    q.add_argument("--org")
    q.add_argument("--state", choices=("queued", "running", "done", "failed"))
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q = jsub.add_parser("show", help="a job with its events")
    q.add_argument("job_id")
    q.add_argument("--json", action="store_true")
    p.set_defaults(func=_jobs)

    p = sub.add_parser("scheduled", help="run a scheduled task now: rollups, reconcile, retention or webhooks")
    p.add_argument("task", choices=("rollups", "reconcile", "retention", "webhooks"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_rollups)
