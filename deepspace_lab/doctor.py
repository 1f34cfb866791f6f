"""``deepspace-lab doctor``: check config, database, migrations, prices, Redis, the upstream,
storage and the Worker's queue, and say what is wrong in words a newcomer can act on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .config import Settings
from .db.migrate import current_revision, head_revision
from .runtime import check_redis
from .upstream import UpstreamClient


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "fix": self.fix}


def _check_config(settings: Settings) -> Check:
    if settings.secret_key:
        return Check("config", True, f"data dir {settings.data_dir}; secret key set")
    if settings.is_sqlite:
        return Check("config", False, "no secret key yet", "run `deepspace-lab init` (it generates one)")
    return Check("config", False, "DEEPSPACE_SECRET_KEY is not set; it is required with PostgreSQL",
                 "set DEEPSPACE_SECRET_KEY to the same long random value on every gateway and worker")


def _check_database(settings: Settings) -> list[Check]:
    try:
        current = current_revision(settings.database_url)
    except Exception as exc:  # any failure is reported in words
        return [Check("database", False, f"cannot connect ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})",
                      "check DEEPSPACE_DATABASE_URL and that the database server is running")]
    checks = [Check("database", True, f"connected ({settings.database_url.split(':', 1)[0]})")]
    head = head_revision()
    if current == head:
        checks.append(Check("migrations", True, f"schema at {head}"))
        checks.append(_check_prices(settings))
    elif current is None:
        checks.append(Check("migrations", False, "the database has no schema yet", "run `deepspace-lab init`"))
    else:
        checks.append(Check("migrations", False, f"schema at {current}, this version needs {head}",
                            "run `deepspace-lab migrate`"))
    return checks


def _check_prices(settings: Settings) -> Check:
    """Every enabled model has a price in force (or is free): the gateway refuses the others."""
    from sqlalchemy import select

    from .billing.models import Price
    from .catalog.models import CatalogModel
    from .db import make_sync_engine, utcnow

    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            enabled = set(conn.execute(select(CatalogModel.name).where(CatalogModel.enabled.is_(True))).scalars())
            priced = set(conn.execute(select(Price.model_name).where(Price.effective_at <= utcnow())).scalars())
    finally:
        engine.dispose()
    missing = sorted(enabled - priced)
    if missing:
        return Check("prices", False, f"{len(missing)} enabled model(s) have no price and are refused: "
                     f"{', '.join(missing[:10])}", "set one: `deepspace-lab prices set MODEL --input-micros-per-mtok N "
                     "--output-micros-per-mtok N` (or `--free`)")
    return Check("prices", True, f"every enabled model has a price ({len(enabled)})")


async def _check_upstream(settings: Settings) -> Check:
    if settings.uses_simulator:
        return Check("upstream", True, "no DEEPSPACE_UPSTREAM_BASE_URL: the gateway starts its built-in "
                     "SIMULATED upstream (deterministic replies, no real model)")
    assert settings.upstream_base_url is not None
    client = UpstreamClient(base_url=settings.upstream_base_url, api_key=settings.upstream_api_key,
                            connect_timeout_s=min(settings.upstream_connect_timeout_s, 5), first_byte_timeout_s=5,
                            max_duration_s=10)
    try:
        models = await client.list_models(timeout_s=5)
    except Exception as exc:
        return Check("upstream", False, f"{settings.upstream_base_url}: {getattr(exc, 'message', exc)}",
                     "check DEEPSPACE_UPSTREAM_BASE_URL (it ends in /v1) and DEEPSPACE_UPSTREAM_API_KEY")
    finally:
        client.close()
    return Check("upstream", True, f"{settings.upstream_base_url} answers ({len(models)} models)")


#: a queued job waiting longer than this means no worker is running (or none keeps up)
STALE_QUEUE_S = 300


def _check_storage(settings: Settings) -> Check:
    from .storage import open_storage

    try:
        storage = open_storage(settings.storage_url)
        storage.exists("doctor/probe")
    except Exception as exc:  # any failure is reported in words
        return Check("storage", False, f"cannot use DEEPSPACE_STORAGE_URL ({type(exc).__name__})",
                     "check DEEPSPACE_STORAGE_URL (a folder, or s3://bucket/prefix with AWS_* credentials)")
    return Check("storage", True, f"{storage!r} answers")


def _check_worker(settings: Settings, *, migrated: bool) -> Check:
    """The queue backend resolves, and no job has waited so long that no worker can be running."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from .db import make_sync_engine, utcnow
    from .jobs.models import Job

    backend = settings.queue_backend
    if backend == "postgresql" and settings.is_sqlite:
        return Check("worker", False, "DEEPSPACE_WORKER_BACKEND=postgresql needs a PostgreSQL database",
                     "set DEEPSPACE_WORKER_BACKEND=sqlite (one machine) or redis")
    if backend == "redis" and not settings.redis_url:
        return Check("worker", False, "DEEPSPACE_WORKER_BACKEND=redis needs DEEPSPACE_REDIS_URL",
                     "set DEEPSPACE_REDIS_URL, or DEEPSPACE_WORKER_BACKEND=auto")
    if not migrated:
        return Check("worker", True, f"queue on {backend} (jobs not checked: no schema yet)")
    engine = make_sync_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            waiting = conn.execute(select(func.count()).select_from(Job).where(
                Job.state == "queued", Job.enqueued_at < utcnow() - timedelta(seconds=STALE_QUEUE_S))).scalar_one()
    finally:
        engine.dispose()
    if waiting:
        return Check("worker", False, f"{waiting} job(s) queued for more than {STALE_QUEUE_S // 60} minutes on the "
                     f"{backend} queue: no worker seems to run", "start `deepspace-lab worker` with the same "
                     "DEEPSPACE_* settings (`deepspace-lab lab` starts one)")
    return Check("worker", True, f"queue on {backend} ({settings.worker_queue!r}); no job waiting long")


async def run_checks(settings: Settings) -> list[Check]:
    checks = [_check_config(settings)]
    checks += await asyncio.get_running_loop().run_in_executor(None, _check_database, settings)
    redis_state = await check_redis(settings.redis_url)
    if redis_state == "not_configured":
        checks.append(Check("redis", True, "not configured: limits are per process (fine for one gateway)"))
    elif redis_state == "ok":
        checks.append(Check("redis", True, "reachable"))
    else:
        checks.append(Check("redis", False, redis_state.removeprefix("error: "),
                            "check DEEPSPACE_REDIS_URL and that Redis is running"))
    checks.append(await _check_upstream(settings))
    loop = asyncio.get_running_loop()
    checks.append(await loop.run_in_executor(None, _check_storage, settings))
    migrated = any(c.name == "migrations" and c.ok for c in checks)
    checks.append(await loop.run_in_executor(None, lambda: _check_worker(settings, migrated=migrated)))
    return checks
