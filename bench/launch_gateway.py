"""Start the DeepSpace Gateway for ``shared/bench/run_baseline.sh`` (its ``GATEWAY_CMD``).

It prepares a fresh database with the project's own services, then replaces itself
(``exec``) with ``deepspace-lab gateway`` in the foreground, so the harness watches, measures
and stops the gateway process itself:

1. database: ``BENCH_DB=sqlite`` (default) puts ``deepspace.db`` in ``<logs>/dsl-data``;
   ``BENCH_DB=postgres`` creates a new, empty database ``BENCH_PG_DB`` (default
   ``dsl_bench_<timestamp>_<pid>``) on ``BENCH_PG_URL`` (default
   ``postgresql://postgres@127.0.0.1:5432``; loopback only);
2. ``DEEPSPACE_DATA_DIR`` / ``DEEPSPACE_DATABASE_URL`` / ``DEEPSPACE_SECRET_KEY`` (a fixed
   bench secret) / ``DEEPSPACE_LOG_LEVEL=WARNING`` (``BENCH_LOG_LEVEL`` to change it); other
   ``DEEPSPACE_*`` variables you export pass through and are listed in the gateway log. The
   audit writer keeps its default (batched) mode unless you export
   ``DEEPSPACE_AUDIT_FLUSH_INTERVAL_MS``;
3. ``init_deployment`` (migrate; admin, org, project, wallet), then the catalog model
   ``--model`` mapping to the same upstream name, and the bench key ``--key`` imported into
   the admin's project. The org's wallet gets a large balance, so that budget checks (when
   the billing step lands) do not refuse the load;
4. ``exec deepspace-lab gateway --host 127.0.0.1 --port P --upstream-base-url U``.

With ``BENCH_DB_INFO=path`` it writes ``{"database_url", "pg_db", "logs"}`` there, which
``bench/run.sh`` uses to count the audit rows and to drop the PostgreSQL database after the run.

Helper modes used by ``bench/run.sh`` (not by the harness):
  launch_gateway.py --audit-count DATABASE_URL   prints the number of audit rows
  launch_gateway.py --drop-pg-db NAME            drops a dsl_bench_* database on BENCH_PG_URL
  launch_gateway.py --pg-cpu-seconds             CPU seconds used so far by the local PostgreSQL
                                                 server (all processes named postgres, exited
                                                 backends included via the postmaster's cutime)
  launch_gateway.py --pg-sample-db NAME --out F  until SIGTERM: every 0.25 s, find the server
                                                 backends connected to database NAME and write
                                                 the CPU seconds they used (summed over every
                                                 backend seen) to F; the PostgreSQL cost of
                                                 this gateway alone, other databases excluded

Usage as the harness's GATEWAY_CMD (see bench/run.sh, which builds this line):
  BENCH_DB=postgres GATEWAY_URL_PREFIX=/deepspace GATEWAY_KEY=dsk_0000000be7c4_benchmark-key-benchmark-key \\
  GATEWAY_CMD='.venv/bin/python bench/launch_gateway.py --port {port} --upstream {upstream} \\
      --key {key} --model {model} --logs {logs}' bash ../shared/bench/run_baseline.sh
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from deepspace_lab.config import Settings

#: Any fixed value will do: the bench database lives only for one run.
BENCH_SECRET_KEY = "deepspace-bench-secret-not-for-production-0123456789abcdef"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: 1e12 micros = 1,000,000 currency units: far more than any bench run can spend.
BENCH_WALLET_MICROS = 10**12


def log(message: str) -> None:
    print(f"[launch_gateway] {message}", file=sys.stderr, flush=True)


def pg_admin_url() -> str:
    url = os.environ.get("BENCH_PG_URL") or DEFAULT_PG_URL
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"launch_gateway: BENCH_PG_URL must point at 127.0.0.1, got host {host!r}")
    return url.rstrip("/")


def _pg_admin_connect():  # -> psycopg.Connection
    import psycopg

    return psycopg.connect(pg_admin_url() + "/postgres", autocommit=True, connect_timeout=10)


def _check_db_name(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.startswith("dsl_bench_") or len(name) > 63:
        raise SystemExit(f"launch_gateway: database name must look like dsl_bench_<letters/digits/_>, got {name!r}")
    return name


def create_pg_database(name: str) -> str:
    from psycopg import sql

    with _pg_admin_connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            raise SystemExit(f"launch_gateway: database {name} already exists; the bench wants a fresh one")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{pg_admin_url()}/{name}"


def drop_pg_database(name: str) -> None:
    from psycopg import sql

    _check_db_name(name)
    with _pg_admin_connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def prepare(settings: Settings, *, model: str, key: str) -> dict[str, str]:
    """Migrate, create admin/org/project, add the model and import the bench key."""
    from sqlalchemy import select

    from deepspace_lab.auth import create_api_key
    from deepspace_lab.auth.keys import key_prefix
    from deepspace_lab.auth.models import ApiKey, User
    from deepspace_lab.billing import credit_wallet, list_prices, set_price
    from deepspace_lab.bootstrap import init_deployment
    from deepspace_lab.catalog import upsert_model
    from deepspace_lab.db import make_async_engine, make_sessionmaker

    prefix = key_prefix(key)
    if prefix is None:
        raise SystemExit("launch_gateway: GATEWAY_KEY must look like dsk_<12 hex>_<20+ url-safe chars>, "
                         "e.g. dsk_0000000be7c4_benchmark-key-benchmark-key")
    result = await init_deployment(settings, email="bench@localhost", org_name="Bench org",
                                   project_name="Bench project", actor="bench")
    engine = make_async_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            await upsert_model(session, name=model, upstream_name=model, description="shared/bench mock upstream",
                               owned_by="bench")
            if not await list_prices(session, model_name=model):  # a price: every request is billed
                await set_price(session, model_name=model, input_micros_per_mtok=1_000_000,
                                output_micros_per_mtok=2_000_000, actor="bench")
            existing = (await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()
            if existing is None:
                user = (await session.execute(select(User).where(User.email == result.email))).scalar_one()
                await create_api_key(session, secret_key=settings.require_secret_key(), org_id=result.org_id,
                                     project_id=result.project_id, user_id=user.id, name="bench",
                                     plaintext=key)
            await session.commit()
            await credit_wallet(session, org_id=result.org_id, amount_micros=BENCH_WALLET_MICROS, reason="bench",
                                actor="bench", ref=f"bench-credit:{result.org_id}")
    finally:
        await engine.dispose()
    return {"org_id": result.org_id, "project_id": result.project_id, "created": str(result.created)}


async def audit_count(database_url: str) -> int:
    from sqlalchemy import func, select

    from deepspace_lab.audit.models import AuditLog
    from deepspace_lab.db import make_async_engine

    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(AuditLog))).scalar_one()
            errors = (await conn.execute(select(func.count()).select_from(AuditLog)
                                         .where(AuditLog.status_code >= 400))).scalar_one()
    finally:
        await engine.dispose()
    print(f"{total} {errors}")
    return 0


def pg_cpu_seconds() -> float:
    """utime+stime+cutime+cstime of every process named ``postgres`` (from /proc)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        if comm != "postgres":
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def sample_pg_db_cpu(name: str, out: Path, interval_s: float = 0.25) -> int:
    """Write the CPU seconds of every backend ever seen on database ``name`` to ``out``."""
    import signal

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    last: dict[int, int] = {}
    tck = os.sysconf("SC_CLK_TCK")
    with _pg_admin_connect() as conn:
        while not stop:
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()]
            for pid in pids:
                ticks = _proc_cpu_ticks(pid)
                if ticks is not None:
                    last[pid] = max(ticks, last.get(pid, 0))
            out.write_text(f"{sum(last.values()) / tck:.2f} {len(last)}\n")
            time.sleep(interval_s)
    return 0


def gateway_argv(port: int, upstream: str) -> list[str]:
    # The console script of the interpreter running this file (the project's venv), else
    # the same CLI through ``-m``; never some other install found on PATH.
    script = Path(sys.executable).with_name("deepspace-lab")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "deepspace_lab.cli"]
    return [*head, "gateway", "--host", "127.0.0.1", "--port", str(port), "--upstream-base-url", upstream]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int)
    p.add_argument("--upstream", help="the mock's OpenAI base URL, ending in /v1")
    p.add_argument("--key", default=os.environ.get("BENCH_GATEWAY_KEY"))
    p.add_argument("--model", default=os.environ.get("BENCH_MODEL", "mock-gpt"))
    p.add_argument("--logs", help="the run's log folder (SQLite database and data dir go there)")
    p.add_argument("--db", choices=("sqlite", "postgres"), default=os.environ.get("BENCH_DB", "sqlite"))
    p.add_argument("--prepare-only", action="store_true", help="prepare the database, do not start the gateway")
    p.add_argument("--audit-count", metavar="DATABASE_URL", help="print '<audit rows> <rows with status >= 400>'")
    p.add_argument("--drop-pg-db", metavar="NAME", help="drop a dsl_bench_* database on BENCH_PG_URL")
    p.add_argument("--pg-cpu-seconds", action="store_true", help="CPU seconds of the local postgres processes")
    p.add_argument("--pg-sample-db", metavar="NAME", help="sample the CPU of the backends on database NAME")
    p.add_argument("--out", help="output file of --pg-sample-db")
    a = p.parse_args(argv)

    if a.pg_sample_db:
        if not a.out:
            p.error("--pg-sample-db needs --out")
        return sample_pg_db_cpu(_check_db_name(a.pg_sample_db), Path(a.out))

    if a.pg_cpu_seconds:
        print(f"{pg_cpu_seconds():.2f}")
        return 0

    if a.audit_count:
        return asyncio.run(audit_count(a.audit_count))
    if a.drop_pg_db:
        drop_pg_database(a.drop_pg_db)
        return 0
    missing = [f"--{n}" for n in ("port", "upstream", "key", "logs") if getattr(a, n) in (None, "")]
    if missing:
        p.error(f"missing {' '.join(missing)}")
    if urlsplit(a.upstream).hostname not in LOOPBACK:
        p.error("--upstream must be on 127.0.0.1")

    t0 = time.perf_counter()
    logs = Path(a.logs).resolve()
    data_dir = logs / "dsl-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    pg_db = ""
    if a.db == "postgres":
        default_name = f"dsl_bench_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
        pg_db = _check_db_name(os.environ.get("BENCH_PG_DB") or default_name)
        database_url = create_pg_database(pg_db)
    else:
        database_url = f"sqlite:///{data_dir / 'deepspace.db'}"
    info_path = os.environ.get("BENCH_DB_INFO")
    if info_path:
        Path(info_path).write_text(json.dumps({"database_url": database_url, "pg_db": pg_db, "logs": str(logs)}) + "\n")

    os.environ["DEEPSPACE_DATA_DIR"] = str(data_dir)
    os.environ["DEEPSPACE_DATABASE_URL"] = database_url
    os.environ["DEEPSPACE_SECRET_KEY"] = BENCH_SECRET_KEY
    os.environ["DEEPSPACE_LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL") or "WARNING"
    os.environ.pop("DEEPSPACE_UPSTREAM_BASE_URL", None)  # the command line sets it
    passed = sorted(k for k in os.environ if k.startswith("DEEPSPACE_") and k not in {
        "DEEPSPACE_DATA_DIR", "DEEPSPACE_DATABASE_URL", "DEEPSPACE_SECRET_KEY", "DEEPSPACE_LOG_LEVEL"})

    from deepspace_lab.config import Settings

    settings = Settings.from_env({"upstream_base_url": a.upstream})
    ids = asyncio.run(prepare(settings, model=a.model, key=a.key))
    log(f"db={a.db} {database_url} model={a.model} -> upstream {a.upstream} key={a.key[:16]}... "
        f"org={ids['org_id']} project={ids['project_id']} audit_flush_interval_ms={settings.audit_flush_interval_ms} "
        f"log_level={settings.log_level} other DEEPSPACE_* passed through: {passed or 'none'} "
        f"(prepared in {time.perf_counter() - t0:.1f}s)")
    if a.prepare_only:
        return 0
    argv_gw = gateway_argv(a.port, a.upstream)
    log("exec " + " ".join(argv_gw))
    sys.stderr.flush()
    os.execv(argv_gw[0], argv_gw)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
