"""The product stream and its Stop (DESIGN §7, §12.7).

- ``POST /deepspace/api/chat/stream``: one message in a conversation; the answer is named SSE
  events (``deepspace_lab.pipeline.product_events``), always ending with ``usage``, ``billing``
  and ``done``. Refusals before the stream starts are ordinary JSON errors with their status.
- ``POST /deepspace/api/chat/{request_id}/cancel``: stops a running stream of the caller's
  (same org and user; anything else is 404 ``stream_not_found``). The stream then ends with its
  usage, billing and done events; the reply so far is kept in the conversation and billed as
  generated. With Redis configured the stream may run in another gateway process
  (``deepspace_lab.pipeline.streams``).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.billing import get_wallet
from deepspace_lab.errors import NotFound
from deepspace_lab.pipeline import RequestContext, product
from deepspace_lab.pipeline.product_events import ProductEventEncoder, final_events
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, principal_of
from .base import DeepSpaceHandler, HandlerSink, log

API = "/deepspace/api"


class ProductSink(HandlerSink):
    """Relays the upstream's OpenAI chunks as named product events."""

    def __init__(self, handler: DeepSpaceHandler) -> None:
        super().__init__(handler)
        self.encoder = ProductEventEncoder()
        self.streaming = False

    def start_stream(self) -> None:
        self.streaming = True
        super().start_stream()

    def send(self, data: bytes) -> None:
        out = self.encoder.feed(data)
        if out:
            super().send(out)

    def end_stream(self, data: bytes) -> None:
        super().end_stream(self.encoder.feed(data) + self.encoder.flush())


class ChatStreamHandler(DeepSpaceHandler):
    async def post(self) -> None:
        sink = self.sink = ProductSink(self)
        ctx = self.context(kind=product.KIND, action="chat")
        streams = self.runtime.streams
        streams.add(ctx)
        try:
            await self.runtime.pipeline.run_chat(ctx)
        finally:
            await streams.remove(ctx)
        if not sink.client_gone:
            if not sink.streaming:
                sink.start_stream()
            sink.final_bytes += final_events(ctx, await self._wallet(ctx))
        self.finish_sink()

    async def _wallet(self, ctx: RequestContext) -> dict[str, Any] | None:
        """The balance after this request, for the footer and the low-balance warning."""
        if ctx.principal is None:
            return None
        try:
            async with self.runtime.sessions() as session:
                wallet = await get_wallet(session, ctx.principal.org_id)
        except Exception:  # the answer is complete without it
            log.warning("could not read the wallet for the billing event", exc_info=True)
            return None
        return {"balance_micros": wallet.balance_micros, "frozen_micros": wallet.frozen_micros,
                "available_micros": wallet.available_micros}


class ChatEstimateHandler(DeepSpaceHandler):
    """The hold a product-stream request would take: the cost shown before sending."""

    async def post(self) -> None:
        async def endpoint(ctx: RequestContext) -> None:
            estimate = await product.estimate_hold(self.runtime.services, principal=principal_of(ctx), raw=ctx.body)
            ctx.sink.set_json(orjson.dumps(estimate))  # type: ignore[union-attr]

        await self.runtime.pipeline.run(self.context(kind="api.chat.estimate", action="chat"), endpoint)
        self.finish_sink()


class ChatCancelHandler(ApiHandler):
    async def post(self, request_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            caller = principal_of(ctx)
            if not await self.runtime.streams.cancel(request_id, org_id=caller.org_id, user_id=caller.user_id):
                raise NotFound(f"no running stream {request_id!r} of yours", code="stream_not_found",
                               param="request_id")
            ctx.detail.update(cancelled_request_id=request_id)
            return 200, {"object": "chat.cancel", "request_id": request_id, "status": "cancelling"}

        await self.api(action="chat", kind="api.chat.cancel", work=work)


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API + "/chat/stream", ChatStreamHandler, kwargs),
        (API + "/chat/estimate", ChatEstimateHandler, kwargs),
        (API + r"/chat/([A-Za-z0-9_]{1,40})/cancel", ChatCancelHandler, kwargs),
    ]
