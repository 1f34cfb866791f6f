"""Time the Admin API's observability answers over real HTTP against a gateway on the
benchmark database (``generate.py`` makes it), with same-run baselines: the gateway's public
health route and an admin route that reads nothing (the door steps alone), ``SELECT 1`` and the
bare SQL of the same keyset page through psycopg, and a deep OFFSET for contrast.

Each request runs once to warm up, then ``--repeat`` times; the table shows the median and the
slowest, and the median against the targets (overview < 2 s, any page < 0.5 s).

    .venv/bin/python bench/admin/bench.py [--info /tmp/dsl_admin_bench.json] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from deepspace_lab.db.paging import decode_cursor, encode_cursor  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.helpers import make_tenant, start_gateway  # noqa: E402

ADMIN = "/deepspace/admin/api"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def cursor_at(conn: psycopg.Connection[Any], table: str, position: int, where: str = "TRUE") -> str:
    """The cursor of the page that starts after ``position`` rows (found once, not timed)."""
    row = conn.execute(f"SELECT created_at, id FROM {table} WHERE {where} ORDER BY created_at DESC, id DESC "
                       f"OFFSET {position} LIMIT 1").fetchone()
    assert row is not None, (table, position)
    return encode_cursor(row[0], row[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--info", default="/tmp/dsl_admin_bench.json")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    info = json.loads(Path(args.info).read_text())
    url = info["database_url"]
    settings = make_settings(url, Path(tempfile.mkdtemp()), secret_key=info["secret_key"],
                             audit_flush_interval_ms=50)
    gw = start_gateway(settings, make_tenant(settings, email=f"bench-tenant-{time.time_ns()}@example.org"))
    sql = psycopg.connect(url, autocommit=True)
    rows: list[tuple[str, float, float, str]] = []
    try:
        usage_total = sql.execute("SELECT count(*) FROM usage_records").fetchone()[0]  # type: ignore[index]
        audit_total = sql.execute("SELECT count(*) FROM audit_logs").fetchone()[0]  # type: ignore[index]
        big_org = sql.execute("SELECT org_id FROM usage_records GROUP BY org_id ORDER BY count(*) DESC LIMIT 1"
                              ).fetchone()[0]  # type: ignore[index]
        trace = sql.execute("SELECT trace_id FROM usage_records WHERE id = %s",
                            (usage_total // 2,)).fetchone()[0]  # type: ignore[index]
        org_rows = sql.execute("SELECT count(*) FROM usage_records WHERE org_id = %s",
                               (big_org,)).fetchone()[0]  # type: ignore[index]
        cursors = {
            "usage middle": cursor_at(sql, "usage_records", usage_total // 2),
            "usage deep": cursor_at(sql, "usage_records", usage_total - 60),
            "usage org deep": cursor_at(sql, "usage_records", org_rows - 60, f"org_id = '{big_org}'"),
            "usage model deep": cursor_at(sql, "usage_records", usage_total // 7, "model = 'gpt-4o'"),
            "audit middle": cursor_at(sql, "audit_logs", audit_total // 2),
            "audit deep": cursor_at(sql, "audit_logs", audit_total - 60),
            "audit 429 deep": cursor_at(sql, "audit_logs", audit_total // 50, "status_code = 429"),
        }
        client = httpx.Client(base_url=gw.url, timeout=60,
                              headers={"Authorization": f"Bearer {info['admin_read_key']}"})

        def get(path: str, **params: Any) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(path, params=params)
                assert response.status_code == 200, (path, response.text[:300])
                return response
            return call

        def page(route: str, cursor: str | None = None, **params: Any) -> Callable[[], Any]:
            return get(ADMIN + route, limit=50, **params, **({"cursor": cursor} if cursor else {}))

        def q(statement: str, *values: Any) -> Callable[[], Any]:
            return lambda: sql.execute(statement, values).fetchall()

        deep = cursors["usage deep"]
        stamp, row_id = decode_cursor(deep)
        cases: list[tuple[str, Callable[[], Any], str]] = [
            ("baseline: SELECT 1 (psycopg)", q("SELECT 1"), ""),
            ("baseline: GET /deepspace/api/health", get("/deepspace/api/health"), ""),
            ("baseline: GET admin permissions (door steps, no query)", get(ADMIN + "/permissions"), ""),
            ("baseline: bare SQL of the deep usage page (psycopg)", q(
                "SELECT * FROM usage_records WHERE (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC "
                "LIMIT 51", stamp, int(row_id)), ""),
            (f"contrast: the same page by OFFSET {usage_total - 60} (psycopg)", q(
                "SELECT * FROM usage_records ORDER BY created_at DESC, id DESC LIMIT 51 OFFSET %s",
                usage_total - 60), ""),
            ("overview, every org, 30 days (default)", get(ADMIN + "/overview"), "2000"),
            ("overview, every org, 90 days", get(ADMIN + "/overview", days=90), "2000"),
            (f"overview, one org ({big_org}), 30 days", get(ADMIN + "/overview", org_id=big_org), "2000"),
            ("usage records: first page", page("/usage"), "500"),
            ("usage records: middle page", page("/usage", cursors["usage middle"]), "500"),
            ("usage records: deep page (the last)", page("/usage", deep), "500"),
            ("usage records: one org, deep page", page("/usage", cursors["usage org deep"], org_id=big_org), "500"),
            ("usage records: one model, deep page", page("/usage", cursors["usage model deep"], model="gpt-4o"),
             "500"),
            ("usage records: status=released, first page", page("/usage", status="released"), "500"),
            ("audit rows: first page", page("/audit"), "500"),
            ("audit rows: middle page", page("/audit", cursors["audit middle"]), "500"),
            ("audit rows: deep page (the last)", page("/audit", cursors["audit deep"]), "500"),
            ("audit rows: status 429, deep page", page("/audit", cursors["audit 429 deep"], status_code=429), "500"),
            ("audit rows: one client address", page("/audit", client_ip="10.9.7.1"), "500"),
            ("trace lookup (audit, usage, hold, 2 ledger entries)", get(f"{ADMIN}/traces/{trace}"), "500"),
            ("metrics (open holds read at scrape time)", get(ADMIN + "/metrics"), ""),
        ]
        for name, fn, target in cases:
            median, worst = timed(fn, args.repeat)
            rows.append((name, median, worst, target))
            print(f"{name:70s} {median:9.1f} {worst:9.1f}", flush=True)
    finally:
        sql.close()
        gw.close()
    base = next(r[1] for r in rows if r[0].startswith("baseline: GET /deepspace/api/health"))
    print(f"\n{usage_total:,} usage records, {audit_total:,} audit rows; median of {args.repeat} after a warm-up\n")
    print("| request | median ms | slowest ms | x health | target ms | met |")
    print("|---|---:|---:|---:|---:|---|")
    for name, median, worst, target in rows:
        met = "" if not target else ("yes" if median < float(target) else "**no**")
        print(f"| {name} | {median:.1f} | {worst:.1f} | {median / base:.1f} | {target} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
