"""The built-in pipeline steps. They register through the same entry-point group
(``deepspace_lab.pipeline_steps``) that third-party steps use.

Core steps (fixed order, never removable): audit → auth → validate → … → conversation →
upstream. The billing, rate-limit and policy issues add their core steps at fixed places.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

from ..auth import Principal, authenticate_api_key
from ..auth.keys import hash_key
from ..catalog import ModelInfo, find_enabled_model
from ..conversations import Turn, append_turns, get_conversation
from ..errors import AuthError, DeepSpaceError, InvalidRequest
from ..upstream import SSE_DONE, StreamObserver, UpstreamStreamInterrupted, sse_event
from .chat import parse_chat_request
from .context import Next, PipelineServices, RequestContext

log = logging.getLogger("deepspace_lab.pipeline")


class BaseStep:
    name: ClassVar[str]

    def __init__(self, services: PipelineServices) -> None:
        self.services = services


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
                actor=f"key:{principal.api_key_id}" if principal and principal.api_key_id else None,
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


class AuthStep(BaseStep):
    """Bearer API key → :class:`Principal` (cached per process for ``auth_cache_ttl_s``)."""

    name = "auth"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        header = ctx.headers.get("Authorization") or ""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("missing API key: send `Authorization: Bearer dsk_...`", code="missing_api_key")
        ctx.principal = await self.resolve(credential)
        await call_next(ctx)

    async def resolve(self, credential: str) -> Principal:
        services = self.services
        secret = services.settings.require_secret_key()
        cache_key = hash_key(secret, credential)
        principal = services.principals.get(cache_key)
        if principal is None:
            async with services.sessions() as session:
                principal = await authenticate_api_key(session, secret_key=secret, plaintext=credential)
                await session.commit()
            services.principals.put(cache_key, principal)
        return principal


class ValidateStep(BaseStep):
    """Parse the chat body and resolve the model against the catalog (400 on bad input)."""

    name = "validate"

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        ctx.chat = parse_chat_request(ctx.body, ctx.headers, max_body_bytes=self.services.settings.max_body_bytes)
        ctx.model = await self.resolve_model(ctx.chat.model)
        await call_next(ctx)

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
        if ctx.error_code is None and ctx.reply_text is not None:
            usage = ctx.usage or {}
            turns = [Turn("user", ctx.chat.last_user_text(), tokens=usage.get("prompt_tokens")),
                     Turn("assistant", ctx.reply_text, model=ctx.model.name if ctx.model else None,
                          tokens=usage.get("completion_tokens"))]
            async with self.services.sessions() as session:
                await append_turns(session, conversation=ctx.conversation, turns=turns,
                                   trace_id=ctx.trace_id, request_id=ctx.request_id)
                await session.commit()


class UpstreamStep(BaseStep):
    """Innermost: call the upstream and answer the caller (JSON or relayed SSE)."""

    name = "upstream"

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
        observer = StreamObserver(strip_usage=not ctx.chat.include_usage, collect_text=ctx.conversation is not None)
        started = False

        def on_data(chunk: bytes) -> None:
            nonlocal started
            if not started:
                sink.start_stream()
                started = True
            out = observer.feed(chunk)
            if out:
                sink.send(out)

        try:
            await self.services.upstream.chat_stream(
                body, trace_id=ctx.trace_id, request_id=ctx.request_id, on_data=on_data)
        except UpstreamStreamInterrupted as exc:
            ctx.error_code = exc.code
            sink.end_stream(observer.flush_tail() + sse_event(exc.to_dict()))
        else:
            if not started:
                sink.start_stream()
            tail = observer.flush_tail()
            sink.end_stream(tail + (b"" if observer.done_seen else SSE_DONE))
        finally:
            ctx.usage = observer.usage
            ctx.upstream_response_id = observer.response_id
            ctx.finish_reason = observer.finish_reason
            ctx.detail["client_disconnected"] = sink.client_gone or None
            if observer.collect_text:
                ctx.reply_text = observer.text
