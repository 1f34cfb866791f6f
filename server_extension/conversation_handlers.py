"""Conversations of the caller's project: create, list, read (with messages), rename, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.conversations import (
    create_conversation,
    delete_conversation,
    get_conversation,
    list_conversations,
    list_messages,
    rename_conversation,
)
from deepspace_lab.db.paging import check_limit
from deepspace_lab.pipeline import RequestContext
from deepspace_lab.runtime import Runtime

from .api import ApiHandler, field, iso, json_body, principal_of, query_params

API = "/deepspace/api"


def conversation_json(conv: Any) -> dict[str, Any]:
    return {"id": conv.id, "object": "conversation", "title": conv.title, "project_id": conv.project_id,
            "created_at": iso(conv.created_at)}


class ConversationsHandler(ApiHandler):
    async def post(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            title = field(json_body(ctx, allowed=("title",)), "title", str, "") or ""
            conv = await create_conversation(session, principal=principal_of(ctx), title=title)
            ctx.detail["conversation_id"] = conv.id
            return 201, conversation_json(conv)

        await self.api(action="conversations.write", kind="api.conversation.create", work=work)

    async def get(self) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            params = query_params(self, allowed=("cursor", "limit"))
            page, cursor = await list_conversations(
                session, principal=principal_of(ctx), cursor=params.get("cursor"),
                limit=check_limit(params.get("limit")))
            return 200, {"data": [conversation_json(c) for c in page], "next_cursor": cursor}

        await self.api(action="conversations.read", kind="api.conversation.list", work=work)


class ConversationHandler(ApiHandler):
    async def get(self, conversation_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            p = principal_of(ctx)
            conv = await get_conversation(session, principal=p, conversation_id=conversation_id)
            payload = conversation_json(conv)
            payload["messages"] = [
                {"role": m.role, "content": m.content, "model": m.model, "tokens": m.tokens, "trace_id": m.trace_id,
                 "request_id": m.request_id, "created_at": iso(m.created_at)}
                for m in await list_messages(session, principal=p, conversation_id=conversation_id)
            ]
            return 200, payload

        await self.api(action="conversations.read", kind="api.conversation.read", work=work)

    async def patch(self, conversation_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            title = field(json_body(ctx, required=("title",), allowed=("title",)), "title", str)
            before, conv = await rename_conversation(session, principal=principal_of(ctx),
                                                     conversation_id=conversation_id, title=title)
            ctx.detail.update(conversation_id=conv.id, before={"title": before}, after={"title": conv.title})
            return 200, conversation_json(conv)

        await self.api(action="conversations.write", kind="api.conversation.rename", work=work)

    async def delete(self, conversation_id: str) -> None:
        async def work(ctx: RequestContext, session: AsyncSession) -> tuple[int, Any]:
            removed = await delete_conversation(session, principal=principal_of(ctx), conversation_id=conversation_id)
            ctx.detail.update(conversation_id=conversation_id, messages_deleted=removed)
            return 204, None

        await self.api(action="conversations.write", kind="api.conversation.delete", work=work)


def default_handlers(runtime: Runtime) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"runtime": runtime}
    return [
        (API + "/conversations", ConversationsHandler, kwargs),
        (API + r"/conversations/([A-Za-z0-9_]{1,40})", ConversationHandler, kwargs),
    ]
