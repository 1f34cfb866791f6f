"""Conversations: create one, find one (scoped by org), append a turn."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.principal import Principal
from ..db.base import new_id
from ..db.paging import encode_cursor, newest_first
from ..errors import InvalidRequest, NotFound
from .models import Conversation, Message


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str
    model: str | None = None
    tokens: int | None = None


MAX_TITLE = 300


def _title(title: str) -> str:
    if len(title) > MAX_TITLE:
        raise InvalidRequest(f"`title` has at most {MAX_TITLE} characters", code="invalid_value", param="title")
    return title


async def create_conversation(session: AsyncSession, *, principal: Principal, title: str = "") -> Conversation:
    title = _title(title)
    conv = Conversation(id=new_id("conv"), org_id=principal.org_id, project_id=principal.project_id,
                        user_id=principal.user_id, title=title)
    session.add(conv)
    await session.flush()
    return conv


async def get_conversation(session: AsyncSession, *, principal: Principal, conversation_id: str) -> Conversation:
    """The conversation in the caller's org and project, or :class:`NotFound` — also for
    another tenant's id, so a caller cannot tell foreign ids from unknown ones."""
    conv = (await session.execute(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.org_id == principal.org_id,
                                   Conversation.project_id == principal.project_id)
    )).scalar_one_or_none()
    if conv is None:
        raise NotFound(f"no conversation {conversation_id!r}", code="conversation_not_found",
                       param="conversation_id")
    return conv


async def append_turns(
    session: AsyncSession, *, conversation: Conversation, turns: list[Turn], trace_id: str, request_id: str
) -> None:
    for turn in turns:
        # PostgreSQL text cannot hold NUL; what the model or the caller said is kept, marked.
        session.add(Message(conversation_id=conversation.id, org_id=conversation.org_id, role=turn.role,
                            content=turn.content.replace("\x00", "\ufffd"), model=turn.model, tokens=turn.tokens,
                            trace_id=trace_id, request_id=request_id))
    await session.flush()


async def list_messages(session: AsyncSession, *, principal: Principal, conversation_id: str) -> list[Message]:
    conv = await get_conversation(session, principal=principal, conversation_id=conversation_id)
    rows = await session.execute(
        select(Message).where(Message.conversation_id == conv.id, Message.org_id == principal.org_id)
        .order_by(Message.id)
    )
    return list(rows.scalars())


async def list_conversations(
    session: AsyncSession, *, principal: Principal, cursor: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    """The caller's project's conversations, newest first: (page, next cursor or None)."""
    query = select(Conversation).where(Conversation.org_id == principal.org_id,
                                       Conversation.project_id == principal.project_id)
    rows = list((await session.execute(
        newest_first(query, Conversation.created_at, Conversation.id, cursor=cursor, limit=limit))).scalars())
    page = rows[:limit]
    more = len(rows) > limit
    return page, encode_cursor(page[-1].created_at, page[-1].id) if more and page else None


async def rename_conversation(session: AsyncSession, *, principal: Principal, conversation_id: str,
                              title: str) -> tuple[str, Conversation]:
    """Returns (old title, conversation)."""
    conv = await get_conversation(session, principal=principal, conversation_id=conversation_id)
    before, conv.title = conv.title, _title(title)
    await session.flush()
    return before, conv


async def delete_conversation(session: AsyncSession, *, principal: Principal, conversation_id: str) -> int:
    """Delete a conversation and its messages; returns how many messages went."""
    conv = await get_conversation(session, principal=principal, conversation_id=conversation_id)
    result = await session.execute(delete(Message).where(Message.conversation_id == conv.id,
                                                         Message.org_id == principal.org_id))
    await session.delete(conv)
    await session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
