"""The runtime of one gateway process: engine, caches, audit writer, upstream client and
pipeline, built from :class:`Settings` (the composition root for services).

The HTTP layer owns the event loop and the simulated upstream's server; it starts the
runtime with the upstream URL to use and closes it on the way out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text

from .audit import AuditWriter
from .audit.metrics import RequestMetrics
from .auth.lookup import key_reader_for
from .cache import TTLCache
from .catalog import ModelInfo
from .config import Settings
from .db import make_async_engine, make_sessionmaker
from .db.migrate import head_revision
from .errors import ServiceUnavailable
from .jobs import JobQueue
from .pipeline import Pipeline, PipelineServices
from .pipeline.streams import StreamRegistry
from .policy.cache import PolicyCache
from .policy.limiter import make_limiter
from .policy.login import LoginLimiter, redeem_limiter
from .policy.rules import parse_networks
from .storage import Storage, open_storage
from .upstream import UpstreamClient

log = logging.getLogger("deepspace_lab.runtime")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_async_engine(settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.audit = AuditWriter(self.engine, flush_interval_ms=settings.audit_flush_interval_ms)
        #: this process's Prometheus counters (the audit step feeds them; the metrics route reads them)
        self.metrics = RequestMetrics()
        self._services: PipelineServices | None = None
        self._pipeline: Pipeline | None = None
        self.upstream_is_simulated = False
        #: Rate limits and the login limiter: shared through Redis when it is configured.
        self.limiter = make_limiter(settings.redis_url)
        self.login_limiter = LoginLimiter(self.limiter)
        self.redeem_limiter = redeem_limiter(self.limiter)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        #: running product streams (their Stop finds them here, or through Redis in another process)
        self.streams = StreamRegistry(settings.redis_url, ttl_s=settings.upstream_max_duration_s + 60)
        self._job_queue: JobQueue | None = None
        self._storage: Storage | None = None

    @property
    def job_queue(self) -> JobQueue:
        """Where this process enqueues jobs (made on first use: no connection before)."""
        if self._job_queue is None:
            self._job_queue = JobQueue(self.settings)
        return self._job_queue

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.settings.storage_url)
        return self._storage

    @property
    def started(self) -> bool:
        return self._pipeline is not None

    @property
    def services(self) -> PipelineServices:
        if self._services is None:
            raise ServiceUnavailable("the gateway is starting; retry in a moment", code="starting",
                                     retry_after_s=1)
        return self._services

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise ServiceUnavailable("the gateway is starting; retry in a moment", code="starting",
                                     retry_after_s=1)
        return self._pipeline

    async def start(self, *, upstream_base_url: str, simulated: bool) -> None:
        """Wire the pipeline to ``upstream_base_url`` and start background work."""
        settings = self.settings
        settings.require_secret_key()
        self.upstream_is_simulated = simulated
        upstream = UpstreamClient(
            base_url=upstream_base_url,
            api_key=settings.upstream_api_key,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            first_byte_timeout_s=settings.upstream_timeout_s,
            max_duration_s=settings.upstream_max_duration_s,
        )
        self._services = PipelineServices(
            settings=settings, engine=self.engine, sessions=self.sessions, audit=self.audit,
            upstream=upstream, models=TTLCache[ModelInfo](ttl_s=settings.catalog_cache_ttl_s),
            upstream_is_simulated=simulated,
            key_reader=key_reader_for(settings.database_url),
            policies=PolicyCache(self.engine), limiter=self.limiter, streams=self.streams, metrics=self.metrics,
            job_queue=lambda: self.job_queue,
        )
        self._pipeline = Pipeline(self._services, extensions=settings.extension_steps)
        self.audit.start()
        self.streams.start()

    async def close(self) -> None:
        await self.audit.close()
        await self.streams.close()
        if self._job_queue is not None:
            self._job_queue.close()
        await self.limiter.close()
        if self._services is not None:
            self._services.upstream.close()
            if self._services.key_reader is not None:
                await self._services.key_reader.close()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        """Each dependency's state: ``ok``, ``not_configured`` or an actionable error text."""
        checks: dict[str, Any] = {}
        checks["database"] = await self._check_database()
        checks["redis"] = await check_redis(self.settings.redis_url)
        checks["upstream"] = await self._check_upstream()
        ready = all(v in ("ok", "not_configured") for v in checks.values())
        return {"status": "ready" if ready else "not_ready", "checks": checks,
                "upstream_simulated": self.upstream_is_simulated}

    async def _check_database(self) -> str:
        try:
            async with self.engine.connect() as conn:
                version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception as exc:  # any failure means not ready, reported in words
            return f"error: cannot query the database ({type(exc).__name__})"
        if version != head_revision():
            return f"error: schema at {version}, code expects {head_revision()}; run `deepspace-lab migrate`"
        return "ok"

    async def _check_upstream(self) -> str:
        if self._services is None:
            return "error: not started"
        try:
            await self._services.upstream.list_models(timeout_s=3)
        except Exception as exc:  # any failure means not ready, reported in words
            return f"error: {getattr(exc, 'message', type(exc).__name__)}"
        return "ok"


async def check_redis(url: str | None, *, timeout_s: float = 2.0) -> str:
    if not url:
        return "not_configured"
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except Exception as exc:
        return f"error: cannot reach Redis ({type(exc).__name__})"
    finally:
        await client.aclose()
    return "ok"
