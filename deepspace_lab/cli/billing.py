"""Billing commands: ``wallet credit|debit|show|overdraft|list``, ``prices set|list``,
``budget set|list|delete``, ``billing reconcile``.

Money on the command line is integer micro-credits (``--micros``; 1 credit = 1,000,000).
Every change is audited (actor ``cli:<os user>``, with the wallet before and after) under
the same trace id as the ledger entry it made. A failed command writes nothing, audit
included; ``--ref`` makes a retried credit or debit safe (the retry replays the first).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..auth.models import Org
from ..billing import (
    InvalidAmountError,
    OrgNotFoundError,
    WalletView,
    budget_scope_id,
    credit_wallet,
    debit_wallet,
    delete_budget,
    get_wallet,
    list_budgets,
    list_entries,
    list_prices,
    list_wallets,
    price_for,
    reconcile,
    set_budget,
    set_overdraft_limit,
    set_price,
)
from ..billing.errors import NoPriceError
from ..config import Settings
from ..db.base import utcnow
from ..db.paging import check_limit
from ..errors import InvalidRequest
from ..tracing import new_trace_id
from ._common import actor, add_paging, emit, in_session, page_text


def _micros(text: str, *, flag: str = "--micros") -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise InvalidAmountError(f"{flag} must be a whole number of micro-credits, got {text!r}",
                                 param=flag.lstrip("-")) from None


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--effective-at must be an ISO 8601 time such as 2026-01-01T00:00:00Z, got {text!r}",
                             code="invalid_time", param="effective_at") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _credits(micros: int) -> str:
    return f"{micros / 1_000_000:,.6f}"


async def _wallet(session: AsyncSession, org_id: str) -> WalletView:
    """The org's wallet, or ``org_not_found``; ends the read so ledger calls can follow."""
    try:
        if (await session.execute(select(Org.id).where(Org.id == org_id))).first() is None:
            raise OrgNotFoundError(f"no org {org_id!r}", param="org")
        return await get_wallet(session, org_id)
    finally:
        await session.rollback()


async def _audit(session: AsyncSession, *, kind: str, trace_id: str, org_id: str | None,
                 detail: dict[str, Any]) -> None:
    session.add(AuditLog(trace_id=trace_id, kind=kind, actor=actor(), org_id=org_id, detail=detail))
    await session.commit()


def _run_wallet(args: argparse.Namespace, settings: Settings) -> int:
    if args.wallet_cmd == "list":
        return _list_wallets(args, settings)

    async def work(session: AsyncSession) -> dict[str, Any]:
        before = await _wallet(session, args.org)
        if args.wallet_cmd == "show":
            page = await list_entries(session, org_id=args.org, limit=args.entries) if args.entries else None
            return {"wallet": before.to_dict(), "entries": [e.to_dict() for e in page.entries] if page else []}
        trace_id = new_trace_id()
        amount = _micros(args.micros)
        if args.wallet_cmd == "overdraft":
            old, new = await set_overdraft_limit(session, org_id=args.org, limit_micros=amount)
            await _audit(session, kind="cli.wallet.overdraft", trace_id=trace_id, org_id=args.org, detail={
                "reason": args.reason, "before": old.to_dict(), "after": new.to_dict()})
            return {"wallet": new.to_dict(), "before": old.to_dict()}
        op = credit_wallet if args.wallet_cmd == "credit" else debit_wallet
        entry = await op(session, org_id=args.org, amount_micros=amount, reason=args.reason, actor=actor(),
                         ref=args.ref, trace_id=trace_id)
        after = await _wallet(session, args.org)
        await _audit(session, kind=f"cli.wallet.{args.wallet_cmd}", trace_id=entry.trace_id or trace_id,
                     org_id=args.org, detail={
                         "ref": entry.ref, "amount_micros": entry.amount_micros, "reason": entry.reason,
                         "entry_id": entry.id, "replayed": entry.replayed, "before": before.to_dict(),
                         "after": after.to_dict()})
        return {"entry": entry.to_dict(), "wallet": after.to_dict()}

    result = in_session(settings, work)
    wallet = result["wallet"]
    lines = [f"org {wallet['org_id']}: balance {_credits(wallet['balance_micros'])} credits "
             f"({wallet['balance_micros']} micros), frozen {wallet['frozen_micros']}, "
             f"overdraft limit {wallet['overdraft_limit_micros']}"]
    if "entry" in result:
        entry = result["entry"]
        verb = "Replayed (already done)" if entry["replayed"] else "Recorded"
        lines.insert(0, f"{verb} {entry['type']} of {entry['amount_micros']} micros, ref {entry['ref']}.")
    for entry in result.get("entries", []):
        lines.append(f"  {entry['created_at'][:19]}  {entry['type']:8} {entry['amount_micros']:>14}  {entry['ref']}")
    emit(args, result, "\n".join(lines))
    return 0


def _list_wallets(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        return (await list_wallets(session, limit=check_limit(args.limit), cursor=args.cursor)).to_dict()

    result = in_session(settings, work)
    emit(args, result, page_text([f"{w['org_id']}  {w['org_name'][:30]:30}  balance {w['balance_micros']:>16}  "
                                  f"frozen {w['frozen_micros']:>12}  overdraft {w['overdraft_limit_micros']}"
                                  for w in result["data"]], result, empty="(no orgs)"))
    return 0


def _run_prices(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        if args.prices_cmd == "list":
            versions = await list_prices(session, model_name=args.model)
            current: set[int] = set()
            for name in {v.model_name for v in versions}:
                try:
                    current.add((await price_for(session, model_name=name)).id)
                except NoPriceError:  # only future versions
                    pass
            return [dict(v.to_dict(), current=v.id in current) for v in versions]
        at = _time(args.effective_at) if args.effective_at else utcnow()
        before = None
        try:
            before = (await price_for(session, model_name=args.model, at=at)).to_dict()
        except NoPriceError:
            pass
        version, created = await set_price(
            session, model_name=args.model, input_micros_per_mtok=_micros(args.input_micros_per_mtok,
                                                                          flag="--input-micros-per-mtok"),
            output_micros_per_mtok=_micros(args.output_micros_per_mtok, flag="--output-micros-per-mtok"),
            effective_at=at, free=args.free, actor=actor())
        await session.commit()
        if created:
            await _audit(session, kind="cli.prices.set", trace_id=new_trace_id(), org_id=None,
                         detail={"model": args.model, "before": before, "after": version.to_dict()})
        return {"price": version.to_dict(), "created": created, "before": before}

    result = in_session(settings, work)
    if args.prices_cmd == "list":
        text = "\n".join(
            f"{'*' if p['current'] else ' '} {p['model']:32} from {p['effective_at'][:19]}  "
            + ("free" if p["free"] else f"in {p['input_micros_per_mtok']} / out {p['output_micros_per_mtok']} "
               "micros per Mtok") for p in result) or "(no prices)"
    else:
        price = result["price"]
        what = "free" if price["free"] else (f"{price['input_micros_per_mtok']} in / "
                                              f"{price['output_micros_per_mtok']} out micros per million tokens")
        text = (f"{'Set' if result['created'] else 'Already set:'} {price['model']} {what}, "
                f"from {price['effective_at']}.")
    emit(args, result, text)
    return 0


async def _budget_subject(session: AsyncSession, args: argparse.Namespace) -> str:
    """The budget's scope id, checked to belong to ``--org``."""
    try:
        return await budget_scope_id(session, org_id=args.org, scope=args.scope, scope_id=args.id)
    finally:
        await session.rollback()


def _run_budget(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        if args.budget_cmd == "list":
            return [b.to_dict() for b in await list_budgets(session, org_id=args.org)]
        subject = await _budget_subject(session, args)
        trace_id = new_trace_id()
        if args.budget_cmd == "delete":
            gone = await delete_budget(session, org_id=args.org, scope=args.scope, scope_id=subject,
                                       period=args.period)
            await _audit(session, kind="cli.budget.delete", trace_id=trace_id, org_id=args.org,
                         detail={"before": gone.to_dict(), "after": None})
            return {"deleted": gone.to_dict()}
        after, before = await set_budget(session, org_id=args.org, scope=args.scope, scope_id=subject,
                                         period=args.period, limit_micros=_micros(args.micros), actor=actor())
        await _audit(session, kind="cli.budget.set", trace_id=trace_id, org_id=args.org,
                     detail={"before": before.to_dict() if before else None, "after": after.to_dict()})
        return {"budget": after.to_dict(), "before": before.to_dict() if before else None}

    result = in_session(settings, work)
    if args.budget_cmd == "list":
        text = "\n".join(f"{b['org_id']}  {b['scope']:7} {b['scope_id']:28} {b['period']:5} "
                         f"limit {b['limit_micros']:>14}  spent {b['spent_micros']:>12}  "
                         f"reserved {b['reserved_micros']:>10}" for b in result)
        text = text or "(no budgets)"
    elif "deleted" in result:
        b = result["deleted"]
        text = f"Deleted the {b['period']} budget of {b['scope']} {b['scope_id']}."
    else:
        b = result["budget"]
        text = (f"{'Changed' if result['before'] else 'Set'} the {b['period']} budget of {b['scope']} {b['scope_id']}"
                f" to {b['limit_micros']} micros ({_credits(b['limit_micros'])} credits).")
    emit(args, result, text)
    return 0


def _run_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        report = await reconcile(session, actor=actor(), expire=not args.no_expire)
        payload = report.to_dict()
        await _audit(session, kind="cli.billing.reconcile", trace_id=new_trace_id(), org_id=None, detail={
            "ok": report.ok, "expired_holds": len(report.expired), "problems": payload["problems"][:50]})
        return payload

    report = in_session(settings, work)
    lines = [f"Checked {report['wallets_checked']} wallets and {report['holds_checked']} holds; "
             f"released {len(report['expired_holds'])} expired holds."]
    lines += [f"PROBLEM {p['check']} on {p['subject']}: {p['message']}" for p in report["problems"]]
    lines.append("Every invariant holds." if report["ok"] else f"{len(report['problems'])} problem(s) found.")
    emit(args, report, "\n".join(lines))
    return 0 if report["ok"] else 1


def register(sub: Any) -> None:
    """Add the billing commands to the ``deepspace-lab`` subparsers."""

    p = sub.add_parser("wallet", help="an org's wallet: credit, debit, show, overdraft limit")
    wsub = p.add_subparsers(dest="wallet_cmd", required=True, metavar="ACTION")
    for name, help_text in (("credit", "add money (top-up, grant, redeemed code)"),
                            ("debit", "take money off (an adjustment; never below minus the overdraft limit)")):
        q = wsub.add_parser(name, help=help_text)
        q.add_argument("--org", required=True, help="org id")
        q.add_argument("--micros", required=True, help="amount in micro-credits (1 credit = 1000000)")
        q.add_argument("--reason", required=True, help="why (kept on the ledger entry and in the audit log)")
        q.add_argument("--ref", help="idempotency ref: a retry with the same ref changes nothing")
        q.add_argument("--json", action="store_true", help="print JSON")
    add_paging(wsub.add_parser("list", help="every org's wallet (balance, frozen, overdraft limit), newest org first"))
    q = wsub.add_parser("show", help="balance, frozen and overdraft limit (and the newest entries)")
    q.add_argument("--org", required=True, help="org id")
    q.add_argument("--entries", type=int, default=0, metavar="N", help="also list the newest N ledger entries")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = wsub.add_parser("overdraft", help="set how far below zero the balance may go")
    q.add_argument("--org", required=True, help="org id")
    q.add_argument("--micros", required=True, help="the limit in micro-credits (0: no overdraft)")
    q.add_argument("--reason", required=True, help="why (kept in the audit log)")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_wallet)

    p = sub.add_parser("prices", help="model prices (versioned: history kept, future prices allowed)")
    psub = p.add_subparsers(dest="prices_cmd", required=True, metavar="ACTION")
    q = psub.add_parser("set", help="add a price version for a model")
    q.add_argument("model", help="model name as callers send it")
    q.add_argument("--input-micros-per-mtok", default="0", help="micro-credits per million prompt tokens")
    q.add_argument("--output-micros-per-mtok", default="0", help="micro-credits per million completion tokens")
    q.add_argument("--effective-at", help="ISO 8601 time it starts (default: now; no zone means UTC)")
    q.add_argument("--free", action="store_true", help="the model costs nothing (models with no price are refused)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = psub.add_parser("list", help="every price version, newest first (* marks the one in force)")
    q.add_argument("model", nargs="?", help="only this model")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_prices)

    p = sub.add_parser("budget", help="spending caps per org, project or API key, per UTC day or month")
    bsub = p.add_subparsers(dest="budget_cmd", required=True, metavar="ACTION")
    for name, help_text in (("set", "create or change a cap (requests whose worst case would cross it get 429)"),
                            ("delete", "remove a cap")):
        q = bsub.add_parser(name, help=help_text)
        q.add_argument("--org", required=True, help="org id")
        q.add_argument("--scope", required=True, choices=("org", "project", "key"), help="what the cap applies to")
        q.add_argument("--id", help="the project or API key id (not for --scope org)")
        q.add_argument("--period", required=True, choices=("day", "month"), help="UTC day or calendar month")
        if name == "set":
            q.add_argument("--micros", required=True, help="the cap in micro-credits per period")
        q.add_argument("--json", action="store_true", help="print JSON")
    q = bsub.add_parser("list", help="caps with this period's spend and reservations")
    q.add_argument("--org", help="only this org")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_budget)

    p = sub.add_parser("billing", help="billing maintenance")
    bsub = p.add_subparsers(dest="billing_cmd", required=True, metavar="ACTION")
    q = bsub.add_parser("reconcile", help="release expired holds and check every ledger invariant "
                                          "(exit 1 when one is broken)")
    q.add_argument("--no-expire", action="store_true", help="only check; release nothing")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_reconcile)
