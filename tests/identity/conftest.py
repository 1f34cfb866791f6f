"""A small world of two orgs with users of every role, their keys and passwords."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from deepspace_lab.auth import add_member, create_api_key, create_org, create_project, create_user
from deepspace_lab.billing import credit_wallet
from deepspace_lab.db import make_async_engine, make_sessionmaker

from ..helpers import TENANT_CREDIT_MICROS, TEST_SECRET, Gateway

PASSWORD = "correct horse battery"
ALL_SCOPES = ("chat", "knowledge", "workflows", "account")


@dataclass
class Person:
    email: str
    user_id: str
    role: str
    key: str
    key_id: str


@dataclass
class Org:
    id: str
    project_id: str
    people: dict[str, Person] = field(default_factory=dict)


@dataclass
class World:
    gw: Gateway
    a: Org
    b: Org

    def call(self, method: str, path: str, *, key: str | None = None, token: str | None = None,
             **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key or token:
            headers["Authorization"] = f"Bearer {key or token}"
        url = self.gw.url + path if path.startswith("/deepspace") else self.gw.url + "/deepspace/api" + path
        return httpx.request(method, url, headers=headers, timeout=30, **kwargs)

    def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.call("POST", "/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return dict(response.json())


async def _make_org(url: str, tag: str) -> Org:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            owner = await create_user(session, email=f"owner-{tag}@example.org", password=PASSWORD)
            org_row = await create_org(session, name=f"org {tag}", owner=owner)
            project = await create_project(session, org_id=org_row.id, name="main")
            org = Org(id=org_row.id, project_id=project.id)
            users = {"owner": owner}
            for role in ("admin", "member", "viewer"):
                user = await create_user(session, email=f"{role}-{tag}@example.org", password=PASSWORD)
                await add_member(session, org_id=org.id, email=user.email, role=role, acting_role="owner")
                users[role] = user
            for role, user in users.items():
                key, plaintext = await create_api_key(session, secret_key=TEST_SECRET, org_id=org.id,
                                                      project_id=project.id, user_id=user.id, scopes=ALL_SCOPES)
                org.people[role] = Person(user.email, user.id, role, plaintext, key.id)
            await session.commit()
            await credit_wallet(session, org_id=org.id, amount_micros=TENANT_CREDIT_MICROS, reason="test credit",
                                actor="tests")
            return org
    finally:
        await engine.dispose()


@pytest.fixture
def world(gateway: Gateway) -> World:
    url = gateway.settings.database_url
    return World(gateway, asyncio.run(_make_org(url, "a")), asyncio.run(_make_org(url, "b")))
