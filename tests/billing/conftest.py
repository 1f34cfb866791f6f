"""Billing fixtures: a ledger harness on the backend's database, wallet factories, and the
autouse check that every ledger invariant still holds after each billing test."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.auth import create_org, create_user
from deepspace_lab.billing import WalletView, check_invariants, credit_wallet, get_wallet, set_overdraft_limit
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.db.migrate import upgrade

T = TypeVar("T")


class Ledger:
    """Runs ledger operations, each in a fresh session, on a private event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.engine = make_async_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def call(self, op: Callable[..., Coroutine[Any, Any, T]], **kwargs: Any) -> T:
        async with self.sessions() as session:
            return await op(session, **kwargs)

    def do(self, op: Callable[..., Coroutine[Any, Any, T]], **kwargs: Any) -> T:
        """``op(session, **kwargs)`` in a new session."""
        return self.run(self.call(op, **kwargs))

    async def new_org(self) -> str:
        async with self.sessions() as session:
            user = await create_user(session, email=f"{secrets.token_hex(6)}@example.org")
            org = await create_org(session, name="org", owner=user)
            await session.commit()
            return org.id

    async def new_wallet(self, *, balance_micros: int = 0, overdraft_micros: int = 0) -> str:
        org_id = await self.new_org()
        if balance_micros:
            await self.call(credit_wallet, org_id=org_id, amount_micros=balance_micros, reason="test funds",
                            actor="test")
        if overdraft_micros:
            await self.call(set_overdraft_limit, org_id=org_id, limit_micros=overdraft_micros)
        return org_id

    def wallet(self, org_id: str) -> WalletView:
        async def read(session: AsyncSession) -> WalletView:
            return await get_wallet(session, org_id)

        return self.do(read)

    def balances(self, org_id: str) -> tuple[int, int]:
        """(balance, frozen) of the org's wallet."""
        wallet = self.wallet(org_id)
        return wallet.balance_micros, wallet.frozen_micros

    @staticmethod
    async def _finish_abandoned_operations() -> None:
        """Operations whose caller gave up still run to completion: let them end first."""
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    def close(self) -> None:
        self.run(self._finish_abandoned_operations())
        self.run(self.engine.dispose())
        self.loop.close()


async def assert_invariants(url: str) -> None:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            report = await check_invariants(session)
    finally:
        await engine.dispose()
    assert report.ok, [p.to_dict() for p in report.problems]


@pytest.fixture
def pg_url(pg_databases: Any) -> str:
    """A migrated PostgreSQL database (for the PostgreSQL-only concurrency tests)."""
    url: str = pg_databases.create()
    upgrade(url)
    return url


@pytest.fixture(autouse=True)
def _ledger_invariants_hold_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every billing test, every ledger invariant holds on every database it used."""
    urls = [request.getfixturevalue(name) for name in ("db_url", "pg_url") if name in request.fixturenames]
    yield
    for url in urls:
        asyncio.run(assert_invariants(url))


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    harness = Ledger(db_url)
    yield harness
    harness.close()


@pytest.fixture
def make_wallet(ledger: Ledger) -> Callable[..., str]:
    """``make_wallet(balance_micros=…, overdraft_micros=…)`` → the id of a new org with that wallet."""
    return lambda **kwargs: ledger.run(ledger.new_wallet(**kwargs))
