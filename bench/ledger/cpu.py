"""CPU of the Python side per ledger operation, layer by layer (see README.md).

    .venv/bin/python bench/ledger/cpu.py                 # ~1 min
    .venv/bin/python bench/ledger/cpu.py --batches 60 --batch 100

One operation at a time (no contention), on a throwaway database with
``synchronous_commit=off`` so that the wait is not fsync. Each layer runs hold+capture pairs
in batches, the layers interleaved batch by batch so that a noisy neighbour weighs on all of
them alike; the figure is this process's CPU time (user + system) per operation, the median
and the 10th percentile of the batches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from deepspace_lab.billing import _pg, capture_hold, place_hold
from deepspace_lab.billing._tx import run_statement
from deepspace_lab.db import make_async_engine, make_sessionmaker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import create_database, drop_database


async def measure(url: str, price_id: int, *, batches: int, batch: int) -> dict[str, list[float]]:
    engine = make_async_engine(url, pool_size=2, max_overflow=0)
    sessions = make_sessionmaker(engine)
    held = await psycopg.AsyncConnection.connect(url, autocommit=True)
    shared = sessions()
    rng = random.Random(1)

    def hold_params(ref: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {"amount": 1_000, "org_id": str(rng.randint(1, 1000)), "hold_id": ref, "ref": ref,
                "price_id": price_id, "lease_expires_at": now + timedelta(seconds=300), "now": now,
                "trace_id": None, "request_id": None}

    def capture_params(ref: str) -> dict[str, Any]:
        return {"amount": 600, "ref": ref, "now": datetime.now(UTC), "trace_id": None, "request_id": None}

    async def psycopg_held(ref: str) -> None:
        await (await held.execute(_pg.PLACE_HOLD, hold_params(ref), prepare=True)).fetchone()
        await (await held.execute(_pg.CAPTURE_HOLD, capture_params(ref), prepare=True)).fetchone()

    async def statement_runner(ref: str) -> None:
        await run_statement(shared, _pg.PLACE_HOLD, hold_params(ref))
        await run_statement(shared, _pg.CAPTURE_HOLD, capture_params(ref))

    async def ledger_api(ref: str) -> None:
        async with sessions() as session:
            await place_hold(session, org_id=str(rng.randint(1, 1000)), ref=ref, amount_micros=1_000, lease_s=300,
                             price_id=price_id)
        async with sessions() as session:
            await capture_hold(session, ref=ref, amount_micros=600)

    layers: dict[str, Callable[[str], Awaitable[None]]] = {
        "psycopg, one held connection": psycopg_held,
        "+ raw pool, run to completion (run_statement)": statement_runner,
        "+ ledger API, a session per operation (production)": ledger_api,
    }
    results: dict[str, list[float]] = {name: [] for name in layers}
    try:
        for n in range(batches + 2):
            for name, pair in layers.items():
                start = time.process_time()
                for _ in range(batch):
                    await pair(f"cpu-{secrets.token_hex(8)}")
                if n >= 2:  # the first two batches warm up (connections, prepared statements)
                    results[name].append((time.process_time() - start) / (2 * batch) * 1e6)
    finally:
        await shared.close()
        await held.close()
        await engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100, help="pairs per batch")
    args = parser.parse_args()
    url, price_id = create_database(args.server, 1000)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET synchronous_commit = off')
        print(f"# load average {os.getloadavg()[0]:.2f} at start; {args.batches} batches of {args.batch} pairs")
        results = asyncio.run(measure(url, price_id, batches=args.batches, batch=args.batch))
    finally:
        drop_database(args.server, url)
    print("\n| layer | CPU µs per operation, median | 10th percentile |\n|---|---|---|")
    for name, values in results.items():
        values.sort()
        print(f"| {name} | {statistics.median(values):.0f} | {values[len(values) // 10]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
