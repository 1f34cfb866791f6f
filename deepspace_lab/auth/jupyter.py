"""Jupyter users → DeepSpace users (DESIGN §2, §12.4).

- Single-user mode: the Jupyter server's user is the platform admin made by ``init``.
- Remote mode: a Jupyter(Hub) user name maps to the DeepSpace user with external id
  ``jupyter:<name>``, created on first use as a member of the configured org with the
  configured role.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import InvalidRequest, NotFound
from .accounts import create_user
from .models import Org, OrgMember, User
from .permissions import check_role

_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")


async def single_user(session: AsyncSession) -> User:
    user = (await session.execute(select(User).where(User.is_platform_admin.is_(True), User.status == "active")
                                  .order_by(User.created_at).limit(1))).scalar_one_or_none()
    if user is None:
        raise NotFound("no admin user yet: run `deepspace-lab init`", code="not_initialised")
    return user


async def map_jupyter_user(session: AsyncSession, *, name: str, org_id: str, role: str) -> User:
    """The DeepSpace user for Jupyter user ``name``, made on first use (caller commits)."""
    if not _NAME.match(name):
        raise InvalidRequest(f"unusable Jupyter user name {name!r}", code="invalid_value", param="name")
    check_role(role)
    external = f"jupyter:{name}"
    user = (await session.execute(select(User).where(User.external_id == external))).scalar_one_or_none()
    if user is not None:
        return user
    if await session.get(Org, org_id) is None:
        raise NotFound(f"the configured org {org_id!r} does not exist", code="org_not_found")
    local = re.sub(r"[^A-Za-z0-9._+-]", "-", name)
    user = await create_user(session, email=f"{local}@jupyter.invalid", name=name, external_id=external)
    session.add(OrgMember(id=f"mem_{user.id[4:]}", org_id=org_id, user_id=user.id, role=role))
    await session.flush()
    return user
