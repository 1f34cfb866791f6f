"""Billing's CPU per request, in-process: one gateway, two pipelines, alternated.

The gateway runs on PostgreSQL (a throwaway database) with the simulated upstream, exactly as
in the tests (``tests/helpers.py``). Each round sends N sequential chat requests through the
real pipeline and N through the same pipeline with a no-op in place of ``budget_hold`` and
``usage_capture``, and reads the CPU time of the gateway's loop thread around each batch. The
difference of the medians is what billing costs per request; the rounds show the spread.

    .venv/bin/python bench/billing_cpu.py [--rounds 5] [--requests 300] [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepspace_lab.bootstrap import seed_simulated_models  # noqa: E402
from deepspace_lab.db.migrate import upgrade  # noqa: E402
from deepspace_lab.pipeline import Pipeline  # noqa: E402
from deepspace_lab.pipeline.registry import discover_steps  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.helpers import make_tenant, start_gateway  # noqa: E402

SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


class Skip:
    """Stands in for a billing step: calls on, nothing else."""

    def __init__(self, services: Any) -> None:
        pass

    async def __call__(self, ctx: Any, call_next: Any) -> None:
        await call_next(ctx)


async def _thread_cpu() -> float:
    return time.thread_time()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    name = f"dsl_billing_cpu_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{SERVER}/{name}"
        upgrade(url)
        settings = make_settings(url, Path(tempfile.mkdtemp()), audit_flush_interval_ms=50)
        asyncio.run(seed_simulated_models(settings))
        tenant = make_tenant(settings, email="bench@example.org")
        gw = start_gateway(settings, tenant)
        pipelines = {"billed": gw.runtime.pipeline, "unbilled": Pipeline(
            gw.runtime.services, registry=dict(discover_steps(), budget_hold=Skip, usage_capture=Skip))}
        body = {"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 128, "stream": args.stream}
        headers = {"Authorization": f"Bearer {tenant.api_key}"}
        cpu: dict[str, list[float]] = {k: [] for k in pipelines}
        with httpx.Client(timeout=30) as client:
            def batch(n: int) -> float:
                start = gw.loop.run(_thread_cpu())
                for _ in range(n):
                    assert client.post(gw.base_url + "/chat/completions", json=body, headers=headers).status_code == 200
                return (gw.loop.run(_thread_cpu()) - start) / n * 1000

            for rnd in range(args.rounds):
                for label, pipeline in pipelines.items():
                    gw.runtime._pipeline = pipeline
                    batch(20)  # warm-up
                    cpu[label].append(batch(args.requests))
                print(f"round {rnd + 1}: billed {cpu['billed'][-1]:.2f} ms, unbilled {cpu['unbilled'][-1]:.2f} ms "
                      f"of loop-thread CPU per request", flush=True)
        gw.close()
        deltas = [b - u for b, u in zip(cpu["billed"], cpu["unbilled"], strict=True)]
        print(f"billing adds {statistics.median(cpu['billed']) - statistics.median(cpu['unbilled']):.2f} ms "
              f"(median); per round {', '.join(f'{d:.2f}' for d in deltas)}; load {os.getloadavg()[0]:.1f}")
    finally:
        with psycopg.connect(SERVER + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
