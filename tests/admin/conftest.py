"""The admin world: the identity tests' two orgs (every role in each) plus a platform admin,
with an ``admin``-scoped key, an ``admin-read``-scoped key and a password to sign in with."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from deepspace_lab.auth import create_api_key, create_org, create_project, create_user
from deepspace_lab.cli import main
from deepspace_lab.db import make_async_engine, make_sessionmaker

from ..helpers import TEST_SECRET, Gateway
from ..identity.conftest import PASSWORD, Org, Person, World, _make_org

ADMIN_EMAIL = "platform-admin@example.org"


@dataclass
class Platform:
    user_id: str
    email: str
    key: str  # scopes: admin (and chat)
    read_key: str  # scope: admin-read only


@dataclass
class AdminWorld(World):
    platform: Platform

    def token(self, person: Person | str) -> str:
        """A signed-in user's access token (a JWT)."""
        email = person if isinstance(person, str) else person.email
        return str(self.login(email)["access_token"])


async def _make_platform_admin(url: str) -> Platform:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            user = await create_user(session, email=ADMIN_EMAIL, password=PASSWORD, is_platform_admin=True)
            org = await create_org(session, name="operators", owner=user)
            project = await create_project(session, org_id=org.id, name="ops")
            _, key = await create_api_key(session, secret_key=TEST_SECRET, org_id=org.id, project_id=project.id,
                                          user_id=user.id, scopes=("admin", "chat"))
            _, read_key = await create_api_key(session, secret_key=TEST_SECRET, org_id=org.id,
                                               project_id=project.id, user_id=user.id, scopes=("admin-read",))
            await session.commit()
            return Platform(user.id, user.email, key, read_key)
    finally:
        await engine.dispose()


@pytest.fixture
def admin_world(gateway: Gateway) -> AdminWorld:
    url = gateway.settings.database_url
    a: Org = asyncio.run(_make_org(url, "a"))
    b: Org = asyncio.run(_make_org(url, "b"))
    return AdminWorld(gateway, a, b, asyncio.run(_make_platform_admin(url)))


Cli = Callable[..., tuple[int, Any]]


@pytest.fixture
def cli(admin_world: AdminWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``deepspace-lab … --json`` in this process, on the admin world's database."""
    for name in [n for n in os.environ if n.startswith("DEEPSPACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DEEPSPACE_DATABASE_URL", admin_world.gw.settings.database_url)
    monkeypatch.setenv("DEEPSPACE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("DEEPSPACE_DATA_DIR", str(admin_world.gw.settings.data_dir))
    monkeypatch.setattr("deepspace_lab.cli.configure_logging", lambda **_: None)  # keep pytest's handlers

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--json"])
        return code, json.loads(capsys.readouterr().out)

    return run


@pytest.fixture
def admin_live(admin_world: AdminWorld) -> dict[str, object]:
    """What schemathesis calls the gateway with: its URL and the platform admin's key."""
    return {"url": admin_world.gw.url, "headers": {"Authorization": f"Bearer {admin_world.platform.key}"}}
