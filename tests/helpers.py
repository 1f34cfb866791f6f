"""Test helpers: a background event-loop thread, an in-process gateway, factories."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from deepspace_lab.auth import create_api_key, create_org, create_project, create_user
from deepspace_lab.billing import credit_wallet
from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine
from deepspace_lab.runtime import Runtime
from deepspace_lab.server_extension.lifecycle import GatewayLifecycle
from deepspace_lab.server_extension.standalone import make_gateway_server

T = TypeVar("T")
TEST_SECRET = "test-secret-key-not-for-production-0123456789"


class LoopThread:
    """An asyncio loop running in a daemon thread; ``run`` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Tenant:
    user_id: str
    org_id: str
    project_id: str
    api_key: str
    api_key_id: str


@dataclass
class Gateway:
    """A running in-process gateway (its own loop thread) and what tests need around it."""

    settings: Settings
    url: str
    loop: LoopThread
    runtime: Runtime
    db: Engine
    tenant: Tenant
    _server: HTTPServer | None = field(default=None, repr=False)
    _lifecycle: GatewayLifecycle | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return self.url + "/deepspace/v1"

    def audit_rows(self, **where: Any) -> list[dict[str, Any]]:
        clauses = " AND ".join(f"{k} = :{k}" for k in where) or "1=1"
        with self.db.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                text(f"SELECT * FROM audit_logs WHERE {clauses} ORDER BY id"), where)]
        for row in rows:  # JSON comes back as text from SQLite through a raw query
            if isinstance(row["detail"], str):
                row["detail"] = json.loads(row["detail"])
        return rows

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None and self._lifecycle is not None
            self._server.stop()
            await self._server.close_all_connections()
            await self._lifecycle.stop()

        self.loop.run(stop())
        self.loop.stop()
        self.db.dispose()


#: What a test tenant's wallet starts with: a million credits, so only billing tests ever run dry.
TENANT_CREDIT_MICROS = 10**12


def make_tenant(settings: Settings, *, email: str, scopes: tuple[str, ...] = ("chat",),
                credit_micros: int = TENANT_CREDIT_MICROS, password: str | None = None) -> Tenant:
    async def create() -> Tenant:
        engine = make_async_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                user = await create_user(session, email=email, password=password)
                org = await create_org(session, name=f"org of {email}", owner=user)
                project = await create_project(session, org_id=org.id, name="p")
                key, plaintext = await create_api_key(session, secret_key=TEST_SECRET, org_id=org.id,
                                                      project_id=project.id, user_id=user.id, scopes=scopes)
                await session.commit()
                if credit_micros:
                    await credit_wallet(session, org_id=org.id, amount_micros=credit_micros, reason="test credit",
                                        actor="tests")
                return Tenant(user.id, org.id, project.id, plaintext, key.id)
        finally:
            await engine.dispose()

    return asyncio.run(create())


def start_gateway(settings: Settings, tenant: Tenant) -> Gateway:
    loop = LoopThread()
    runtime = Runtime(settings)
    lifecycle = GatewayLifecycle(runtime)

    async def start() -> tuple[HTTPServer, int]:
        await lifecycle.start()
        sockets = bind_sockets(0, "127.0.0.1")
        server = make_gateway_server(runtime)
        server.add_sockets(sockets)
        return server, sockets[0].getsockname()[1]

    server, port = loop.run(start())
    return Gateway(settings=settings, url=f"http://127.0.0.1:{port}", loop=loop, runtime=runtime,
                   db=make_sync_engine(settings.database_url), tenant=tenant, _server=server, _lifecycle=lifecycle)


def count(db: Engine, table: str, **where: Any) -> int:
    clauses = " AND ".join(f"{k} = :{k}" for k in where) or "1=1"
    with db.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE {clauses}"), where).scalar_one())


__all__ = ["LoopThread", "Gateway", "Tenant", "make_tenant", "start_gateway", "count"]


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 15) -> None:
    """Poll ``condition`` until it holds (a state another process or thread reaches)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
