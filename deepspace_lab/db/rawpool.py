"""A small pool of raw psycopg connections for the few hottest statements.

Some statements run on every request: the API key read, and the ledger's hold and capture.
Through SQLAlchemy's async layer each costs much more CPU than the statement itself (pool
checkout and check-in, pre-ping, autocommit toggling, greenlet hops); on a plain psycopg
``AsyncConnection`` in autocommit, sent as a prepared statement, it is one round trip and
about 150 µs of CPU (``bench/ledger``). :class:`RawPool` keeps a few such connections:

- autocommit, so a statement is its own transaction and a connection is always idle
  between statements: no BEGIN/COMMIT round trips, nothing to reset on check-in;
- prepared statements (``prepare=True``), per connection, on first use;
- at most ``size`` connections, opened on demand, the most recently used first; one idle
  for longer than ``max_idle_s`` is replaced rather than used (a NAT or proxy may have cut
  it silently);
- bound to one event loop (psycopg's async connections are): used from another loop it
  raises ``RuntimeError`` instead of handing a connection across;
- a connection found lost (server restart, terminated backend, network) is discarded with
  every idle one (as old as it), and the statement is sent once more on a newly opened
  connection, once. So only statements that are safe to repeat run here: a read, or a
  write that is idempotent by its own keys (the ledger's, by ``(ref, type)``);
- after a statement error that left the connection idle (a constraint fired), the
  connection goes back to the pool; after anything else (cancellation included) it is
  closed.

:func:`raw_pool_for` gives each :class:`AsyncEngine` (PostgreSQL) one pool per event loop,
created lazily and closed when the engine is disposed (``engine.dispose()``, which
``Runtime.close`` does): a listener on the engine's ``engine_disposed`` event. A pool whose
loop has been closed is closed when the next pool of that engine is made.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import AsyncRowFactory
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("deepspace_lab.db")

Params = Sequence[Any] | Mapping[str, Any] | None
#: Raw connections per engine and loop when its SQLAlchemy pool has no ``size()``.
DEFAULT_SIZE = 10
#: At most this many, whatever the engine's pool size: enough to keep two cores busy and the
#: commits grouped, few enough to stay far below ``max_connections`` next to the engine's pool.
MAX_SIZE = 16
#: A connection idle longer than this is replaced rather than used: below the idle cut-off of
#: common NATs and load balancers (4-6 min), like the engine's ``pool_recycle``.
MAX_IDLE_S = 240.0


class PoolClosedError(RuntimeError):
    pass


def conninfo_of(url: URL | str) -> str:
    """A libpq connection string from a SQLAlchemy URL (any PostgreSQL driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class RawPool:
    """Up to ``size`` autocommit psycopg connections on one event loop (see the module doc)."""

    def __init__(self, conninfo: str, *, size: int, row_factory: AsyncRowFactory[Any] | None = None,
                 max_idle_s: float = MAX_IDLE_S) -> None:
        if size < 1:
            raise ValueError("a raw pool needs at least one connection")
        self.size = size
        self.max_idle_s = max_idle_s
        self.closed = False
        self._conninfo = conninfo
        self._row_factory = row_factory
        self._slots = asyncio.Semaphore(size)
        #: (connection, when it came back), the most recently used last
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []
        self._open = 0  # idle + checked out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()

    @property
    def open_connections(self) -> int:
        """Connections open now, idle or checked out."""
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this pool is bound to (None until its first use)."""
        return self._loop

    async def fetchone(self, query: str, params: Params = None) -> Any:
        """Run ``query`` (prepared, autocommit; a statement that returns rows) and return its
        first row, or None.

        A connection lost on the way is replaced and the statement sent once more; database
        errors are raised as psycopg raises them.
        """
        conn = await self._acquire(fresh=False)
        try:
            return await self._fetchone(conn, query, params)
        except psycopg.OperationalError as exc:
            if not conn.closed:
                raise
            log.warning("a raw connection was lost (%s); the statement goes once more on a new one",
                        str(exc).strip() or type(exc).__name__)
        conn = await self._acquire(fresh=True)
        return await self._fetchone(conn, query, params)

    async def _fetchone(self, conn: psycopg.AsyncConnection[Any], query: str, params: Params) -> Any:
        keep = False
        try:
            cursor = await conn.execute(query, params, prepare=True)
            row = await cursor.fetchone()
            keep = True
            return row
        except psycopg.Error:
            if conn.closed:
                await self._lost()
            else:  # a statement error: in autocommit nothing is left open, unless it broke mid-way
                keep = conn.info.transaction_status == pq.TransactionStatus.IDLE
            raise
        finally:
            await self._release(conn, keep=keep)

    async def _acquire(self, *, fresh: bool) -> psycopg.AsyncConnection[Any]:
        """A connection, with a slot held until :meth:`_release`. ``fresh``: a newly opened one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError("this raw pool belongs to another event loop")
            self._loop = loop
        await self._slots.acquire()
        try:
            if self.closed:
                raise PoolClosedError("the raw pool is closed")
            if self._idle and not fresh:
                conn, since = self._idle.pop()
                if loop.time() - since <= self.max_idle_s:
                    return conn
                await self._drop(conn)  # idle too long: a NAT or proxy may have cut it silently
            elif self._idle and self._open >= self.size:
                await self._drop(self._idle.pop(0)[0])  # the least recently used makes room
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                         row_factory=self._row_factory)
            self._open += 1
            return conn
        except BaseException:
            self._slots.release()
            raise

    async def _release(self, conn: psycopg.AsyncConnection[Any], *, keep: bool) -> None:
        try:
            if keep and not self.closed:
                self._idle.append((conn, asyncio.get_running_loop().time()))
            else:
                await self._drop(conn)
        finally:
            self._slots.release()

    async def _drop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._open -= 1
        await conn.close()

    async def _lost(self) -> None:
        """A connection was lost: the idle ones are as old as it (a server restart ends them
        all), so they go too."""
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await self._drop(conn)

    def close(self) -> None:
        """Close the idle connections now, and each checked-out one when it comes back.

        Synchronous (closing a psycopg connection does not wait on anything), so it also runs
        from a synchronous ``engine_disposed`` listener and for a loop that is not running. In
        a process forked from the one that opened them, the connections are only dropped:
        closing would end the parent's sessions.
        """
        self.closed = True
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        if os.getpid() != self._pid:
            return
        for conn, _ in idle:
            conn.pgconn.finish()  # what AsyncConnection.close() does, without the coroutine


# --- one pool per engine and event loop ------------------------------------------------------

_POOLS: weakref.WeakKeyDictionary[Engine, dict[asyncio.AbstractEventLoop, RawPool]] = weakref.WeakKeyDictionary()


def raw_pool_for(engine: AsyncEngine) -> RawPool:
    """The running loop's raw pool for ``engine`` (PostgreSQL), created on first use with as
    many connections as the engine's pool size (at most :data:`MAX_SIZE`)."""
    loop = asyncio.get_running_loop()
    pools = _POOLS.get(engine.sync_engine)
    if pools is not None:
        pool = pools.get(loop)
        if pool is not None:
            return pool
    return _new_pool(engine.sync_engine, loop)


def _new_pool(engine: Engine, loop: asyncio.AbstractEventLoop) -> RawPool:
    if engine.dialect.name != "postgresql":
        raise RuntimeError(f"raw pools are for PostgreSQL engines, not {engine.dialect.name}")
    pools = _POOLS.get(engine)
    if pools is None:
        pools = _POOLS[engine] = {}
        if not event.contains(engine, "engine_disposed", close_raw_pools):
            event.listen(engine, "engine_disposed", close_raw_pools)
    for other in [other for other in pools if other.is_closed()]:
        pools.pop(other).close()  # its loop is gone: nobody can use or close them any more
    size = getattr(engine.pool, "size", None)
    pool = RawPool(conninfo_of(engine.url), size=min(size() if callable(size) else DEFAULT_SIZE, MAX_SIZE))
    pools[loop] = pool
    return pool


def close_raw_pools(engine: Engine | AsyncEngine) -> None:
    """Close every raw pool of ``engine`` (on every loop); the engine's next use opens new ones.
    Runs on ``engine.dispose()``."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    for pool in _POOLS.pop(sync, {}).values():
        pool.close()
