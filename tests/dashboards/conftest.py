"""The admin console's tests: the admin world (two orgs with every role, a platform admin,
all with passwords) on a real gateway, and a client per person."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import panel as pn
import pytest

from deepspace_lab.client import AsyncDeepSpaceClient
from deepspace_lab.dashboards import AdminSession, sign_in

from ..admin.conftest import admin_world  # noqa: F401  (fixtures, shared)
from ..cli.conftest import spawn  # noqa: F401
from ..identity.conftest import PASSWORD
from ..jobs.conftest import worker_factory  # noqa: F401

T = TypeVar("T")


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
