"""The raw psycopg pool of the hot statements (PostgreSQL): a lost connection is replaced and
its statement sent once more, never twice; a pool serves one event loop; disposing of the
engine closes its pools. Server restarts are played by terminating the backends
(``pg_terminate_backend`` with a timeout waits until they are gone): no sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from deepspace_lab.db import make_async_engine
from deepspace_lab.db.rawpool import PoolClosedError, RawPool, conninfo_of, raw_pool_for


@pytest.fixture
def pg_url(pg_databases: Any) -> str:
    url: str = pg_databases.create()
    with psycopg.connect(conninfo_of(url), autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE attempts")
        conn.execute("CREATE TABLE refs (ref text PRIMARY KEY)")
    return url


def terminate_backends(url: str) -> int:
    """What a server restart does to every connection of the database: end it (and wait)."""
    with psycopg.connect(conninfo_of(url), autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[psycopg.AsyncConnection[Any]]:
    """Every psycopg connection the pools open, to see that they get closed."""
    connections: list[psycopg.AsyncConnection[Any]] = []
    connect = psycopg.AsyncConnection.connect

    async def recording(*args: Any, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        conn = await connect(*args, **kwargs)
        connections.append(conn)
        return conn

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", recording)
    return connections


def test_a_lost_connection_is_replaced_and_the_statement_sent_once_more(
        pg_url: str, loop: asyncio.AbstractEventLoop, opened: list[Any]) -> None:
    async def scenario() -> None:
        pool = RawPool(conninfo_of(pg_url), size=3)
        first = {pid for (pid,) in await asyncio.gather(*(pool.fetchone("SELECT pg_backend_pid()")
                                                         for _ in range(3)))}
        assert pool.open_connections == 3 and len(first) == 3
        assert terminate_backends(pg_url) == 3
        pid, attempt = await pool.fetchone("SELECT pg_backend_pid(), nextval('attempts')")
        assert attempt == 1  # sent once more, and only once, on a new connection
        assert pid not in first
        assert pool.open_connections == 1  # the idle ones, as old as the lost one, went too
        assert all(conn.closed for conn in opened[:3])
        assert (await pool.fetchone("SELECT pg_backend_pid()"))[0] == pid
        pool.close()

    loop.run_until_complete(scenario())


def test_a_statement_lost_twice_raises_after_one_more_attempt(pg_url: str, loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        pool = RawPool(conninfo_of(pg_url), size=2)
        with pytest.raises(psycopg.OperationalError):
            await pool.fetchone("SELECT nextval('attempts'), pg_terminate_backend(pg_backend_pid())")
        assert await pool.fetchone("SELECT last_value FROM attempts") == (2,)  # the first try and one more
        pool.close()

    loop.run_until_complete(scenario())


def test_a_statement_error_keeps_the_connection(pg_url: str, loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        pool = RawPool(conninfo_of(pg_url), size=2)
        pid = (await pool.fetchone("SELECT pg_backend_pid()"))[0]
        with pytest.raises(psycopg.errors.DivisionByZero):
            await pool.fetchone("SELECT 1 / 0")
        assert await pool.fetchone("INSERT INTO refs VALUES ('a') RETURNING ref") == ("a",)
        with pytest.raises(psycopg.errors.UniqueViolation):  # how the ledger learns of a replay
            await pool.fetchone("INSERT INTO refs VALUES ('a') RETURNING ref")
        assert pool.open_connections == 1
        assert (await pool.fetchone("SELECT pg_backend_pid()"))[0] == pid
        pool.close()

    loop.run_until_complete(scenario())


def test_a_cancelled_statement_closes_its_connection(pg_url: str, loop: asyncio.AbstractEventLoop,
                                                     opened: list[Any]) -> None:
    async def scenario() -> None:
        pool = RawPool(conninfo_of(pg_url), size=1)
        assert await pool.fetchone("SELECT 1") == (1,)
        with psycopg.connect(conninfo_of(pg_url), autocommit=True) as admin:
            admin.execute("SELECT pg_advisory_lock(7)")
            task = asyncio.ensure_future(pool.fetchone("SELECT pg_advisory_lock(7)"))  # waits on the admin
            while pool.idle_connections:
                await asyncio.sleep(0)  # until the task has taken the connection
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert pool.open_connections == 0 and opened[0].closed  # never handed out half-done
        assert await pool.fetchone("SELECT 1") == (1,)
        pool.close()

    loop.run_until_complete(scenario())


def test_each_event_loop_has_its_own_pool(pg_url: str) -> None:
    engine = make_async_engine(pg_url)

    async def use() -> RawPool:
        pool = raw_pool_for(engine)
        assert await pool.fetchone("SELECT 1") == (1,)
        return pool

    first, second, third = (asyncio.new_event_loop() for _ in range(3))
    try:
        a = first.run_until_complete(use())
        b = second.run_until_complete(use())
        assert a is not b and a.loop is first and b.loop is second
        assert first.run_until_complete(use()) is a  # the same loop gets the same pool back
        with pytest.raises(RuntimeError, match="another event loop"):
            second.run_until_complete(a.fetchone("SELECT 1"))  # never a connection across loops
        assert a.open_connections == 1 and not a.closed
        first.close()
        c = third.run_until_complete(use())  # a new pool: the closed loop's is closed on the way
        assert a.closed and a.open_connections == 0 and not b.closed and not c.closed
        second.run_until_complete(engine.dispose())  # every loop's pools go with the engine
        assert b.closed and c.closed and b.open_connections == c.open_connections == 0
    finally:
        for loop in (first, second, third):
            loop.close()


def test_disposing_of_the_engine_closes_its_pools(pg_url: str, loop: asyncio.AbstractEventLoop,
                                                  opened: list[Any]) -> None:
    async def scenario() -> None:
        engine = make_async_engine(pg_url)
        pool = raw_pool_for(engine)
        assert pool.size == 10  # the engine's pool size
        await asyncio.gather(*(pool.fetchone("SELECT pg_backend_pid()") for _ in range(2)))
        with psycopg.connect(conninfo_of(pg_url), autocommit=True) as admin:
            admin.execute("SELECT pg_advisory_lock(9)")
            busy = asyncio.ensure_future(pool.fetchone("SELECT pg_advisory_lock(9)"))
            while pool.idle_connections == 2:
                await asyncio.sleep(0)  # until the statement has its connection
            await engine.dispose()
            assert pool.closed and pool.open_connections == 1  # the busy one is left to finish
            assert sorted(conn.closed for conn in opened) == [False, True]
            with pytest.raises(PoolClosedError):
                await pool.fetchone("SELECT 1")
            admin.execute("SELECT pg_advisory_unlock(9)")
            await busy
        assert pool.open_connections == 0 and all(conn.closed for conn in opened)  # closed when it came back
        again = raw_pool_for(engine)  # the engine lives on, with a new pool
        assert again is not pool and await again.fetchone("SELECT 1") == (1,)
        await engine.dispose()
        assert again.closed and all(conn.closed for conn in opened)

    loop.run_until_complete(scenario())


def test_a_connection_idle_too_long_is_replaced(pg_url: str, loop: asyncio.AbstractEventLoop,
                                                opened: list[Any]) -> None:
    async def scenario() -> None:
        pool = RawPool(conninfo_of(pg_url), size=2, max_idle_s=-1)  # every idle connection is too old
        first = await pool.fetchone("SELECT pg_backend_pid()")
        second = await pool.fetchone("SELECT pg_backend_pid()")
        assert first != second and pool.open_connections == 1 and opened[0].closed
        pool.max_idle_s = 3600
        assert await pool.fetchone("SELECT pg_backend_pid()") == second
        pool.close()

    loop.run_until_complete(scenario())
