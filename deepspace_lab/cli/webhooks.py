"""``deepspace-lab webhooks create|list|update|delete|rotate-secret|deliveries|test|redeliver``:
webhook subscriptions of an org (``--org``) or global (no ``--org``), their delivery log, a test
``ping`` and a redelivery (both queued for the Worker). The signing secret is printed once, on
create and on rotation; every change is audited (actor ``cli:<os user>``, before and after, no
secret)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..config import Settings
from ..tracing import new_trace_id
from ..webhooks import (
    WEBHOOK_EVENTS,
    create_webhook,
    delete_webhook,
    list_webhooks,
    rotate_secret,
    update_webhook,
)
from ..webhooks.deliveries import list_deliveries
from ..webhooks.service import events_of
from ._common import actor, add_paging, emit, in_session, page_text
from .identity import _audit


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.url is not None:
        changes["url"] = args.url
    if args.events is not None:
        changes["events"] = events_of([args.events])
    if args.enabled is not None:
        changes["enabled"] = args.enabled
    return changes


async def _send(session: AsyncSession, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """``test`` (a ``ping``) or ``redeliver`` (an earlier delivery's event): queue the delivery job."""
    from ..jobs import JobQueue
    from ..jobs.webhooks import queue_redelivery, queue_test

    engine = session.bind
    assert isinstance(engine, AsyncEngine)
    queue, trace_id = JobQueue(settings), new_trace_id()  # the command and its delivery: one trace
    try:
        if args.webhooks_cmd == "test":
            queued = await queue_test(session, engine, queue, webhook_id=args.webhook_id, org_scope=None,
                                      actor=actor(), trace_id=trace_id)
        else:
            queued = await queue_redelivery(session, engine, queue, webhook_id=args.webhook_id,
                                            delivery_id=args.delivery_id, org_scope=None, actor=actor(),
                                            trace_id=trace_id)
    finally:
        queue.close()
    _audit(session, f"cli.webhooks.{args.webhooks_cmd}", trace_id=trace_id, org_id=queued.org_id,
           detail={"webhook_id": args.webhook_id, "event_id": queued.event_id, "job_id": queued.job.id})
    await session.commit()
    return queued.to_dict()


def run_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        cmd = args.webhooks_cmd
        if cmd in ("test", "redeliver"):
            return await _send(session, settings, args)
        if cmd == "deliveries":
            page, nxt = await list_deliveries(session, webhook_id=args.webhook_id, org_scope=None,
                                              cursor=args.cursor, limit=args.limit)
            return {"data": [d.to_dict() for d in page], "next_cursor": nxt}
        if cmd == "list":
            hooks, nxt = await list_webhooks(session, org_scope=None, org_id=args.org, cursor=args.cursor,
                                             limit=args.limit)
            return {"data": [h.to_dict() for h in hooks], "next_cursor": nxt}
        if cmd == "create":
            view, secret = await create_webhook(session, secret_key=settings.require_secret_key(), org_id=args.org,
                                                url=args.url, events=events_of([args.events]),
                                                enabled=args.enabled is not False, actor=actor())
            _audit(session, "cli.webhooks.create", org_id=view.org_id, detail={"before": None,
                                                                                 "after": view.to_dict()})
            await session.commit()
            return dict(view.to_dict(), secret=secret)
        if cmd == "rotate-secret":
            view, secret = await rotate_secret(session, secret_key=settings.require_secret_key(),
                                               webhook_id=args.webhook_id, org_scope=None)
            _audit(session, "cli.webhooks.rotate", org_id=view.org_id, detail={
                "webhook_id": view.id, "after": {"secret_rotated_at": view.to_dict()["secret_rotated_at"]}})
            await session.commit()
            return dict(view.to_dict(), secret=secret)
        if cmd == "delete":
            gone = await delete_webhook(session, webhook_id=args.webhook_id, org_scope=None)
            _audit(session, "cli.webhooks.delete", org_id=gone.org_id, detail={"before": gone.to_dict(),
                                                                                 "after": None})
            await session.commit()
            return {"deleted": gone.to_dict()}
        after, before = await update_webhook(session, webhook_id=args.webhook_id, org_scope=None,
                                             changes=_changes(args))
        _audit(session, "cli.webhooks.update", org_id=after.org_id, detail={"before": before.to_dict(),
                                                                              "after": after.to_dict()})
        await session.commit()
        return after.to_dict()

    result = in_session(settings, work)
    emit(args, result, _text(args.webhooks_cmd, result))
    return 0


def _line(h: dict[str, Any]) -> str:
    return (f"{h['id']}  {h['org_id'] or 'global':28} {'on ' if h['enabled'] else 'off'} {h['url']}  "
            f"[{', '.join(h['events'])}]")


def _delivery_line(d: dict[str, Any]) -> str:
    return (f"{d['created_at']}  {d['id']}  {d['event']:18} attempt {d['attempt']} {d['status']:9} "
            f"{d['response_code'] or '-'} {d['latency_ms'] if d['latency_ms'] is not None else '-'} ms"
            f"{'  ' + d['error'] if d['error'] else ''}")


def _text(cmd: str, result: dict[str, Any]) -> str:
    if cmd == "deliveries":
        return page_text([_delivery_line(d) for d in result["data"]], result, empty="(no deliveries)")
    if cmd in ("test", "redeliver"):
        return f"Queued {result['event']} {result['event_id']} as job {result['job_id']} (the Worker delivers it)"
    if cmd == "list":
        return page_text([_line(h) for h in result["data"]], result, empty="(no webhooks)")
    if cmd == "delete":
        return f"Deleted {_line(result['deleted'])}"
    if "secret" in result:
        return f"{_line(result)}\n  signing secret (shown once): {result['secret']}"
    return _line(result)


def register(sub: Any) -> None:
    """Add ``webhooks`` to the ``deepspace-lab`` subparsers."""
    p = sub.add_parser("webhooks", help="webhooks: budget thresholds, low balances, anomalies; deliveries, test")
    wsub = p.add_subparsers(dest="webhooks_cmd", required=True, metavar="ACTION")
    events = f"comma-separated, of {', '.join(WEBHOOK_EVENTS)}"
    q = wsub.add_parser("create", help="add a webhook (its signing secret is shown once)")
    q.add_argument("--org", help="the org (default: a global webhook)")
    q.add_argument("--url", required=True, help="an http(s) URL")
    q.add_argument("--events", required=True, help=events)
    q.add_argument("--disabled", dest="enabled", action="store_const", const=False, help="create it disabled")
    q = wsub.add_parser("list", help="webhooks, newest first")
    q.add_argument("--org", help="only this org's")
    add_paging(q)
    q = wsub.add_parser("update", help="change a webhook's URL, events or enabled")
    q.add_argument("webhook_id")
    q.add_argument("--url")
    q.add_argument("--events", help=events)
    q.add_argument("--enable", dest="enabled", action="store_const", const=True)
    q.add_argument("--disable", dest="enabled", action="store_const", const=False)
    for name, help_text in (("delete", "delete a webhook"),
                            ("rotate-secret", "a new signing secret (shown once; the old one stops at once)")):
        q = wsub.add_parser(name, help=help_text)
        q.add_argument("webhook_id")
    q = wsub.add_parser("deliveries", help="a webhook's delivery attempts, newest first")
    q.add_argument("webhook_id")
    add_paging(q)
    q = wsub.add_parser("test", help="queue a signed ping to a webhook (the Worker delivers it)")
    q.add_argument("webhook_id")
    q = wsub.add_parser("redeliver", help="send an earlier delivery's event again")
    q.add_argument("webhook_id")
    q.add_argument("delivery_id")
    for name, q in wsub.choices.items():
        if name not in ("list", "deliveries"):  # add_paging gave them one
            q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_webhooks)
