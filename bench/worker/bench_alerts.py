"""The Worker's minute alert pass over a busy day, on SQLite and PostgreSQL, next to one plain
read of the same rows in the same run.

The generator writes ``--rows`` request-log rows (``audit_logs``) and as many usage records,
spread evenly over the last 25 hours (for 1M that is 40,000 an hour, 11 a second) across
``--orgs`` orgs, every 20th request an error, in SQL (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL). Then, timed, each ``--repeat`` times (the median kept):

- ``alert pass``: :func:`deepspace_lab.jobs.alerts.current_conditions` — budgets, low balances,
  holds past their lease, and the error-rate and spend spikes (each one grouped query over the
  25 hours of its table): what every minute costs a worker, short of sending anything;
- ``baseline``: ``SELECT count(*)`` of the same 25 hours of each table through the same index
  (the floor: finding the rows once, nothing summed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from datetime import timedelta

from _scratch import scratch_database, spread_sql
from sqlalchemy import text

from deepspace_lab.auth import create_org, create_user
from deepspace_lab.config import Settings
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine
from deepspace_lab.db.base import utcnow
from deepspace_lab.jobs.alerts import current_conditions

SPAN_S = 25 * 3600


async def make_orgs(url: str, count: int) -> list[str]:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            ids = []
            for o in range(count):
                user = await create_user(session, email=f"alerts{o}-{secrets.token_hex(3)}@example.org")
                ids.append((await create_org(session, name=f"bench {o}", owner=user)).id)
            await session.commit()
            return ids
    finally:
        await engine.dispose()


def generate(url: str, rows: int, orgs: int) -> float:
    """Insert the rows (ending a minute ago); returns seconds taken."""
    ids = asyncio.run(make_orgs(url, orgs))
    start = utcnow() - timedelta(seconds=SPAN_S + 60)
    engine = make_sync_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE bench_orgs (k INTEGER PRIMARY KEY, org_id TEXT)"))
        conn.execute(text("INSERT INTO bench_orgs VALUES (:k, :o)"), [{"k": k, "o": o} for k, o in enumerate(ids)])
        series, at = spread_sql(conn.dialect.name)
        params = {"n": rows, "span": SPAN_S, "start": start, "start_naive": start.strftime("%Y-%m-%d %H:%M:%S")}
        conn.execute(text(
            f"INSERT INTO audit_logs (trace_id, kind, org_id, method, path, status_code, created_at) "
            f"SELECT 'bench', 'gateway.request', b.org_id, 'POST', '/deepspace/v1/chat/completions', "
            f"CASE WHEN s.i % 20 = 0 THEN 502 ELSE 200 END, {at} FROM ({series}) AS s "
            f"JOIN bench_orgs b ON b.k = s.i % {orgs}"), params)
        conn.execute(text(
            f"INSERT INTO usage_records (request_id, trace_id, org_id, model, prompt_tokens, completion_tokens, "
            f"delivered_tokens, cost_micros, measured, status, held_micros, stream, created_at) "
            f"SELECT 'bench_' || s.i, 'bench', b.org_id, 'm', 100, 20, 20, 1000 + s.i % 700, "
            f"'upstream', 'captured', 5000, false, {at} FROM ({series}) AS s JOIN bench_orgs b ON b.k = s.i % {orgs}"),
            params)
    elapsed = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return elapsed


async def timed(url: str, repeat: int) -> tuple[float, float, int]:
    """(median alert pass s, median baseline s, conditions found)."""
    engine = make_async_engine(url)
    settings = Settings.from_env({"database_url": url}, environ={})
    passes, floors, found = [], [], 0
    try:
        for _ in range(repeat):
            now = utcnow()
            t0 = time.perf_counter()
            found = len(await current_conditions(engine, settings, now=now))
            passes.append(time.perf_counter() - t0)
            since = now - timedelta(hours=25)
            async with engine.connect() as conn:
                t0 = time.perf_counter()
                for table in ("audit_logs", "usage_records"):
                    await conn.execute(text(f"SELECT count(*) FROM {table} WHERE created_at >= :s AND created_at < :n"),
                                       {"s": since, "n": now})
                floors.append(time.perf_counter() - t0)
    finally:
        await engine.dispose()
    return statistics.median(passes), statistics.median(floors), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("DEEPSPACE_TEST_DATABASE_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    out = []
    for backend in args.backends.split(","):
        with scratch_database(backend, args.pg_url, "bench-alerts") as url:
            gen_s = generate(url, args.rows, args.orgs)
            pass_s, floor_s, found = asyncio.run(timed(url, args.repeat))
            result = {"backend": backend, "rows_per_table": args.rows, "orgs": args.orgs,
                      "generate_s": round(gen_s, 1), "alert_pass_s": round(pass_s, 3),
                      "baseline_count_s": round(floor_s, 3), "ratio": round(pass_s / floor_s, 2),
                      "conditions": found, "load_average": round(os.getloadavg()[0], 2)}
            print(json.dumps(result), flush=True)
            out.append(result)
    print("\n| database | rows per table (25 h) | alert pass | count(*) of the same rows | ratio |")
    print("|---|---|---|---|---|")
    for r in out:
        print(f"| {r['backend']} | {r['rows_per_table']:,} | {r['alert_pass_s']} s | {r['baseline_count_s']} s | "
              f"{r['ratio']}× |")


if __name__ == "__main__":
    main()
