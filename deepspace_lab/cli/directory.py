"""``users list|show|role``, ``orgs list|show`` and ``keys list --all-orgs``: the Admin API's
accounts views from the command line (the same services, the same JSON with ``--json``)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import change_role, get_user_by_email
from ..auth.directory import org_detail, search_api_keys, search_orgs, search_users, user_detail, user_dict
from ..config import Settings
from ._common import add_paging, emit, in_session, page_text


def _audit(session: AsyncSession, kind: str, **fields: Any) -> None:
    from .identity import _audit as audit

    audit(session, kind, **fields)


def _page(args: argparse.Namespace) -> dict[str, Any]:
    return {"cursor": args.cursor, "limit": args.limit}


def run_users(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        if args.users_cmd == "list":
            users, nxt = await search_users(session, org_id=args.org, q=args.q, status=args.status,
                                            platform_admin=args.platform_admin, **_page(args))
            return {"data": [dict(user_dict(u), role=role) for u, role in users], "next_cursor": nxt}
        user = await get_user_by_email(session, args.email)
        if args.users_cmd == "show":
            user, memberships = await user_detail(session, user_id=user.id, org_scope=None)
            return dict(user_dict(user), memberships=[{"org_id": m.org_id, "org_name": m.org_name, "role": m.role}
                                                      for m in memberships])
        before, after = await change_role(session, org_id=args.org, user_id=user.id, role=args.role,
                                          acting_role="owner")
        _audit(session, "cli.members.role", org_id=args.org, user_id=user.id,
               detail={"before": {"role": before}, "after": {"role": after}})
        await session.commit()
        return {"org_id": args.org, "user_id": user.id, "email": user.email, "role": after, "before": before}

    result = in_session(settings, work)
    if args.users_cmd == "list":
        text = page_text([f"{u['id']}  {u['email']:40} {u['status']:8} "
                          f"{'platform admin' if u['is_platform_admin'] else u['role'] or ''}"
                          for u in result["data"]], result, empty="(no users)")
    elif args.users_cmd == "show":
        text = "\n".join([f"{result['email']} ({result['id']}) {result['status']}",
                          *(f"  {m['role']:7} of {m['org_name']} ({m['org_id']})" for m in result["memberships"])])
    else:
        text = f"{result['email']} is now {result['role']} of {result['org_id']} (was {result['before']})"
    emit(args, result, text)
    return 0


def run_orgs(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        if args.orgs_cmd == "list":
            orgs, nxt = await search_orgs(session, org_scope=None, q=args.q, **_page(args))
            return {"data": [o.to_dict() for o in orgs], "next_cursor": nxt}
        detail = await org_detail(session, org_id=args.org_id)
        return dict(detail.summary.to_dict(), projects=[
            {"id": p.id, "org_id": p.org_id, "name": p.name, "created_at": p.created_at.isoformat()}
            for p in detail.projects], members=[
            {"user_id": u.id, "email": u.email, "name": u.name, "role": m.role, "status": u.status}
            for u, m in detail.members])

    result = in_session(settings, work)
    if args.orgs_cmd == "list":
        text = page_text([f"{o['id']}  {o['name']:30} members {o['member_count']:>4}  balance {o['balance_micros']}"
                          for o in result["data"]], result, empty="(no orgs)")
    else:
        text = "\n".join([f"{result['name']} ({result['id']}), balance {result['balance_micros']} micros",
                          *(f"  project {p['id']}  {p['name']}" for p in result["projects"]),
                          *(f"  {m['role']:7} {m['email']}" for m in result["members"])])
    emit(args, result, text)
    return 0


async def all_keys(session: AsyncSession, args: argparse.Namespace) -> dict[str, Any]:
    """``keys list --all-orgs``: every org's keys (filters: --org, --user EMAIL, --project, --revoked/--live)."""
    from .identity import _key_json

    user_id = (await get_user_by_email(session, args.user)).id if args.user else None
    keys, nxt = await search_api_keys(session, org_id=args.org, user_id=user_id, project_id=args.project,
                                      revoked=args.revoked, **_page(args))
    return {"data": [dict(_key_json(k), user_email=email) for k, email in keys], "next_cursor": nxt}


def extend_users(usub: Any) -> None:
    q = usub.add_parser("list", help="users, newest first (search and filters)")
    q.add_argument("--q", help="a substring of the email or name, any case")
    q.add_argument("--status", choices=("active", "disabled"))
    q.add_argument("--platform-admin", dest="platform_admin", action="store_const", const=True,
                   help="only platform admins")
    q.add_argument("--not-platform-admin", dest="platform_admin", action="store_const", const=False,
                   help="only users who are not platform admins")
    q.add_argument("--org", help="only members of this org (with their role)")
    add_paging(q)
    q.set_defaults(func=run_users)
    q = usub.add_parser("show", help="a user with their memberships")
    q.add_argument("--email", required=True)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_users)
    q = usub.add_parser("role", help="change a member's role (the last owner stays)")
    q.add_argument("--org", required=True)
    q.add_argument("--email", required=True)
    q.add_argument("--role", required=True, choices=("viewer", "member", "admin", "owner"))
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_users)


def extend_orgs(osub: Any) -> None:
    q = osub.add_parser("list", help="orgs, newest first, with members and wallet")
    q.add_argument("--q", help="a substring of the name or slug, any case")
    add_paging(q)
    q.set_defaults(func=run_orgs)
    q = osub.add_parser("show", help="an org with its projects and members")
    q.add_argument("org_id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_orgs)
