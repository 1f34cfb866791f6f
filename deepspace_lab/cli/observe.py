"""Observability commands, the Admin API's observe area from the shell (same queries):
``usage list`` / ``usage export``, ``audit search`` / ``audit trace``, ``overview``."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..billing.usage_query import parse_time
from ..config import Settings
from ..db.base import utcnow
from ..errors import NotFound
from ..observe import AUDIT_FILTERS, USAGE_FILTERS, overview, search_audit, search_usage, trace_items
from ..tracing import new_trace_id
from ._common import actor, emit, in_session


def _filters(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: getattr(args, name) for name in names if name != "org_id" and getattr(args, name) is not None}


def _lines(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    return "\n".join("  ".join(str(row.get(c) if row.get(c) is not None else "-") for c in columns) for row in rows)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    usage = args.command == "usage"

    async def work(session: AsyncSession) -> Any:
        search, names = (search_usage, USAGE_FILTERS) if usage else (search_audit, AUDIT_FILTERS)
        return (await search(session, org_id=args.org_id, filters=_filters(args, names), cursor=args.cursor,
                             limit=args.limit)).to_dict()

    page = in_session(settings, work)
    columns = (("created_at", "org_id", "model", "status", "prompt_tokens", "completion_tokens", "cost_micros",
                "trace_id") if usage else
               ("created_at", "org_id", "kind", "method", "path", "status_code", "error_code", "client_ip", "trace_id"))
    more = f"\nnext page: --cursor {page['next_cursor']}" if page["next_cursor"] else ""
    emit(args, page, (_lines(page["data"], columns) or "(no rows)") + more)
    return 0


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        items = await trace_items(session, args.trace_id, org_id=args.org_id)
        if not items:
            raise NotFound(f"nothing carries trace {args.trace_id!r}", code="trace_not_found", param="trace_id")
        return {"object": "trace", "trace_id": args.trace_id, "items": items}

    result = in_session(settings, work)
    emit(args, result, "\n".join(f"{i['at']}  {i['type']:11} {i['id']}" for i in result["items"]))
    return 0


def _overview(args: argparse.Namespace, settings: Settings) -> int:
    until = parse_time(args.until, param="until") if args.until else utcnow()
    since = parse_time(args.since, param="since") if args.since else until - timedelta(days=args.days)

    async def work(session: AsyncSession) -> Any:
        return await overview(session, org_id=args.org_id, since=since, until=until, top=args.top,
                              low_balance_micros=settings.webhook_low_balance_micros if args.low_balance_micros is None
                              else args.low_balance_micros)

    view = in_session(settings, work)
    spenders = "\n".join(f"  {r['key']} {r.get('org_name') or ''}: {r['cost_micros']} micros, {r['requests']} requests"
                         for r in view["top_spenders"])
    a = view["anomalies"]
    emit(args, view, f"{view['since']} .. {view['until']}\ntop spenders:\n{spenders or '  (none)'}\n"
                     f"holds past lease: {a['holds_past_lease']['count']}, low balances: {a['low_balances']['count']}, "
                     f"error rate today {a['error_rate']['today']['error_rate']} "
                     f"(7-day baseline {a['error_rate']['baseline_7d']['error_rate']})")
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from ..db import make_async_engine, make_sessionmaker
    from ..jobs import JobQueue, submit_job

    params = {"dataset": args.dataset, "format": args.format, "orgs": args.orgs,
              **{k: getattr(args, k) for k in ("since", "until", "project_id") if getattr(args, k)}}

    async def work() -> Any:
        engine = make_async_engine(settings.database_url)
        queue = JobQueue(settings)
        trace_id = new_trace_id()
        try:
            job = await submit_job(engine, queue, kind="export", trace_id=trace_id, org_id=args.into_org,
                                   created_by=actor(), params=params)
            async with make_sessionmaker(engine)() as session:
                session.add(AuditLog(trace_id=trace_id, kind="cli.export.create", actor=actor(), org_id=args.into_org,
                                     detail={"job_id": job.id, "before": None, "after": {"export": params}}))
                await session.commit()
            return job.to_dict()
        finally:
            queue.close()
            await engine.dispose()

    job = asyncio.run(work())
    emit(args, job, f"export job {job['id']} queued ({json.dumps(params)}); see `deepspace-lab jobs show {job['id']}`")
    return 0


def _window(q: argparse.ArgumentParser) -> None:
    q.add_argument("--since", help="inclusive, ISO-8601 (UTC when no offset)")
    q.add_argument("--until", help="exclusive, ISO-8601")
    q.add_argument("--json", action="store_true")


def _paging(q: argparse.ArgumentParser) -> None:
    q.add_argument("--limit", default="50", help="rows a page, 1-200")
    q.add_argument("--cursor", help="the `next_cursor` of the page before")


def register(sub: Any) -> None:
    p = sub.add_parser("usage", help="usage records across orgs (list) and exports of any org's rows")
    usub = p.add_subparsers(dest="usage_cmd", required=True)
    q = usub.add_parser("list", help="usage records, newest first, filtered, keyset paged")
    q.add_argument("--org", dest="org_id", help="one org (default: every org)")
    for name in ("project_id", "user_id", "api_key_id", "model", "status", "measured"):
        q.add_argument("--" + name.removesuffix("_id").replace("api_key", "key"), dest=name)
    _paging(q)
    _window(q)
    q.set_defaults(func=_list)
    q = usub.add_parser("export", help="queue an export of usage, transactions or audit rows of one org or all")
    q.add_argument("--dataset", required=True, choices=("usage", "transactions", "audit"))
    q.add_argument("--orgs", required=True, help="an org id, or * for every org")
    q.add_argument("--into-org", required=True, help="the org whose files receive the export (the admin's own)")
    q.add_argument("--format", default="csv", choices=("csv", "json", "md"))
    q.add_argument("--project", dest="project_id")
    _window(q)
    q.set_defaults(func=_export)

    p = sub.add_parser("audit", help="the request log: search it, or follow one trace id")
    asub = p.add_subparsers(dest="audit_cmd", required=True)
    q = asub.add_parser("search", help="audit rows, newest first, filtered, keyset paged")
    q.add_argument("--org", dest="org_id", help="one org (default: every org)")
    for name in ("user_id", "api_key_id", "model", "status_code", "error_code", "kind", "path", "client_ip"):
        q.add_argument("--" + name.removesuffix("_id").replace("api_key", "key").replace("_", "-"), dest=name)
    _paging(q)
    _window(q)
    q.set_defaults(func=_list)
    q = asub.add_parser("trace", help="everything that carried one trace id, in time order")
    q.add_argument("trace_id")
    q.add_argument("--org", dest="org_id", help="only this org's items")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_trace)

    p = sub.add_parser("overview", help="trends by day, model and org; top spenders; anomaly numbers")
    p.add_argument("--org", dest="org_id", help="one org (default: every org)")
    p.add_argument("--days", type=int, default=30, help="the window ending at --until (default 30)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--low-balance-micros", type=int,
                   help="a wallet below it is low (default: DEEPSPACE_WEBHOOK_LOW_BALANCE_MICROS)")
    _window(p)
    p.set_defaults(func=_overview)
