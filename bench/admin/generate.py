"""Make the Admin API benchmark's data set in PostgreSQL: a million usage records over ~90 days
across many orgs, projects, users, keys and models, with their audit rows, holds and ledger
entries (one hold, and a hold plus a capture or release entry, per billed request), extra audit
rows for requests refused before billing, and the roll-ups built by the Worker's own code.

Rows are made by the database (``INSERT … SELECT`` over ``generate_series``), not the ORM.
The schema comes from the migrations; the platform admin, its org and its keys from the
project's own services. What the bench needs (database URL, the admin's keys) is written to
``--info`` (default ``/tmp/dsl_admin_bench.json``).

    .venv/bin/python bench/admin/generate.py [--rows 1000000] [--orgs 300] [--days 90] [--db dsl_admin_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from deepspace_lab.auth import create_api_key, create_org, create_project, create_user  # noqa: E402
from deepspace_lab.billing.rollups import roll_up_due  # noqa: E402
from deepspace_lab.db import make_async_engine, make_sessionmaker  # noqa: E402
from deepspace_lab.db.migrate import upgrade  # noqa: E402

SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
SECRET = "admin-bench-secret-key-admin-bench-secret-key"
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-70b", "deepspace-simulated-chat")

#: orgs skewed (a few big spenders): org = 1 + floor(orgs * random()^2)
SQL_ORGS = """
INSERT INTO orgs (id, name, slug, created_at)
SELECT 'org_b' || o, 'Bench org ' || o, 'bench-org-' || o, %(start)s FROM generate_series(1, %(orgs)s) o;
INSERT INTO projects (id, org_id, name, created_at)
SELECT 'prj_b' || o || '_' || p, 'org_b' || o, 'project ' || p, %(start)s
FROM generate_series(1, %(orgs)s) o, generate_series(0, 2) p;
INSERT INTO wallets (id, org_id, balance_micros, frozen_micros, overdraft_limit_micros, created_at)
SELECT 'wal_b' || o, 'org_b' || o, CASE WHEN o %% 25 = 0 THEN 500000 ELSE 1000000000000 END, 0, 0, %(start)s
FROM generate_series(1, %(orgs)s) o;
"""

SQL_USAGE = """
INSERT INTO usage_records (request_id, trace_id, org_id, project_id, user_id, api_key_id, model, prompt_tokens,
    completion_tokens, delivered_tokens, cost_micros, measured, finish_reason, status, held_micros, stream,
    error_code, created_at, settled_at)
SELECT 'req_b' || i, md5(i::text), 'org_b' || o, 'prj_b' || o || '_' || p, 'usr_b' || o || '_' || u,
       'key_b' || o || '_' || k, m, pt,
       CASE WHEN failed THEN 0 ELSE ct END, CASE WHEN failed THEN 0 ELSE ct END,
       CASE WHEN failed THEN 0 ELSE (pt * 3 + ct * 12) END,
       CASE WHEN failed THEN 'none' ELSE 'upstream' END, CASE WHEN failed THEN NULL ELSE 'stop' END,
       CASE WHEN failed THEN 'released' ELSE 'captured' END, pt * 3 + 4096 * 12, i %% 3 <> 0,
       CASE WHEN failed THEN 'upstream_error' END, ts, ts + interval '3 seconds'
FROM (SELECT i, 1 + floor(%(orgs)s * power(random(), 2))::int AS o, floor(random() * 3)::int AS p,
             floor(random() * 4)::int AS u, floor(random() * 2)::int AS k,
             (%(models)s::text[])[1 + floor(random() * %(n_models)s)::int] AS m,
             20 + floor(random() * 2000)::int AS pt, 10 + floor(random() * 800)::int AS ct,
             random() < 0.03 AS failed,
             %(start)s::timestamptz + (i - 1) * %(step)s::interval AS ts
      FROM generate_series(1, %(rows)s) i) s;
"""

SQL_AUDIT = """
INSERT INTO audit_logs (trace_id, request_id, kind, actor, org_id, project_id, user_id, api_key_id, method, path,
    model, status_code, error_code, latency_ms, client_ip, detail, created_at)
SELECT trace_id, request_id, 'gateway.request', 'key:' || api_key_id, org_id, project_id, user_id, api_key_id,
       'POST', '/deepspace/v1/chat/completions', model, CASE WHEN status = 'released' THEN 502 ELSE 200 END,
       error_code, 300 + (id %% 2000), '10.' || (id %% 200) || '.' || (id %% 7) || '.1',
       json_build_object('cost_micros', cost_micros, 'stream', stream), created_at
FROM usage_records ORDER BY id;
-- refused before billing (rate limits, bad keys) and product-API reads: 10 percent more rows
INSERT INTO audit_logs (trace_id, request_id, kind, org_id, method, path, model, status_code, error_code,
    latency_ms, client_ip, created_at)
SELECT md5('x' || i), 'req_x' || i, CASE WHEN i %% 4 = 0 THEN 'api.usage.list' ELSE 'gateway.request' END,
       'org_b' || (1 + floor(%(orgs)s * power(random(), 2))::int),
       CASE WHEN i %% 4 = 0 THEN 'GET' ELSE 'POST' END,
       CASE WHEN i %% 4 = 0 THEN '/deepspace/api/usage' ELSE '/deepspace/v1/chat/completions' END,
       CASE WHEN i %% 4 = 0 THEN NULL ELSE 'gpt-4o' END,
       CASE WHEN i %% 4 = 0 THEN 200 WHEN i %% 4 = 1 THEN 429 ELSE 401 END,
       CASE WHEN i %% 4 = 0 THEN NULL WHEN i %% 4 = 1 THEN 'rate_limited' ELSE 'invalid_api_key' END,
       2, '10.9.' || (i %% 50) || '.1', %(start)s::timestamptz + (i - 1) * %(step)s::interval * 10
FROM generate_series(1, %(rows)s / 10) i;
"""

SQL_LEDGER = """
INSERT INTO holds (id, org_id, wallet_id, ref, amount_micros, state, captured_micros, refunded_micros,
    lease_expires_at, resolved_at, trace_id, request_id, created_at)
SELECT 'hold_b' || id, org_id, 'wal_b' || substr(org_id, 6), request_id, held_micros, status, cost_micros, 0,
       created_at + interval '5 minutes', settled_at, trace_id, request_id, created_at
FROM usage_records ORDER BY id;
INSERT INTO transactions (org_id, wallet_id, type, ref, amount_micros, hold_id, actor, trace_id, request_id,
    created_at)
SELECT org_id, wallet_id, t.type, ref, CASE WHEN t.type = 'capture' THEN captured_micros ELSE amount_micros END,
       id, 'gateway', trace_id, request_id, CASE WHEN t.type = 'hold' THEN created_at ELSE resolved_at END
FROM holds, LATERAL (VALUES ('hold'), (CASE WHEN state = 'captured' THEN 'capture' ELSE 'release' END)) t(type)
ORDER BY holds.created_at, t.type DESC;
-- a few holds left open past their lease (a gateway that died): the anomaly card's numbers
INSERT INTO holds (id, org_id, wallet_id, ref, amount_micros, state, lease_expires_at, created_at)
SELECT 'hold_open' || o, 'org_b' || o, 'wal_b' || o, 'req_open' || o, 1000, 'open', now() - interval '1 hour',
       now() - interval '2 hours' FROM generate_series(1, 5) o;
"""


async def _platform_admin(url: str) -> dict[str, str]:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            user = await create_user(session, email="bench-admin@example.org", password="bench-password-1",
                                     is_platform_admin=True)
            org = await create_org(session, name="operators", owner=user)
            project = await create_project(session, org_id=org.id, name="ops")
            _, key = await create_api_key(session, secret_key=SECRET, org_id=org.id, project_id=project.id,
                                          user_id=user.id, scopes=("admin",))
            _, read_key = await create_api_key(session, secret_key=SECRET, org_id=org.id, project_id=project.id,
                                               user_id=user.id, scopes=("admin-read",))
            await session.commit()
            return {"admin_key": key, "admin_read_key": read_key, "admin_email": user.email}
    finally:
        await engine.dispose()


async def _roll_up(url: str) -> dict[str, object]:
    engine = make_async_engine(url)
    try:
        return (await roll_up_due(engine)).to_dict()
    finally:
        await engine.dispose()


def _step(label: str, started: float) -> float:
    now = time.monotonic()
    print(f"  {label}: {now - started:.1f} s", flush=True)
    return now


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--orgs", type=int, default=300)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--db", default="dsl_admin_bench")
    p.add_argument("--info", default="/tmp/dsl_admin_bench.json")
    args = p.parse_args()
    with psycopg.connect(SERVER + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db}"')
    url = f"{SERVER}/{args.db}"
    print(f"database {url}: {args.rows} usage records, {args.orgs} orgs, {args.days} days", flush=True)
    t = time.monotonic()
    upgrade(url)
    admin = asyncio.run(_platform_admin(url))
    t = _step("schema and the platform admin", t)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=args.days)
    params = {"orgs": args.orgs, "rows": args.rows, "start": start, "models": list(MODELS), "n_models": len(MODELS),
              "step": timedelta(seconds=args.days * 86400 / args.rows)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(0.42)")
        for label, sql in (("orgs, projects, wallets", SQL_ORGS), ("usage records", SQL_USAGE),
                           ("audit rows", SQL_AUDIT), ("holds and ledger entries", SQL_LEDGER)):
            for statement in filter(str.strip, sql.split(";\n")):
                conn.execute(statement, params)  # type: ignore[arg-type]
            t = _step(label, t)
    rollups = asyncio.run(_roll_up(url))
    t = _step(f"roll-ups {rollups['periods_built']}", t)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                  for table in ("usage_records", "audit_logs", "holds", "transactions", "usage_rollups", "orgs")}
    _step("vacuum analyze", t)
    print(json.dumps(counts), flush=True)
    Path(args.info).write_text(json.dumps({"database_url": url, "secret_key": SECRET, **admin, "counts": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
