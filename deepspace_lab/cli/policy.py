"""``deepspace-lab policy set|list|delete``: rate limits, IP rules and model policies.

Policies are data with history (:mod:`deepspace_lab.policy`): a change takes effect on the
next request in every gateway process, and is audited (actor ``cli:<os user>``, before and
after) in the same transaction as the change.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..config import Settings
from ..errors import InvalidRequest
from ..policy.service import delete_policy, list_policies, set_policy, spec_summary
from ..tracing import new_trace_id
from ._common import actor, emit, in_session


def _scope(args: argparse.Namespace) -> tuple[str, str]:
    if getattr(args, "global_", False):
        if args.org:
            raise InvalidRequest("--global and --org exclude each other", code="invalid_scope", param="org")
        return "global", ""
    if not args.org:
        raise InvalidRequest("name the org (--org ORG)" + (" or --global" if args.kind == "ip-rule" else ""),
                             code="missing_field", param="org")
    project, key = getattr(args, "project", None), getattr(args, "key", None)
    if project and key:
        raise InvalidRequest("--project and --key exclude each other", code="invalid_scope", param="key")
    if project:
        return "project", project
    if key:
        return "key", key
    return "org", args.org


def _spec(args: argparse.Namespace) -> tuple[str, dict[str, Any], str]:
    """(kind, spec, subject) from the command line."""
    if args.kind == "rate-limit":
        return "rate_limit", {k: v for k in ("rpm", "tpm", "concurrency")
                              if (v := getattr(args, k)) is not None}, ""
    if args.kind == "ip-rule":
        return "ip_rule", {"action": args.action}, args.cidr
    models = [m.strip() for m in args.allow.split(",") if m.strip()]
    return "model_policy", {"allow": models}, ""


async def _audit(session: AsyncSession, *, kind: str, org_id: str | None, detail: dict[str, Any]) -> None:
    session.add(AuditLog(trace_id=new_trace_id(), kind=kind, actor=actor(), org_id=org_id, detail=detail))


def _text(p: dict[str, Any]) -> str:
    where = "global" if p["scope"] == "global" else f"{p['scope']} {p['scope_id']}"
    return f"#{p['id']:<5} {p['kind']:12} {where:48} {spec_summary(p['kind'], p['spec'], p['subject'] or '')}"


def _run_policy(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> Any:
        if args.policy_cmd == "list":
            kind = args.kind.replace("-", "_") if args.kind else None
            return [p.to_dict() for p in await list_policies(session, org_id=args.org, kind=kind,
                                                             history=args.history)]
        if args.policy_cmd == "delete":
            gone = await delete_policy(session, policy_id=args.id, org_id=args.org, actor=actor())
            await _audit(session, kind="cli.policy.delete", org_id=gone.org_id,
                         detail={"policy_id": gone.id, "before": gone.to_dict(), "after": None})
            await session.commit()
            return {"deleted": gone.to_dict()}
        scope, scope_id = _scope(args)
        kind, spec, subject = _spec(args)
        after, before = await set_policy(session, kind=kind, scope=scope, scope_id=scope_id,
                                         org_id=args.org, spec=spec, subject=subject, actor=actor())
        changed = before is None or before.id != after.id
        if changed:
            await _audit(session, kind="cli.policy.set", org_id=after.org_id, detail={
                "policy_id": after.id, "before": before.to_dict() if before else None, "after": after.to_dict()})
        await session.commit()
        return {"policy": after.to_dict(), "before": before.to_dict() if before else None, "changed": changed}

    result = in_session(settings, work)
    if args.policy_cmd == "list":
        text = "\n".join(_text(p) + ("" if p["in_force"] else f"   (ended {p['ended_at'][:19]} by {p['ended_by']})")
                         for p in result) or "(no policies)"
    elif args.policy_cmd == "delete":
        text = f"Deleted (kept in history): {_text(result['deleted'])}"
    else:
        verb = ("Already in force:" if not result["changed"] else "Changed" if result["before"] else "Set")
        text = f"{verb} {_text(result['policy'])}"
    emit(args, result, text)
    return 0


def register(sub: Any) -> None:
    """Add ``policy`` to the ``deepspace-lab`` subparsers."""
    p = sub.add_parser("policy", help="rate limits, IP rules and model policies (take effect on the next request)")
    psub = p.add_subparsers(dest="policy_cmd", required=True, metavar="ACTION")

    q = psub.add_parser("set", help="put a policy in force (the version it replaces is kept in history)")
    ksub = q.add_subparsers(dest="kind", required=True, metavar="KIND")
    r = ksub.add_parser("rate-limit", help="requests/tokens per minute and requests in flight, per org, "
                                           "project or key (0 = no limit of that kind)")
    r.add_argument("--org", help="org id (the limit applies to the whole org unless --project or --key)")
    r.add_argument("--project", help="project id (in --org)")
    r.add_argument("--key", help="API key id (in --org)")
    r.add_argument("--rpm", type=int, help="requests per minute (sliding window)")
    r.add_argument("--tpm", type=int, help="tokens per minute: counted at the hold's worst case, "
                                           "corrected to what was used")
    r.add_argument("--concurrency", type=int, help="requests in flight at once")
    r = ksub.add_parser("ip-rule", help="allow or deny a CIDR, for an org or everyone (--global); "
                                        "an allow rule makes its scope an allow list")
    r.add_argument("--org", help="org id")
    r.add_argument("--global", dest="global_", action="store_true", help="for every request, checked first")
    r.add_argument("--cidr", required=True, help="an IPv4 or IPv6 address or CIDR, e.g. 203.0.113.0/24")
    r.add_argument("--action", required=True, choices=("allow", "deny"))
    r = ksub.add_parser("models", help="the models an org or project may use (others are refused, 403)")
    r.add_argument("--org", help="org id")
    r.add_argument("--project", help="project id (in --org)")
    r.add_argument("--allow", required=True, help="comma-separated model names")
    for r in ksub.choices.values():
        r.add_argument("--json", action="store_true", help="print JSON")

    q = psub.add_parser("list", help="policies in force (with --history, every version)")
    q.add_argument("--org", help="only this org's (and the global rules)")
    q.add_argument("--kind", choices=("rate-limit", "ip-rule", "model-policy"))
    q.add_argument("--history", action="store_true", help="include ended versions")
    q.add_argument("--json", action="store_true", help="print JSON")

    q = psub.add_parser("delete", help="end a policy (kept in history)")
    q.add_argument("id", type=int, help="policy id (from `policy list`)")
    q.add_argument("--org", help="refuse unless the policy belongs to this org")
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_policy)
