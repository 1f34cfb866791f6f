"""The admin console's tests: the admin world (two orgs with every role, a platform admin,
all with passwords) on a real gateway, and a client per person."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import panel as pn
import pytest

from deepspace_lab.client import AsyncDeepSpaceClient
from deepspace_lab.dashboards import AdminSession, sign_in

from ..admin.conftest import AdminWorld, admin_world  # noqa: F401  (fixtures, shared)
from ..cli.conftest import spawn  # noqa: F401
from ..identity.conftest import PASSWORD
from ..jobs.conftest import worker_factory  # noqa: F401

T = TypeVar("T")
MODEL = "deepspace-simulated-chat"


@pytest.fixture(autouse=True)
def _panel_state() -> Any:
    yield
    pn.state.reset()


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async scenario on a fresh loop (each test's clients live and die in it)."""
    return asyncio.run(scenario())


def key_client(url: str, key: str) -> AsyncDeepSpaceClient:
    return AsyncDeepSpaceClient(base_url=url, api_key=key)


@asynccontextmanager
async def signed_in(url: str, email: str) -> AsyncIterator[AdminSession]:
    """A console session of ``email`` (signed in with the test password), closed after."""
    session = await sign_in(url, email, PASSWORD)
    try:
        yield session
    finally:
        await session.close()


def traced_chat(w: AdminWorld, key: str) -> str:
    """One billed chat completion of ``key``'s, under a trace id of its own (returned)."""
    trace = secrets.token_hex(16)
    response = httpx.post(f"{w.gw.url}/deepspace/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {key}", "traceparent": f"00-{trace}-{'1' * 16}-01"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi [sim:tokens=3]"}]})
    assert response.status_code == 200 and response.headers["X-Trace-Id"] == trace, response.text
    return trace


def ledger(w: AdminWorld, org_id: str, kind: str) -> list[dict[str, Any]]:
    """The org's ledger entries of one ``kind`` (credit, debit, hold, …), as the Admin API lists them."""
    answer = w.call("GET", "/deepspace/admin/api/transactions", key=w.platform.read_key,
                    params={"org_id": org_id, "type": kind, "limit": "200"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])
