"""Engines: async for services (aiosqlite / psycopg 3), sync for migrations.

URLs may be given plainly (``sqlite:///path``, ``postgresql://user@host/db``); the driver is
chosen here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ..config import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 15_000
#: PostgreSQL pool connections older than this are replaced at checkout: below the idle cut-off
#: of common NATs and load balancers (4-6 min), so a silently dropped connection is rarely met.
POOL_RECYCLE_S = 240


def _driver_url(url: str, *, use_async: bool) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        driver = "aiosqlite" if use_async else "pysqlite"
    elif backend == "postgresql":
        driver = "psycopg_async" if use_async else "psycopg"
    else:
        raise ConfigError(
            f"unsupported database {backend!r}: use sqlite:///path or postgresql://...",
            code="unsupported_database",
        )
    return parsed.set(drivername=f"{backend}+{driver}").render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _prepare_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def make_sync_engine(url: str, **kwargs: Any) -> Engine:
    _prepare_sqlite_dir(url)
    engine = create_engine(_driver_url(url, use_async=False), **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_async_engine(url: str, **kwargs: Any) -> AsyncEngine:
    _prepare_sqlite_dir(url)
    if make_url(url).get_backend_name() == "postgresql":
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        # No pre-ping: it costs a round trip on every checkout. A connection found dead instead
        # fails its statement, and SQLAlchemy then invalidates the whole pool (every connection
        # opened before is replaced at its next checkout): after a server restart the requests
        # in flight fail, not a stream of later ones. The ledger retries such an operation once
        # (billing._tx), and the hot statements run on raw pools that do the same (db.rawpool).
        kwargs.setdefault("pool_pre_ping", False)
        kwargs.setdefault("pool_recycle", POOL_RECYCLE_S)
    engine = create_async_engine(_driver_url(url, use_async=True), **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class AppSession(AsyncSession):
    """An ``AsyncSession`` whose ``async with`` exit costs nothing when nothing was done with it.

    SQLAlchemy closes a session on exit in a task of its own, shielded, through a greenlet:
    about 30 µs, which a session that never began a transaction nor holds any object does
    not need (close would change nothing). The ledger's operations take such a session and
    only read its engine, once or twice per request (``bench/ledger``).
    """

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        if self.in_transaction() or self.identity_map or self.new or self.deleted:
            await super().__aexit__(type_, value, traceback)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, class_=AppSession)
