"""Users, orgs, members and projects. Every function that reads tenant rows takes the org it
is scoped to; an id from another org is :class:`NotFound`, never a different error.

Services only ``flush()``; the caller commits (one unit of work per request or command).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..billing.models import Wallet
from ..conversations.models import Conversation
from ..db.base import new_id
from ..errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from .models import ApiKey, Org, OrgMember, Project, User
from .passwords import MIN_PASSWORD_LENGTH, hash_password
from .permissions import ROLE_RANK, check_role

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "org"


def _name(value: str, *, field: str, limit: int = 200) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit:
        raise InvalidRequest(f"`{field}` must be 1-{limit} characters", code="invalid_value", param=field)
    return value


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str = "",
    password: str | None = None,
    password_hash: str | None = None,
    is_platform_admin: bool = False,
    external_id: str | None = None,
) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"not an email address: {email!r}", code="invalid_email", param="email")
    if password is not None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequest(f"a password has at least {MIN_PASSWORD_LENGTH} characters",
                                 code="weak_password", param="password")
        password_hash = hash_password(password)
    if (await session.execute(select(User.id).where(User.email == email))).first() is not None:
        raise Conflict(f"a user with email {email!r} exists", code="email_taken", param="email")
    user = User(id=new_id("usr"), email=email, name=name, password_hash=password_hash,
                is_platform_admin=is_platform_admin, status="active", external_id=external_id, failed_logins=0)
    session.add(user)
    await session.flush()
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User:
    user = (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {email!r}", code="user_not_found")
    return user


async def set_user_status(session: AsyncSession, *, user_id: str, status: str) -> User:
    if status not in ("active", "disabled"):
        raise InvalidRequest("status is `active` or `disabled`", code="invalid_value", param="status")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}", code="user_not_found")
    user.status = status
    await session.flush()
    return user


async def create_org(session: AsyncSession, *, name: str, owner: User) -> Org:
    """A new org with ``owner`` as its owner, a first project and an empty wallet."""
    org = Org(id=new_id("org"), name=_name(name, field="name"), slug=f"{_slug(name)}-{new_id('x')[-6:]}")
    session.add(org)
    await session.flush()
    session.add(OrgMember(id=new_id("mem"), org_id=org.id, user_id=owner.id, role="owner"))
    session.add(Wallet(id=new_id("wal"), org_id=org.id, balance_micros=0, frozen_micros=0, overdraft_limit_micros=0))
    await session.flush()
    return org


@dataclass(frozen=True, slots=True)
class Membership:
    org_id: str
    org_name: str
    role: str


async def memberships_of(session: AsyncSession, user_id: str) -> list[Membership]:
    rows = await session.execute(
        select(Org.id, Org.name, OrgMember.role).join(OrgMember, OrgMember.org_id == Org.id)
        .where(OrgMember.user_id == user_id).order_by(OrgMember.created_at, Org.id))
    return [Membership(*row) for row in rows]


async def role_in(session: AsyncSession, *, org_id: str, user_id: str) -> str | None:
    return (await session.execute(select(OrgMember.role).where(
        OrgMember.org_id == org_id, OrgMember.user_id == user_id))).scalar_one_or_none()


async def list_members(session: AsyncSession, *, org_id: str) -> list[tuple[User, OrgMember]]:
    rows = await session.execute(
        select(User, OrgMember).join(OrgMember, OrgMember.user_id == User.id)
        .where(OrgMember.org_id == org_id).order_by(OrgMember.created_at, User.id))
    return [(user, member) for user, member in rows]


async def _member(session: AsyncSession, *, org_id: str, user_id: str) -> OrgMember:
    member = (await session.execute(select(OrgMember).where(
        OrgMember.org_id == org_id, OrgMember.user_id == user_id))).scalar_one_or_none()
    if member is None:
        raise NotFound(f"no member {user_id!r} in this org", code="member_not_found")
    return member


def _guard_owner_change(acting_role: str, *roles: str) -> None:
    if "owner" in roles and acting_role != "owner":
        raise PermissionDenied("only an owner can make or change an owner", code="owner_required")
    for role in roles:
        if ROLE_RANK[role] > ROLE_RANK[acting_role]:
            raise PermissionDenied("you cannot grant a role above your own", code="role_above_own")


async def _owner_count(session: AsyncSession, org_id: str) -> int:
    return int((await session.execute(select(func.count()).select_from(OrgMember).where(
        OrgMember.org_id == org_id, OrgMember.role == "owner"))).scalar_one())


async def add_member(session: AsyncSession, *, org_id: str, email: str, role: str, acting_role: str) -> OrgMember:
    _guard_owner_change(acting_role, check_role(role))
    user = await get_user_by_email(session, email)
    if await role_in(session, org_id=org_id, user_id=user.id) is not None:
        raise Conflict(f"{user.email} is already a member", code="already_member")
    member = OrgMember(id=new_id("mem"), org_id=org_id, user_id=user.id, role=role)
    session.add(member)
    await session.flush()
    return member


async def change_role(session: AsyncSession, *, org_id: str, user_id: str, role: str, acting_role: str) -> tuple[
        str, str]:
    """Returns (role before, role after)."""
    member = await _member(session, org_id=org_id, user_id=user_id)
    before = member.role
    _guard_owner_change(acting_role, check_role(role), before)
    if before == "owner" and role != "owner" and await _owner_count(session, org_id) <= 1:
        raise Conflict("the last owner cannot be demoted", code="last_owner")
    member.role = role
    await session.flush()
    return before, role


async def remove_member(session: AsyncSession, *, org_id: str, user_id: str, acting_role: str) -> str:
    member = await _member(session, org_id=org_id, user_id=user_id)
    _guard_owner_change(acting_role, member.role)
    if member.role == "owner" and await _owner_count(session, org_id) <= 1:
        raise Conflict("the last owner cannot leave the org", code="last_owner")
    role = member.role
    await session.delete(member)
    await session.flush()
    return role


async def list_projects(session: AsyncSession, *, org_id: str) -> list[Project]:
    rows = await session.execute(select(Project).where(Project.org_id == org_id).order_by(Project.created_at))
    return list(rows.scalars())


async def get_project(session: AsyncSession, *, org_id: str, project_id: str) -> Project:
    project = (await session.execute(select(Project).where(
        Project.id == project_id, Project.org_id == org_id))).scalar_one_or_none()
    if project is None:
        raise NotFound(f"no project {project_id!r}", code="project_not_found")
    return project


async def create_project(session: AsyncSession, *, org_id: str, name: str) -> Project:
    project = Project(id=new_id("prj"), org_id=org_id, name=_name(name, field="name"))
    await _flush_unique_name(session, project)
    return project


async def _flush_unique_name(session: AsyncSession, project: Project) -> None:
    """Flush ``project``; a name taken in its org is a Conflict (the unique constraint decides
    races; the unit of work is then rolled back by the caller)."""
    session.add(project)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a project named {project.name!r} exists in this org", code="project_name_taken",
                       param="name") from None


async def rename_project(session: AsyncSession, *, org_id: str, project_id: str, name: str) -> Project:
    project = await get_project(session, org_id=org_id, project_id=project_id)
    project.name = _name(name, field="name")
    await _flush_unique_name(session, project)
    return project


async def delete_project(session: AsyncSession, *, org_id: str, project_id: str) -> None:
    """Only an empty project goes: no conversations, no live keys, and not the org's last one."""
    project = await get_project(session, org_id=org_id, project_id=project_id)
    if len(await list_projects(session, org_id=org_id)) <= 1:
        raise Conflict("an org keeps at least one project", code="last_project")
    live_keys = (await session.execute(select(func.count()).select_from(ApiKey).where(
        ApiKey.project_id == project.id, ApiKey.revoked_at.is_(None)))).scalar_one()
    conversations = (await session.execute(select(func.count()).select_from(Conversation).where(
        Conversation.project_id == project.id))).scalar_one()
    if live_keys or conversations:
        raise Conflict(f"the project still has {live_keys} live keys and {conversations} conversations; "
                       "revoke and delete them first", code="project_not_empty")
    revoked = (await session.execute(select(ApiKey).where(ApiKey.project_id == project.id))).scalars()
    for key in revoked:
        await session.delete(key)
    await session.delete(project)
    await session.flush()


async def default_project(session: AsyncSession, user_id: str) -> tuple[str, str, str] | None:
    """(project_id, org_id, role) of the user's first project in their first org."""
    row = (await session.execute(
        select(Project.id, Project.org_id, OrgMember.role).join(OrgMember, OrgMember.org_id == Project.org_id)
        .where(OrgMember.user_id == user_id).order_by(OrgMember.created_at, Project.created_at).limit(1))).first()
    return None if row is None else (row[0], row[1], row[2])


async def project_role(session: AsyncSession, *, user_id: str, project_id: str) -> tuple[str, str]:
    """(org_id, role) for a project the user's org owns, else NotFound."""
    row = (await session.execute(
        select(Project.org_id, OrgMember.role).join(OrgMember, OrgMember.org_id == Project.org_id)
        .where(Project.id == project_id, OrgMember.user_id == user_id))).first()
    if row is None:
        raise NotFound(f"no project {project_id!r}", code="project_not_found")
    return row[0], row[1]
