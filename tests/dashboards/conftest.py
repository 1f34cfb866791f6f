"""The admin console's tests: the admin world (two orgs with every role, a platform admin,
all with passwords) on a real gateway, and a client per person."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import panel as pn
import pytest

from deepspace_lab.client import AsyncDeepSpaceClient

from ..admin.conftest import admin_world  # noqa: F401  (fixtures, shared)
from ..cli.conftest import spawn  # noqa: F401
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
