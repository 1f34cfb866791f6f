"""Gateway routes: OpenAI-compatible chat and models, conversations, health.

Thin: build a request context, run the pipeline, end the response.
"""

from __future__ import annotations

from typing import Any

import orjson

from deepspace_lab import __version__
from deepspace_lab.auth.service import Principal
from deepspace_lab.catalog import list_models
from deepspace_lab.conversations import create_conversation, get_conversation, list_messages
from deepspace_lab.errors import InvalidRequest
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .base import DeepSpaceHandler

OPENAI_PREFIX = "/deepspace/v1"
API_PREFIX = "/deepspace/api"


class ChatCompletionsHandler(DeepSpaceHandler):
    async def post(self) -> None:
        await self.runtime.pipeline.run_chat(self.context())
        self.finish_sink()


class ModelsHandler(DeepSpaceHandler):
    async def get(self) -> None:
        await self.runtime.pipeline.run(self.context(), self._list)
        self.finish_sink()

    async def _list(self, ctx: RequestContext) -> None:
        async with self.runtime.sessions() as session:
            models = await list_models(session)
        ctx.sink.set_json(orjson.dumps({"object": "list", "data": [m.to_openai() for m in models]}))  # type: ignore[union-attr]


def _principal(ctx: RequestContext) -> Principal:
    assert ctx.principal is not None
    return ctx.principal


def _conversation_json(conv: Any) -> dict[str, Any]:
    return {"id": conv.id, "object": "conversation", "title": conv.title, "project_id": conv.project_id,
            "created_at": conv.created_at.isoformat()}


class ConversationsHandler(DeepSpaceHandler):
    async def post(self) -> None:
        await self.runtime.pipeline.run(self.context(kind="api.conversation.create"), self._create)
        self.finish_sink()

    async def _create(self, ctx: RequestContext) -> None:
        body: Any = {}
        if ctx.body.strip():
            try:
                body = orjson.loads(ctx.body)
            except orjson.JSONDecodeError:
                raise InvalidRequest("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise InvalidRequest("request body must be a JSON object", code="invalid_json")
        title = body.get("title", "")
        if not isinstance(title, str):
            raise InvalidRequest("`title` must be a string", code="invalid_type", param="title")
        async with self.runtime.sessions() as session:
            conv = await create_conversation(session, principal=_principal(ctx), title=title)
            await session.commit()
        ctx.sink.set_json(orjson.dumps(_conversation_json(conv)), status=201)  # type: ignore[union-attr]


class ConversationHandler(DeepSpaceHandler):
    async def get(self, conversation_id: str) -> None:
        async def show(ctx: RequestContext) -> None:
            async with self.runtime.sessions() as session:
                conv = await get_conversation(session, principal=_principal(ctx), conversation_id=conversation_id)
                messages = await list_messages(session, principal=_principal(ctx), conversation_id=conversation_id)
            payload = _conversation_json(conv)
            payload["messages"] = [
                {"role": m.role, "content": m.content, "model": m.model, "tokens": m.tokens,
                 "trace_id": m.trace_id, "request_id": m.request_id, "created_at": m.created_at.isoformat()}
                for m in messages
            ]
            ctx.sink.set_json(orjson.dumps(payload))  # type: ignore[union-attr]

        await self.runtime.pipeline.run(self.context(kind="api.conversation.read"), show)
        self.finish_sink()


class HealthHandler(DeepSpaceHandler):
    """Liveness: the process answers. No credentials needed, nothing sensitive shown."""

    async def get(self) -> None:
        self.write_json({"status": "ok", "version": __version__,
                         "upstream": "simulated" if self.runtime.upstream_is_simulated else "configured"})


class ReadyHandler(DeepSpaceHandler):
    """Readiness: database (and schema), Redis and upstream; 503 until all answer."""

    async def get(self) -> None:
        report = await self.runtime.readiness()
        self.write_json(report, status=200 if report["status"] == "ready" else 503)


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (OPENAI_PREFIX + "/chat/completions", ChatCompletionsHandler, kwargs),
        (OPENAI_PREFIX + "/models", ModelsHandler, kwargs),
        (API_PREFIX + "/conversations", ConversationsHandler, kwargs),
        (API_PREFIX + r"/conversations/([A-Za-z0-9_]{1,40})", ConversationHandler, kwargs),
        (API_PREFIX + "/health", HealthHandler, kwargs),
        (API_PREFIX + "/health/ready", ReadyHandler, kwargs),
    ]
