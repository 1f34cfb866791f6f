"""Sessions from ``make_sessionmaker`` skip SQLAlchemy's close on exit only when it would change
nothing: a session that began a transaction or holds objects is closed as before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth.models import Org
from deepspace_lab.db import make_async_engine, make_sessionmaker


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[AsyncSession]:
    """The sessions SQLAlchemy's close ran for."""
    closed: list[AsyncSession] = []
    close = AsyncSession.close

    async def recording(self: AsyncSession) -> None:
        closed.append(self)
        await close(self)

    monkeypatch.setattr(AsyncSession, "close", recording)
    return closed


def test_only_a_session_with_something_to_close_is_closed(db_url: str, closes: list[AsyncSession]) -> None:
    async def scenario() -> dict[str, Any]:
        engine = make_async_engine(db_url)
        sessions = make_sessionmaker(engine)
        seen: dict[str, Any] = {}
        try:
            async with sessions() as untouched:
                assert untouched.bind is engine  # what a ledger operation reads of it
            seen["untouched"] = untouched
            async with sessions() as reader:
                await reader.execute(text("SELECT 1"))  # a transaction began and is still open
            seen["reader"] = reader
            org = Org(id="o1", name="o", slug="o")
            async with sessions() as adder:
                adder.add(org)  # pending, never flushed
            seen["adder"], seen["org_released"] = adder, inspect(org).session is None
            async with sessions() as writer:
                writer.add(Org(id="o2", name="o", slug="o2"))
                await writer.commit()  # no transaction left, but it holds the object
                assert (await writer.execute(select(Org.id))).scalars().all() == ["o2"]
            seen["writer"] = writer
            seen["checked_out"] = engine.pool.checkedout()  # type: ignore[attr-defined]
        finally:
            await engine.dispose()
        return seen

    seen = asyncio.run(scenario())
    assert seen["untouched"] not in closes
    assert [seen["reader"], seen["adder"], seen["writer"]] == closes
    assert seen["org_released"] and seen["checked_out"] == 0
