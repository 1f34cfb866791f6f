"""Money commands beside ``wallet`` and ``prices``: ``models add|update|enable|disable|list`` (the
catalog), ``codes create|list|revoke|redeem`` (credit codes) and ``transactions list`` — the
same services as the Admin API, scriptable with ``--json``, every change audited as
``cli:<os user>`` with before and after.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..billing import (
    create_batch,
    get_batch,
    list_batches,
    list_codes,
    list_entries,
    parse_time,
    redeem_code,
    revoke_batch,
    revoke_code,
)
from ..catalog import ModelInfo, list_models, update_model, upsert_model
from ..config import Settings
from ..db.paging import check_limit
from ..errors import InvalidRequest, NotFound
from ..tracing import new_trace_id
from ._common import actor, add_paging, emit, in_session, page_text
from .billing import _audit, _credits, _micros, _wallet


def _model_json(m: ModelInfo) -> dict[str, Any]:
    return dict(m.to_openai(), upstream_name=m.upstream_name, enabled=m.enabled, modalities=list(m.modalities))


async def _model(session: AsyncSession, name: str) -> ModelInfo:
    found = next((m for m in await list_models(session, enabled_only=False) if m.name == name), None)
    if found is None:
        raise NotFound(f"no model {name!r} in the catalog", code="model_not_found", param="name")
    return found


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    if args.models_cmd in ("enable", "disable"):
        return {"enabled": args.models_cmd == "enable"}
    changes = {"upstream_name": args.upstream_name, "context_window": args.context_window,
               "description": args.description,
               "modalities": args.modalities.split(",") if args.modalities is not None else None}
    return {k: v for k, v in changes.items() if v is not None}


def _run_models(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        if args.models_cmd == "list":
            return [_model_json(m) for m in await list_models(session, enabled_only=False)]
        if args.models_cmd == "add":  # add, or update an existing entry (a retried command)
            before = next((m for m in await list_models(session, enabled_only=False) if m.name == args.name), None)
            info, created = await upsert_model(
                session, name=args.name, upstream_name=args.upstream_name, context_window=args.context_window,
                description=args.description, modalities=(args.modalities or "text").split(","),
                enabled=not args.disabled)
            out = {"model": info.to_openai(), "upstream_name": info.upstream_name, "created": created}
        else:
            model = await _model(session, args.name)
            before, info = await update_model(session, model_id=model.id, **_changes(args))
            out = {"model": _model_json(info)}
        await _audit(session, kind=f"cli.models.{args.models_cmd}", trace_id=new_trace_id(), org_id=None, detail={
            "before": _model_json(before) if before else None, "after": _model_json(info)})
        return out

    result = in_session(settings, work)
    if args.models_cmd == "list":
        emit(args, result, "\n".join(f"{m['id']:40} -> {m['upstream_name']}" + ("" if m["enabled"] else "  (disabled)")
                                     for m in result) or "(no models)")
    elif args.models_cmd == "add":
        emit(args, result, f"{'Added' if result['created'] else 'Updated'} model {args.name}.")
    else:
        m = result["model"]
        emit(args, result, f"Model {m['id']}: {'enabled' if m['enabled'] else 'disabled'}, upstream "
                           f"{m['upstream_name']}, context {m['context_window']}.")
    return 0


def _run_codes(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        cmd = args.codes_cmd
        if cmd == "create":
            batch, codes = await create_batch(
                session, secret_key=settings.require_secret_key(), count=args.count,
                amount_micros=_micros(args.micros), org_id=args.org, note=args.note, actor=actor(),
                expires_at=parse_time(args.expires_at, param="expires_at") if args.expires_at else None)
            await _audit(session, kind="cli.codes.create", trace_id=new_trace_id(), org_id=args.org,
                         detail={"before": None, "after": batch.to_dict()})  # never the codes
            return {"batch": batch.to_dict(), "codes": codes}
        if cmd == "list":
            limit = check_limit(args.limit)
            page = (await list_codes(session, batch_id=args.batch, state=args.state, limit=limit, cursor=args.cursor)
                    if args.batch else await list_batches(session, limit=limit, cursor=args.cursor))
            return page.to_dict()
        if cmd == "revoke":
            if bool(args.batch) == bool(args.code):
                raise InvalidRequest("name one of --batch or --code", code="missing_field", param="batch")
            before, after = (await revoke_batch(session, batch_id=args.batch) if args.batch
                             else await revoke_code(session, code_id=args.code))
            await _audit(session, kind="cli.codes.revoke", trace_id=new_trace_id(), org_id=None,
                         detail={"before": before.to_dict(), "after": after.to_dict()})
            return after.to_dict()
        await _wallet(session, args.org)  # org_not_found
        trace_id = new_trace_id()
        done = await redeem_code(session, secret_key=settings.require_secret_key(), code=args.code, org_id=args.org,
                                 user_id=None, actor=actor(), trace_id=trace_id)
        await _audit(session, kind="cli.codes.redeem", trace_id=trace_id, org_id=args.org, detail={
            "code_id": done.code.id, "batch_id": done.batch_id, "entry_id": done.entry.id,
            "amount_micros": done.entry.amount_micros})
        return {"entry": done.entry.to_dict(), "batch": (await get_batch(session, done.batch_id)).to_dict()}

    result = in_session(settings, work)
    emit(args, result, _codes_text(args.codes_cmd, result))
    return 0


def _codes_text(cmd: str, result: dict[str, Any]) -> str:
    if cmd == "create":
        b = result["batch"]
        head = (f"Batch {b['id']}: {b['count']} codes of {_credits(b['amount_micros'])} credits"
                f"{' for org ' + b['org_id'] if b['org_id'] else ''}, expiring {b['expires_at'] or 'never'}. "
                "The codes are shown this once:")
        return "\n".join([head, *result["codes"]])
    if cmd == "list":
        return page_text([f"{x['id']}  {x['prefix']}  {x['state']:8}  {x['redeemed_org_id'] or ''}" if "prefix" in x
                          else f"{x['id']}  {x['count']:>5} × {x['amount_micros']} micros  {x['states']}  {x['note']}"
                          for x in result["data"]], result, empty="(none)")
    if cmd == "revoke":
        return f"Revoked {result['id']} ({result.get('state') or result.get('states')})."
    e = result["entry"]
    return f"Redeemed: {_credits(e['amount_micros'])} credits to org {e['org_id']} (entry {e['id']})."


def _run_transactions(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        times = {n: parse_time(v, param=n) for n in ("since", "until") if (v := getattr(args, n)) is not None}
        page = await list_entries(session, org_id=args.org, limit=check_limit(args.limit), cursor=args.cursor,
                                  type=args.type, ref=args.ref, trace_id=args.trace_id, **times)
        return page.to_dict()

    result = in_session(settings, work)
    emit(args, result, page_text([f"{e['created_at'][:19]}  {e['org_id']}  {e['type']:8} {e['amount_micros']:>14}  "
                                  f"{e['ref']}" for e in result["data"]], result, empty="(no entries)"))
    return 0


def _model_options(q: argparse.ArgumentParser, *, adding: bool) -> None:
    q.add_argument("name", help="the model name callers use")
    q.add_argument("--upstream-name", help="the name the upstream knows" + (" (default: the same)" if adding else ""))
    q.add_argument("--context-window", type=int, default=8192 if adding else None)
    q.add_argument("--modalities", help="comma-separated: text,image,audio,video,file" +
                   (" (default: text)" if adding else ""))
    q.add_argument("--description", default="" if adding else None)
    q.add_argument("--json", action="store_true", help="print JSON")


def register(sub: Any) -> None:
    """Add ``models``, ``codes`` and ``transactions`` to the ``deepspace-lab`` subparsers."""
    p = sub.add_parser("models", help="the models catalog")
    msub = p.add_subparsers(dest="models_cmd", required=True, metavar="ACTION")
    q = msub.add_parser("list", help="list catalog models (disabled ones too)")
    q.add_argument("--json", action="store_true")
    q = msub.add_parser("add", help="add or update a catalog model")
    _model_options(q, adding=True)
    q.add_argument("--disabled", action="store_true", help="add it disabled")
    _model_options(msub.add_parser("update", help="change some fields of a catalog model"), adding=False)
    for name in ("enable", "disable"):
        q = msub.add_parser(name, help=f"{name} a catalog model (a disabled model is refused to callers)")
        q.add_argument("name")
        q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_models)

    p = sub.add_parser("codes", help="redeemable credit codes: create a batch, list, revoke, redeem")
    csub = p.add_subparsers(dest="codes_cmd", required=True, metavar="ACTION")
    q = csub.add_parser("create", help="a batch of codes (shown once, stored hashed)")
    q.add_argument("--count", type=int, required=True, help="how many codes (1-1000)")
    q.add_argument("--micros", required=True, help="what each code credits, in micro-credits")
    q.add_argument("--expires-at", help="ISO 8601 time after which they no longer redeem (default: never)")
    q.add_argument("--org", help="only this org may redeem them")
    q.add_argument("--note", default="", help="what the batch is for")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = csub.add_parser("list", help="batches (newest first), or one batch's codes with --batch")
    q.add_argument("--batch", help="list this batch's codes")
    q.add_argument("--state", choices=("active", "redeemed", "revoked", "expired"), help="with --batch: only these")
    add_paging(q)
    q = csub.add_parser("revoke", help="revoke one code (--code) or every unredeemed code of a batch (--batch)")
    q.add_argument("--batch")
    q.add_argument("--code")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = csub.add_parser("redeem", help="redeem a code into an org's wallet (for an org that cannot)")
    q.add_argument("code")
    q.add_argument("--org", required=True, help="org id")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_codes)

    p = sub.add_parser("transactions", help="ledger entries, newest first, with filters")
    tsub = p.add_subparsers(dest="transactions_cmd", required=True, metavar="ACTION")
    q = tsub.add_parser("list", help="ledger entries of every org (or --org), newest first")
    q.add_argument("--org", help="only this org")
    q.add_argument("--type", choices=("credit", "debit", "hold", "capture", "release", "refund"))
    q.add_argument("--since", help="ISO 8601, inclusive")
    q.add_argument("--until", help="ISO 8601, exclusive")
    q.add_argument("--ref")
    q.add_argument("--trace-id")
    add_paging(q)
    p.set_defaults(func=_run_transactions)
