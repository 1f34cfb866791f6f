"""Identity commands: users, orgs, members and API keys — scriptable (``--json``), audited as
``cli:<os user>``, calling the same services as the product API."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit.models import AuditLog
from ..auth import (
    add_member,
    check_scopes,
    create_api_key,
    create_org,
    create_project,
    create_user,
    get_user_by_email,
    list_api_keys,
    revoke_api_key,
    set_user_status,
)
from ..auth.models import Org, OrgMember, Project
from ..auth.passwords import generate_password
from ..auth.permissions import DEFAULT_KEY_SCOPES, ROLES
from ..config import Settings
from ..db.base import utcnow
from ..errors import InvalidRequest, NotFound
from ..tracing import new_trace_id
from . import directory
from ._common import actor, add_paging, emit, in_session


def _audit(session: AsyncSession, kind: str, *, trace_id: str | None = None, **fields: Any) -> None:
    """Add the audit row to the command's own unit of work: it commits with the change (under
    ``trace_id`` when the command's other work carries one)."""
    session.add(AuditLog(trace_id=trace_id or new_trace_id(), kind=kind, actor=actor(), created_at=utcnow(),
                         **fields))


async def _org(session: AsyncSession, org_id: str) -> Org:
    org = await session.get(Org, org_id)
    if org is None:
        raise NotFound(f"no org {org_id!r}", code="org_not_found")
    return org


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        if args.users_cmd == "create":
            password = args.password or generate_password()
            user = await create_user(session, email=args.email, name=args.name, password=password,
                                     is_platform_admin=args.platform_admin)
            _audit(session, "cli.users.create", user_id=user.id,
                   detail={"email": user.email, "platform_admin": user.is_platform_admin})
            await session.commit()
            out = {"id": user.id, "email": user.email, "is_platform_admin": user.is_platform_admin}
            return out | ({"password": password} if not args.password else {})
        user = await get_user_by_email(session, args.email)
        before = user.status
        user = await set_user_status(session, user_id=user.id, status="disabled" if args.users_cmd == "disable"
                                     else "active")
        _audit(session, f"cli.users.{args.users_cmd}", user_id=user.id,
               detail={"before": {"status": before}, "after": {"status": user.status}})
        await session.commit()
        return {"id": user.id, "email": user.email, "status": user.status}

    result = in_session(settings, work)
    text = f"user {result['email']} ({result['id']})" + (f"\n  password (shown once): {result['password']}"
                                                         if "password" in result else "")
    emit(args, result, text)
    return 0


def cmd_orgs(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        owner = await get_user_by_email(session, args.owner_email)
        org = await create_org(session, name=args.name, owner=owner)
        project = await create_project(session, org_id=org.id, name=args.project)
        _audit(session, "cli.orgs.create", org_id=org.id, user_id=owner.id,
               detail={"name": org.name, "owner": owner.email, "project_id": project.id})
        await session.commit()
        return {"id": org.id, "name": org.name, "owner_user_id": owner.id, "project_id": project.id}

    result = in_session(settings, work)
    emit(args, result, f"org {result['name']} ({result['id']}), first project {result['project_id']}")
    return 0


def cmd_members(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> dict[str, Any]:
        await _org(session, args.org)
        member = await add_member(session, org_id=args.org, email=args.email, role=args.role, acting_role="owner")
        _audit(session, "cli.members.add", org_id=args.org, user_id=member.user_id,
               detail={"before": None, "after": {"role": member.role}, "email": args.email.lower()})
        await session.commit()
        return {"org_id": args.org, "user_id": member.user_id, "role": member.role}

    result = in_session(settings, work)
    emit(args, result, f"{args.email} is now {result['role']} of {args.org}")
    return 0


def _key_json(key: Any) -> dict[str, Any]:
    return {"id": key.id, "prefix": key.prefix, "name": key.name, "org_id": key.org_id, "project_id": key.project_id,
            "user_id": key.user_id, "scopes": list(key.scopes or ()),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None}


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    async def create(session: AsyncSession) -> dict[str, Any]:
        user = await get_user_by_email(session, args.email)
        query = select(Project).join(OrgMember, OrgMember.org_id == Project.org_id).where(OrgMember.user_id == user.id)
        if args.project:
            query = query.where(Project.id == args.project)
        project = (await session.execute(query.order_by(Project.created_at).limit(1))).scalar_one_or_none()
        if project is None:
            raise NotFound("no project of this user matches", code="project_not_found")
        scopes = check_scopes(args.scopes.split(",") if args.scopes else list(DEFAULT_KEY_SCOPES),
                              is_platform_admin=user.is_platform_admin)
        expires = utcnow() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
        key, plaintext = await create_api_key(
            session, secret_key=settings.require_secret_key(), org_id=project.org_id, project_id=project.id,
            user_id=user.id, name=args.name, scopes=scopes, expires_at=expires)
        _audit(session, "cli.keys.create", org_id=project.org_id, project_id=project.id, user_id=user.id,
               api_key_id=key.id, detail={"prefix": key.prefix, "scopes": list(scopes)})
        await session.commit()
        return _key_json(key) | {"api_key": plaintext}

    async def listing(session: AsyncSession) -> Any:
        if args.all_orgs:
            return await directory.all_keys(session, args)
        if not args.org:
            raise InvalidRequest("name the org (--org ORG) or ask for --all-orgs", code="missing_field", param="org")
        await _org(session, args.org)
        return [_key_json(k) for k in await list_api_keys(session, org_id=args.org)]

    async def revoke(session: AsyncSession) -> dict[str, Any]:
        await _org(session, args.org)
        key = await revoke_api_key(session, org_id=args.org, key_id=args.key_id)
        _audit(session, "cli.keys.revoke", org_id=key.org_id, api_key_id=key.id, detail={"prefix": key.prefix})
        await session.commit()
        return _key_json(key)

    if args.keys_cmd == "create":
        result: Any = in_session(settings, create)
        emit(args, result, f"API key (shown once): {result['api_key']}\n  project {result['project_id']}")
    elif args.keys_cmd == "list":
        result = in_session(settings, listing)
        rows = result["data"] if args.all_orgs else result
        emit(args, result, "\n".join(f"{k['id']}  {k['prefix']}  {k['org_id']}  {','.join(k['scopes']):30} "
                                     f"{'revoked' if k['revoked_at'] else 'live'}" for k in rows) or "(no keys)")
    else:
        result = in_session(settings, revoke)
        emit(args, result, f"revoked {result['id']} ({result['prefix']})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("users", help="users")
    usub = p.add_subparsers(dest="users_cmd", required=True, metavar="ACTION")
    q = usub.add_parser("create", help="create a user (password generated and shown once unless given)")
    q.add_argument("--email", required=True)
    q.add_argument("--name", default="")
    q.add_argument("--password")
    q.add_argument("--platform-admin", action="store_true", help="may use the Admin API")
    q.add_argument("--json", action="store_true")
    for action in ("disable", "enable"):
        q = usub.add_parser(action, help=f"{action} a user (their keys and sessions stop/start working at once)")
        q.add_argument("--email", required=True)
        q.add_argument("--json", action="store_true")
    directory.extend_users(usub)
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("orgs", help="orgs")
    osub = p.add_subparsers(dest="orgs_cmd", required=True, metavar="ACTION")
    q = osub.add_parser("create", help="create an org with an owner, a first project and a wallet")
    q.add_argument("--name", required=True)
    q.add_argument("--owner-email", required=True)
    q.add_argument("--project", default="Default project", help="name of the first project")
    q.add_argument("--json", action="store_true")
    directory.extend_orgs(osub)
    p.set_defaults(func=cmd_orgs)

    p = sub.add_parser("members", help="org members")
    msub = p.add_subparsers(dest="members_cmd", required=True, metavar="ACTION")
    q = msub.add_parser("add", help="add an existing user to an org")
    q.add_argument("--org", required=True)
    q.add_argument("--email", required=True)
    q.add_argument("--role", choices=ROLES, default="member")
    q.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_members)

    p = sub.add_parser("keys", help="API keys")
    ksub = p.add_subparsers(dest="keys_cmd", required=True, metavar="ACTION")
    q = ksub.add_parser("create", help="create an API key for a user's project (shown once)")
    q.add_argument("--email", default="admin@localhost")
    q.add_argument("--project", help="project id (default: the user's first project)")
    q.add_argument("--name", default="cli")
    q.add_argument("--scopes", help=f"comma-separated (default {','.join(DEFAULT_KEY_SCOPES)})")
    q.add_argument("--expires-in-days", type=int)
    q.add_argument("--json", action="store_true")
    q = ksub.add_parser("list", help="an org's keys, or with --all-orgs every org's (never the secrets)")
    q.add_argument("--org", help="the org (with --all-orgs: a filter)")
    q.add_argument("--all-orgs", action="store_true", help="keys of every org, newest first, paged")
    q.add_argument("--user", help="with --all-orgs: only this user's (email)")
    q.add_argument("--project", help="with --all-orgs: only this project's")
    q.add_argument("--revoked", dest="revoked", action="store_const", const=True, help="with --all-orgs: only revoked")
    q.add_argument("--live", dest="revoked", action="store_const", const=False, help="with --all-orgs: only live")
    add_paging(q)
    q = ksub.add_parser("revoke", help="revoke a key: refused from its next request on, in every process")
    q.add_argument("key_id")
    q.add_argument("--org", required=True)
    q.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys)
