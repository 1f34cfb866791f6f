"""Roll-up time for a million usage rows, on SQLite and PostgreSQL, next to one plain GROUP BY
over the same rows (the floor: reading them once) in the same run.

The generator writes ``--rows`` usage rows spread evenly over ``--days`` days (so about
1,389 rows an hour for 1M over 30 days) across 20 orgs × 3 projects × 4 models, in SQL
(a recursive CTE on SQLite, ``generate_series`` on PostgreSQL). Then, timed:

- ``rollup``: :func:`deepspace_lab.billing.rollups.roll_up_due` from nothing — every hour
  (one transaction each: delete, ``INSERT … SELECT … GROUP BY``, move the mark), then every day
  from the hours; this is what a worker does when it first meets the data or catches up;
- ``rollup again``: the same call once everything is built (what each minute costs);
- ``baseline``: ``SELECT org_id, project_id, model, count(*), sum(...) … GROUP BY`` over all
  rows, once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _scratch import scratch_database, spread_sql
from sqlalchemy import text

from deepspace_lab.auth import create_org, create_project, create_user
from deepspace_lab.billing.rollups import roll_up_due
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine

ORGS, PROJECTS, MODELS = 20, 3, 4
START = datetime(2026, 10, 1, tzinfo=UTC)


async def make_tenants(url: str) -> list[tuple[str, str]]:
    engine = make_async_engine(url)
    pairs = []
    try:
        async with make_sessionmaker(engine)() as session:
            for o in range(ORGS):
                user = await create_user(session, email=f"bench{o}-{secrets.token_hex(3)}@example.org")
                org = await create_org(session, name=f"bench {o}", owner=user)
                for p in range(PROJECTS):
                    project = await create_project(session, org_id=org.id, name=f"p{p}")
                    pairs.append((org.id, project.id))
            await session.commit()
    finally:
        await engine.dispose()
    return pairs


def generate(url: str, rows: int, days: int) -> float:
    """Insert the rows; returns seconds taken."""
    pairs = asyncio.run(make_tenants(url))
    span_s = days * 86400
    engine = make_sync_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE bench_pairs (k INTEGER PRIMARY KEY, org_id TEXT, project_id TEXT)"))
        conn.execute(text("INSERT INTO bench_pairs VALUES (:k, :o, :p)"),
                     [{"k": k, "o": o, "p": p} for k, (o, p) in enumerate(pairs)])
        series, at = spread_sql(conn.dialect.name)
        source = f"({series})"
        conn.execute(text(
            f"INSERT INTO usage_records (request_id, trace_id, org_id, project_id, model, prompt_tokens, "
            f"completion_tokens, delivered_tokens, cost_micros, measured, status, held_micros, stream, created_at) "
            f"SELECT 'bench_' || s.i, 'bench', b.org_id, b.project_id, 'model-' || (s.i % {MODELS}), 100 + s.i % 50, "
            f"20 + s.i % 30, 20 + s.i % 30, 1000 + s.i % 700, 'upstream', 'captured', 5000, false, {at} "
            f"FROM {source} AS s JOIN bench_pairs b ON b.k = s.i % {len(pairs)}"),
            {"n": rows, "span": span_s, "start": START, "start_naive": START.strftime("%Y-%m-%d %H:%M:%S")})
    elapsed = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE usage_records"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return elapsed


def baseline(url: str) -> tuple[float, int]:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            t0 = time.perf_counter()
            groups = conn.execute(text(
                "SELECT org_id, project_id, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
                "SUM(cost_micros) FROM usage_records GROUP BY org_id, project_id, model")).all()
            return time.perf_counter() - t0, len(groups)
    finally:
        engine.dispose()


async def rollup(url: str, days: int) -> tuple[float, dict[str, Any], float]:
    engine = make_async_engine(url)
    try:
        now = START + timedelta(days=days, hours=1)
        t0 = time.perf_counter()
        report = await roll_up_due(engine, now=now)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        await roll_up_due(engine, now=now)
        again = time.perf_counter() - t0
        async with engine.connect() as conn:
            total = (await conn.execute(text("SELECT SUM(requests), SUM(cost_micros) FROM usage_rollups "
                                             "WHERE period = 'day'"))).one()
            raw = (await conn.execute(text("SELECT COUNT(*), SUM(cost_micros) FROM usage_records"))).one()
        assert tuple(total) == tuple(raw), (total, raw)  # the roll-ups account for every row
        return first, report.to_dict(), again
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("DEEPSPACE_TEST_DATABASE_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    out = []
    for backend in args.backends.split(","):
        with scratch_database(backend, args.pg_url, "bench-rollups") as url:
            gen_s = generate(url, args.rows, args.days)
            base_s, groups = baseline(url)
            first_s, report, again_s = asyncio.run(rollup(url, args.days))
            result = {"backend": backend, "rows": args.rows, "generate_s": round(gen_s, 2),
                      "baseline_group_by_s": round(base_s, 3), "baseline_groups": groups,
                      "rollup_s": round(first_s, 2), "rollup_again_s": round(again_s, 4),
                      "ratio_rollup_to_baseline": round(first_s / base_s, 1), "report": report,
                      "load_average": round(os.getloadavg()[0], 2)}
            print(json.dumps(result), flush=True)
            out.append(result)
    print("\n| database | rows | roll-up from nothing | periods built (hours, days) | again (nothing due) |"
          " one GROUP BY over all rows | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in out:
        built = r["report"]["periods_built"]
        print(f"| {r['backend']} | {r['rows']:,} | {r['rollup_s']} s | {built['hour']}, {built['day']} | "
              f"{r['rollup_again_s'] * 1000:.1f} ms | {r['baseline_group_by_s']} s | "
              f"{r['ratio_rollup_to_baseline']}× |")


if __name__ == "__main__":
    main()
