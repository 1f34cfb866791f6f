"""Running product streams, so that Stop finds them (DESIGN §12.7).

Each gateway process keeps its own streams by request id. With Redis configured
(``DEEPSPACE_REDIS_URL``: several gateways behind a load balancer) each stream is also
registered there with its owner (org and user), and a cancel that reaches another process is
published on a channel every gateway listens to; the process running the stream stops it.
Without Redis there is one process and nothing else is needed.

Every Redis call here is bounded (``REDIS_TIMEOUT_S``): while Redis is out of reach a stream
still starts (only this process can stop it), and a Stop that needs Redis is 503
``stream_registry_unavailable`` with Retry-After, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..errors import ServiceUnavailable
from .context import RequestContext

log = logging.getLogger("deepspace_lab.streams")
CHANNEL = "deepspace:stream-cancel"
KEY = "deepspace:stream:"
REDIS_TIMEOUT_S = 0.5
_UNREACHABLE = (RedisError, OSError, TimeoutError)


def _owner(ctx: RequestContext) -> str:
    principal = ctx.principal
    return f"{principal.org_id}:{principal.user_id}" if principal is not None else ""


class StreamRegistry:
    def __init__(self, redis_url: str | None, *, ttl_s: float) -> None:
        self.local: dict[str, RequestContext] = {}
        self.ttl_s = max(1, int(ttl_s))
        # one immediate retry on a dropped connection (Redis restarted), no backoff sleeps
        self._redis: Any = aioredis.from_url(
            redis_url, socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))) if redis_url else None
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.ensure_future(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._redis is not None:
            await self._redis.aclose()

    def add(self, ctx: RequestContext) -> None:
        self.local[ctx.request_id] = ctx

    async def announce(self, ctx: RequestContext) -> None:
        """Once the stream's owner is known: tell the other gateways it runs here."""
        if self._redis is not None and ctx.principal is not None:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    await self._redis.set(KEY + ctx.request_id, _owner(ctx), ex=self.ttl_s)
            except _UNREACHABLE:
                log.warning("could not register stream %s in Redis; only this process can stop it",
                            ctx.request_id)

    async def remove(self, ctx: RequestContext) -> None:
        self.local.pop(ctx.request_id, None)
        if self._redis is not None and ctx.principal is not None:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    await self._redis.delete(KEY + ctx.request_id)
            except _UNREACHABLE:
                pass  # it expires

    async def cancel(self, request_id: str, *, org_id: str, user_id: str | None) -> bool:
        """Stop the caller's stream wherever it runs; False when there is none of theirs."""
        wanted = f"{org_id}:{user_id}"
        ctx = self.local.get(request_id)
        if ctx is not None:
            if _owner(ctx) != wanted:
                return False
            ctx.request_stop()
            return True
        if self._redis is None:
            return False
        try:
            async with asyncio.timeout(2 * REDIS_TIMEOUT_S):
                owner = await self._redis.get(KEY + request_id)
                if owner is None or owner.decode() != wanted:
                    return False
                await self._redis.publish(CHANNEL, request_id)
        except _UNREACHABLE as exc:
            raise ServiceUnavailable("the stream may run in another gateway process, which cannot be reached "
                                     "right now (Redis is unreachable); retry shortly",
                                     code="stream_registry_unavailable", retry_after_s=2) from exc
        return True

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    ctx = self.local.get(message["data"].decode())
                    if ctx is not None:
                        ctx.request_stop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("stream-cancel listener lost Redis; retrying", exc_info=True)
                await asyncio.sleep(1)
