"""The Admin API's view of identity: users and orgs across the deployment (or within one org,
for an org's admins), API keys across orgs, and the guarded status change of a user.

Lists page newest first by (created_at, id) with an opaque cursor (:mod:`..db.paging`); a
``org_scope`` of ``None`` means every org (platform admins), else one org id, and anything
outside it is not found. Services only ``flush()``; the caller commits with its audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..billing.models import Wallet
from ..db.paging import check_limit, encode_cursor, newest_first
from ..errors import InvalidRequest, NotFound, PermissionDenied
from .accounts import Membership, _guard_owner_change, list_members, list_projects, memberships_of, set_user_status
from .apikeys import revoke_api_key
from .models import ApiKey, Org, OrgMember, Project, User

USER_STATUSES = ("active", "disabled")
MAX_SEARCH = 200


@dataclass(frozen=True, slots=True)
class OrgSummary:
    id: str
    name: str
    slug: str
    created_at: datetime
    member_count: int
    project_count: int
    balance_micros: int
    frozen_micros: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "org", "name": self.name, "slug": self.slug,
                "created_at": self.created_at.isoformat(), "member_count": self.member_count,
                "project_count": self.project_count, "balance_micros": self.balance_micros,
                "frozen_micros": self.frozen_micros}


@dataclass(frozen=True, slots=True)
class OrgDetail:
    summary: OrgSummary
    projects: list[Project]
    members: list[tuple[User, OrgMember]]


def user_dict(user: User) -> dict[str, Any]:
    """A user as the Admin API and the CLI show it (never the password hash)."""
    return {"id": user.id, "object": "user", "email": user.email, "name": user.name, "status": user.status,
            "is_platform_admin": user.is_platform_admin, "external_id": user.external_id,
            "created_at": user.created_at.isoformat(),
            "locked_until": user.locked_until.isoformat() if user.locked_until else None}


def _search_text(q: str | None) -> str | None:
    if q is None:
        return None
    if not q or len(q) > MAX_SEARCH:
        raise InvalidRequest(f"`q` must be 1-{MAX_SEARCH} characters", code="invalid_value", param="q")
    return q.lower()


async def _page(session: AsyncSession, query: Any, created: Any, ident: Any, *, cursor: str | None,
                limit: int | str | None) -> tuple[list[Any], str | None]:
    """One page of ``query`` newest first, and the cursor of the next (None at the end)."""
    size = check_limit(limit)
    rows = list((await session.execute(newest_first(query, created, ident, cursor=cursor, limit=size))).all())
    page = rows[:size]
    last = page[-1][0] if page else None
    return page, encode_cursor(last.created_at, last.id) if len(rows) > size and last is not None else None


async def search_users(session: AsyncSession, *, org_id: str | None = None, q: str | None = None,
                       status: str | None = None, platform_admin: bool | None = None, cursor: str | None = None,
                       limit: int | str | None = None) -> tuple[list[tuple[User, str | None]], str | None]:
    """Users newest first as (user, role in ``org_id`` or None), filtered by an email or name
    substring (case-insensitive), status, the platform-admin flag and membership of ``org_id``."""
    if status is not None and status not in USER_STATUSES:
        raise InvalidRequest(f"`status` is one of {list(USER_STATUSES)}", code="invalid_value", param="status")
    query: Any
    if org_id is not None:
        query = select(User, OrgMember.role).join(OrgMember, OrgMember.user_id == User.id).where(
            OrgMember.org_id == org_id)
    else:
        query = select(User, null().label("role"))
    text = _search_text(q)
    if text is not None:
        query = query.where(or_(func.lower(User.email).contains(text, autoescape=True),
                                func.lower(User.name).contains(text, autoescape=True)))
    if status is not None:
        query = query.where(User.status == status)
    if platform_admin is not None:
        query = query.where(User.is_platform_admin.is_(platform_admin))
    page, nxt = await _page(session, query, User.created_at, User.id, cursor=cursor, limit=limit)
    return [(row[0], row[1]) for row in page], nxt


async def user_detail(session: AsyncSession, *, user_id: str, org_scope: str | None) -> tuple[User, list[Membership]]:
    """A user with their memberships (within ``org_scope`` only; a user outside it is not found)."""
    user = await session.get(User, user_id)
    memberships = await memberships_of(session, user_id) if user is not None else []
    if org_scope is not None:
        memberships = [m for m in memberships if m.org_id == org_scope]
    if user is None or (org_scope is not None and not memberships):
        raise NotFound(f"no user {user_id!r}", code="user_not_found", param="user_id")
    return user, memberships


async def set_status_by_admin(session: AsyncSession, *, user_id: str, status: str, org_scope: str | None,
                              acting_user_id: str, acting_role: str) -> tuple[str, User]:
    """Disable or enable a user (their keys and sessions stop or work again on the next request,
    in every process: authentication reads the status each time). Returns (status before, user).

    Nobody disables themselves. An org admin (``org_scope``) acts only on users of their org who
    belong to no other org and are not platform admins, and never on a role above their own."""
    user, memberships = await user_detail(session, user_id=user_id, org_scope=org_scope)
    if user.id == acting_user_id and status != "active":
        raise PermissionDenied("you cannot disable yourself", code="cannot_disable_self")
    if org_scope is not None:
        if user.is_platform_admin or len(await memberships_of(session, user_id)) > 1:
            raise PermissionDenied("this user is not only your org's; ask a platform admin",
                                   code="user_beyond_org")
        _guard_owner_change(acting_role, memberships[0].role)
    before = user.status
    return before, await set_user_status(session, user_id=user.id, status=status)


def _org_columns() -> Select[Any]:
    members = select(func.count()).select_from(OrgMember).where(OrgMember.org_id == Org.id).scalar_subquery()
    projects = select(func.count()).select_from(Project).where(Project.org_id == Org.id).scalar_subquery()
    return (select(Org, members, projects, Wallet.balance_micros, Wallet.frozen_micros)
            .outerjoin(Wallet, Wallet.org_id == Org.id))


def _summary(row: Any) -> OrgSummary:
    org, members, projects, balance, frozen = row
    return OrgSummary(id=org.id, name=org.name, slug=org.slug, created_at=org.created_at, member_count=int(members),
                      project_count=int(projects), balance_micros=int(balance or 0), frozen_micros=int(frozen or 0))


async def search_orgs(session: AsyncSession, *, org_scope: str | None, q: str | None = None, cursor: str | None = None,
                      limit: int | str | None = None) -> tuple[list[OrgSummary], str | None]:
    """Orgs newest first with member and project counts and the wallet, filtered by a name or
    slug substring (case-insensitive)."""
    query = _org_columns()
    if org_scope is not None:
        query = query.where(Org.id == org_scope)
    text = _search_text(q)
    if text is not None:
        query = query.where(or_(func.lower(Org.name).contains(text, autoescape=True),
                                func.lower(Org.slug).contains(text, autoescape=True)))
    page, nxt = await _page(session, query, Org.created_at, Org.id, cursor=cursor, limit=limit)
    return [_summary(row) for row in page], nxt


async def org_detail(session: AsyncSession, *, org_id: str) -> OrgDetail:
    row = (await session.execute(_org_columns().where(Org.id == org_id))).first()
    if row is None:
        raise NotFound(f"no org {org_id!r}", code="org_not_found", param="org_id")
    return OrgDetail(_summary(row), await list_projects(session, org_id=org_id),
                     await list_members(session, org_id=org_id))


async def search_api_keys(session: AsyncSession, *, org_id: str | None = None, user_id: str | None = None,
                          project_id: str | None = None, revoked: bool | None = None, cursor: str | None = None,
                          limit: int | str | None = None) -> tuple[list[tuple[ApiKey, str]], str | None]:
    """API keys of every org, newest first, as (key, owner's email); hashes stay in the rows."""
    query = select(ApiKey, User.email).join(User, User.id == ApiKey.user_id)
    for column, value in ((ApiKey.org_id, org_id), (ApiKey.user_id, user_id), (ApiKey.project_id, project_id)):
        if value is not None:
            query = query.where(column == value)
    if revoked is not None:
        query = query.where(ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None))
    page, nxt = await _page(session, query, ApiKey.created_at, ApiKey.id, cursor=cursor, limit=limit)
    return [(row[0], row[1]) for row in page], nxt


async def revoke_any_api_key(session: AsyncSession, *, key_id: str) -> tuple[ApiKey, bool]:
    """Revoke a key of any org (refused from its next request, in every process). Returns
    (key, whether it was live before)."""
    org_id = (await session.execute(select(ApiKey.org_id).where(ApiKey.id == key_id))).scalar_one_or_none()
    if org_id is None:
        raise NotFound(f"no API key {key_id!r}", code="api_key_not_found", param="key_id")
    was_live = (await session.execute(select(ApiKey.revoked_at).where(ApiKey.id == key_id))).scalar_one() is None
    return await revoke_api_key(session, org_id=org_id, key_id=key_id), was_live
