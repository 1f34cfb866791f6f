"""What the in-process CPU benchmarks share: a gateway on a throwaway PostgreSQL database
(simulated upstream, as in the tests), a no-op step to stand in for the steps measured, and
the gateway loop thread's CPU per request over a batch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepspace_lab.bootstrap import seed_simulated_models  # noqa: E402
from deepspace_lab.db.migrate import upgrade  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.helpers import Gateway, make_tenant, start_gateway  # noqa: E402

SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


class Skip:
    """Stands in for a pipeline step: calls on, nothing else."""

    def __init__(self, services: Any) -> None:
        pass

    async def __call__(self, ctx: Any, call_next: Any) -> None:
        await call_next(ctx)


@contextlib.contextmanager
def throwaway_gateway(label: str) -> Iterator[Gateway]:
    """An in-process gateway with a credited tenant on a new database, dropped afterwards."""
    name = f"dsl_{label}_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{SERVER}/{name}"
        upgrade(url)
        settings = make_settings(url, Path(tempfile.mkdtemp()), audit_flush_interval_ms=50)
        asyncio.run(seed_simulated_models(settings))
        gw = start_gateway(settings, make_tenant(settings, email="bench@example.org"))
        try:
            yield gw
        finally:
            gw.close()
    finally:
        with psycopg.connect(SERVER + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _thread_cpu() -> float:
    return time.thread_time()


def cpu_ms_per_request(gw: Gateway, client: httpx.Client, body: dict[str, Any], n: int) -> float:
    """Send ``n`` sequential chat requests; the gateway loop thread's CPU per request (ms)."""
    headers = {"Authorization": f"Bearer {gw.tenant.api_key}"}
    start = gw.loop.run(_thread_cpu())
    for _ in range(n):
        assert client.post(gw.base_url + "/chat/completions", json=body, headers=headers).status_code == 200
    return (gw.loop.run(_thread_cpu()) - start) / n * 1000
