"""Conversations (level 1). The OpenAI route is stateless; when a caller names a
conversation, the new user turn and the reply are stored under it (DESIGN §7, §12.5)."""

from .service import (
    Turn,
    append_turns,
    create_conversation,
    delete_conversation,
    get_conversation,
    list_conversations,
    list_messages,
    rename_conversation,
)

__all__ = [
    "Turn", "append_turns", "create_conversation", "delete_conversation", "get_conversation", "list_conversations",
    "list_messages", "rename_conversation",
]
