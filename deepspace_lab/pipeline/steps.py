"""The built-in pipeline steps. They register through the same entry-point group
(``deepspace_lab.pipeline_steps``) that third-party steps use.

Core steps (fixed order, never removable): audit → ip_rules → auth → validate → idempotency →
conversation → rate_limit → budget_hold → policy → (extension steps) → usage_capture →
upstream. The billing steps live in :mod:`.billing`, the risk and policy ones in :mod:`.policy`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from ..auth import Principal, authenticate_access_token, authenticate_api_key, authorize
from ..auth.apikeys import INVALID_KEY, principal_from_key_row, touch_key
from ..auth.keys import key_prefix, looks_like_key
from ..auth.tokens import looks_like_jwt
from ..billing import cost_micros
from ..catalog import ModelInfo, find_enabled_model
from ..conversations import Turn, append_turns, get_conversation, list_messages
from ..db.base import utcnow
from ..errors import AuthError, DeepSpaceError, InvalidRequest, PermissionDenied
from ..upstream import SSE_DONE, StreamObserver, UpstreamStreamCut, UpstreamStreamInterrupted, sse_event
from . import product
from .chat import parse_chat_request
from .context import Next, PipelineServices, RequestContext
from .metering import RequestBilling

log = logging.getLogger("deepspace_lab.pipeline")


class BaseStep:
    name: ClassVar[str]

    def __init__(self, services: PipelineServices) -> None:
        self.services = services


PROJECT_HEADER = "X-DeepSpace-Project"


class AuditStep(BaseStep):
    """Outermost: one audit row per request on every path, failures included."""

    name = "audit"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        try:
            await call_next(ctx)
        except DeepSpaceError as exc:
            ctx.status_code, ctx.error_code = exc.http_status, exc.code
            raise
        except BaseException:
            ctx.status_code, ctx.error_code = 500, "internal_error"
            raise
        finally:
            await self._record(ctx)

    async def _record(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        usage = ctx.usage or {}
        detail = dict(ctx.detail)
        if usage:
            detail["prompt_tokens"] = usage.get("prompt_tokens")
            detail["completion_tokens"] = usage.get("completion_tokens")
        if ctx.upstream_response_id:
            detail["upstream_response_id"] = ctx.upstream_response_id
        if ctx.chat is not None:
            detail["stream"] = ctx.chat.stream
        try:
            await self.services.audit.write(
                trace_id=ctx.trace_id, request_id=ctx.request_id, kind=ctx.kind,
                actor=principal.actor if principal else None,
                org_id=principal.org_id if principal else None,
                project_id=principal.project_id if principal else None,
                user_id=principal.user_id if principal else None,
                api_key_id=principal.api_key_id if principal else None,
                method=ctx.method, path=ctx.path[:300],
                model=ctx.model.name if ctx.model else (ctx.chat.model[:200] if ctx.chat else None),
                status_code=ctx.status_code, error_code=ctx.error_code,
                latency_ms=round((time.perf_counter() - ctx.started) * 1000, 3),
                client_ip=ctx.client_ip, detail=detail or None,
            )
        except Exception:
            log.exception("could not write the audit row")
        if self.services.metrics is not None:
            self._count(ctx, usage, detail)

    def _count(self, ctx: RequestContext, usage: dict[str, Any], detail: dict[str, Any]) -> None:
        assert self.services.metrics is not None
        cost = detail.get("cost_micros")
        self.services.metrics.observe(
            kind=ctx.kind, status_code=ctx.status_code, error_code=ctx.error_code,
            latency_s=time.perf_counter() - ctx.started, model=ctx.model.name if ctx.model else None,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cost_micros=cost if isinstance(cost, int) else 0)


class AuthStep(BaseStep):
    """Bearer API key or JWT → :class:`Principal`, then :func:`authorize` for the route's action.

    No cache: the credential is checked against the database on every request, so a revoked
    key, an ended session or a disabled user is refused on the very next request everywhere.
    """

    name = "auth"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        header = ctx.headers.get("Authorization") or ""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("missing credentials: send `Authorization: Bearer <API key or access token>`",
                            code="missing_api_key")
        ctx.principal = await self.resolve(credential, project_id=ctx.headers.get(PROJECT_HEADER))
        if ctx.policies is not None:  # the org's IP rules, now that the credential names the org
            ctx.policies.check_org_ip(ctx.principal.org_id, ctx.client_address)
        if ctx.action:
            authorize(ctx.principal, ctx.action)
        await call_next(ctx)

    async def resolve(self, credential: str, *, project_id: str | None) -> Principal:
        secret = self.services.settings.require_secret_key()
        if looks_like_key(credential):
            principal = await self._key(credential, secret)
            if project_id and project_id != principal.project_id:
                raise PermissionDenied("an API key works only in its own project; drop X-DeepSpace-Project "
                                       "or use a key of that project", code="key_project_mismatch")
            return principal
        async with self.services.sessions() as session:
            if looks_like_jwt(credential):
                return await authenticate_access_token(session, secret_key=secret, token=credential,
                                                       project_id=project_id)
        raise AuthError(INVALID_KEY)

    async def _key(self, credential: str, secret: str) -> Principal:
        reader = self.services.key_reader
        prefix = key_prefix(credential)
        if reader is None or prefix is None:
            async with self.services.sessions() as session:
                return await authenticate_api_key(session, secret_key=secret, plaintext=credential)
        try:
            row = await reader.fetch_key(prefix)
        except Exception:  # the fast path is an optimisation: fall back to the ORM path
            log.warning("fast key lookup failed; using the ORM path", exc_info=True)
            async with self.services.sessions() as session:
                return await authenticate_api_key(session, secret_key=secret, plaintext=credential)
        now = utcnow()
        principal, stale = principal_from_key_row(row, secret_key=secret, plaintext=credential, now=now)
        if stale:
            async with self.services.sessions() as session:
                await touch_key(session, key_id=principal.api_key_id or "", now=now)
        return principal


class ValidateStep(BaseStep):
    """Parse the chat body and resolve the model against the catalog (400 on bad input)."""

    name = "validate"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        if ctx.kind == product.KIND:
            await self._product(ctx)
        else:
            ctx.chat = parse_chat_request(ctx.body, ctx.headers, max_body_bytes=self.services.settings.max_body_bytes)
            ctx.model = await self.resolve_model(ctx.chat.model)
        await call_next(ctx)

    async def _product(self, ctx: RequestContext) -> None:
        """The product stream: the history comes from the conversation, truncated to the context."""
        assert ctx.principal is not None
        settings = self.services.settings
        body = product.parse_product_body(ctx.body, max_body_bytes=settings.max_body_bytes)
        ctx.model = await self.resolve_model(body["model"])
        async with self.services.sessions() as session:
            stored = await list_messages(session, principal=ctx.principal, conversation_id=body["conversation_id"])
        messages, reserve, dropped = product.build_messages(
            stored=stored, body=body, context_window=ctx.model.context_window,
            default_cap=settings.default_max_output_tokens)
        ctx.chat = product.product_chat_request(body=body, messages=messages, reserve=reserve)
        if ctx.chat.workflow is not None and product.WORKFLOW_STEP not in settings.extension_steps:
            raise InvalidRequest("this deployment does not run workflows from chat (the `workflow` pipeline step is "
                                 "not in DEEPSPACE_PIPELINE_STEPS)", code="workflow_step_disabled", param="workflow")
        ctx.detail.update(conversation_id=body["conversation_id"], history_messages=len(stored),
                          history_dropped=dropped or None, regenerate=body.get("regenerate") or None)
        if self.services.streams is not None:  # other gateways can now route a Stop here
            await self.services.streams.announce(ctx)

    async def resolve_model(self, name: str) -> ModelInfo:
        cached = self.services.models.get(name)
        if cached is not None:
            return cached
        async with self.services.sessions() as session:
            info = await find_enabled_model(session, name)
        if info is None:
            raise InvalidRequest(f"unknown model {name[:200]!r}; GET /deepspace/v1/models lists the models you can use",
                                 code="model_not_found", param="model")
        self.services.models.put(name, info)
        return info


class ConversationStep(BaseStep):
    """When a conversation is named: 404 if it is not the caller's; store the turn after."""

    name = "conversation"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        assert ctx.chat is not None and ctx.principal is not None
        if ctx.chat.conversation_id is None:
            await call_next(ctx)
            return
        async with self.services.sessions() as session:
            ctx.conversation = await get_conversation(
                session, principal=ctx.principal, conversation_id=ctx.chat.conversation_id)
        await call_next(ctx)
        # A reply the caller stopped is kept (DESIGN §12.7).
        if ctx.error_code in (None, "cancelled") and ctx.reply_text is not None:
            usage = ctx.usage or {}
            turns = [Turn("user", ctx.chat.last_user_text(), tokens=usage.get("prompt_tokens"))]
            if not ctx.chat.store_user_turn:
                turns = []
            turns.append(Turn("assistant", ctx.reply_text, model=ctx.model.name if ctx.model else None,
                              tokens=usage.get("completion_tokens")))
            async with self.services.sessions() as session:
                await append_turns(session, conversation=ctx.conversation, turns=turns,
                                   trace_id=ctx.trace_id, request_id=ctx.request_id)
                await session.commit()


class UpstreamStep(BaseStep):
    """Innermost: call the upstream and answer the caller (JSON or relayed SSE)."""

    name = "upstream"

    def __init__(self, services: PipelineServices) -> None:
        super().__init__(services)
        #: streams this process is draining after their clients left
        self.draining = 0

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        assert ctx.chat is not None and ctx.model is not None and ctx.sink is not None
        body = ctx.chat.upstream_body(ctx.model.upstream_name)
        if ctx.chat.stream:
            await self._stream(ctx, body)
        else:
            await self._complete(ctx, body)

    async def _complete(self, ctx: RequestContext, body: bytes) -> None:
        assert ctx.sink is not None
        raw, parsed = await self.services.upstream.chat(body, trace_id=ctx.trace_id, request_id=ctx.request_id)
        ctx.usage = parsed.get("usage") if isinstance(parsed.get("usage"), dict) else None
        ctx.upstream_response_id = parsed.get("id") if isinstance(parsed.get("id"), str) else None
        choices = parsed.get("choices") or [{}]
        first = choices[0] if isinstance(choices[0], dict) else {}
        ctx.finish_reason = first.get("finish_reason")
        content = (first.get("message") or {}).get("content")
        ctx.reply_text = content if isinstance(content, str) else None
        ctx.sink.set_json(raw)

    async def _stream(self, ctx: RequestContext, body: bytes) -> None:
        sink = ctx.sink
        assert sink is not None and ctx.chat is not None
        billing = ctx.billing
        extra = None
        if billing is not None and ctx.chat.include_usage:
            price = billing.price

            def extra(usage: dict[str, Any]) -> dict[str, Any]:
                tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
                if not (isinstance(tokens_in, int) and isinstance(tokens_out, int)):
                    return {}
                return {"cost_micros": cost_micros(price, tokens_in=max(tokens_in, 0), tokens_out=max(tokens_out, 0))}

        observer = StreamObserver(strip_usage=not ctx.chat.include_usage, collect_text=ctx.conversation is not None,
                                  usage_extra=extra)
        drain = Drain(self, billing)
        ctx.stop = drain.cancel
        if ctx.cancel_requested:
            drain.cancel()
        started = False

        def on_data(chunk: bytes) -> None:
            nonlocal started
            if not started:
                sink.start_stream()
                started = True
            before = observer.content_events
            out = observer.feed(chunk)
            if billing is not None:
                billing.output_events = observer.content_events
            if sink.client_gone:
                drain.start(delivered=before)
            elif out:
                sink.send(out)

        try:
            await self.services.upstream.chat_stream(
                body, trace_id=ctx.trace_id, request_id=ctx.request_id, on_data=on_data, cut=drain.cut)
        except UpstreamStreamCut:
            ctx.error_code = billing.cut if billing is not None else "upstream_stream_cut"
        except UpstreamStreamInterrupted as exc:
            ctx.error_code = exc.code
            sink.end_stream(observer.flush_tail() + sse_event(exc.to_dict()))
        else:
            if not started:
                sink.start_stream()
            tail = observer.flush_tail()
            # [DONE] goes out only now, with the stream's end, which the handler sends once the
            # pipeline has returned: after usage_capture committed, so a client that saw [DONE]
            # reads its usage row captured, never `pending`.
            sink.end_stream(tail + SSE_DONE)
        finally:
            ctx.stop = None
            drain.stop()
            ctx.usage = observer.usage
            ctx.upstream_response_id = observer.response_id
            ctx.finish_reason = observer.finish_reason
            ctx.detail["client_disconnected"] = sink.client_gone or None
            if observer.collect_text:
                ctx.reply_text = observer.text


class Drain:
    """After the client left mid-stream: keep reading the upstream to learn its usage, bounded
    in time (``drain_timeout_s``) and in streams drained at once per process
    (``max_concurrent_drains``); past either bound, cut the stream (an estimate is billed)."""

    def __init__(self, step: UpstreamStep, billing: RequestBilling | None) -> None:
        self.step, self.billing = step, billing
        self.cut: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if billing else None
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False

    def start(self, *, delivered: int) -> None:
        billing = self.billing
        if billing is None or billing.delivered_events is not None:
            return
        billing.delivered_events = delivered
        settings = self.step.services.settings
        if self.step.draining >= settings.max_concurrent_drains:
            self._stop_reading("drain_limit")
            return
        self.step.draining += 1
        self._counted = True
        billing.drained = True
        self._timer = asyncio.get_running_loop().call_later(settings.drain_timeout_s, self._stop_reading,
                                                            "drain_timeout")

    def cancel(self) -> None:
        """The caller pressed Stop: stop reading now; the bill is what was generated so far."""
        if self.billing is not None and self.billing.cut is None and self.cut is not None:
            self._stop_reading("cancelled")

    def _stop_reading(self, reason: str) -> None:
        assert self.billing is not None and self.cut is not None
        self.billing.cut, self.billing.drained = reason, False
        if not self.cut.done():
            self.cut.set_result(None)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._counted:
            self.step.draining -= 1
            self._counted = False
