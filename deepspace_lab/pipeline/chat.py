"""Parsing and validating an OpenAI chat-completions body.

Only what the gateway relies on is checked; everything else the caller sent is forwarded
untouched, so new OpenAI parameters pass through without a gateway release.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
CONVERSATION_HEADER = "X-DeepSpace-Conversation"
#: Body fields that belong to the gateway and are not forwarded upstream.
PRODUCT_FIELDS = ("conversation_id",)
_ID = re.compile(r"^[A-Za-z0-9_]{1,40}$")


@dataclass(slots=True)
class ChatRequest:
    payload: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    conversation_id: str | None
    #: False when the caller's message is already stored (the product stream's regenerate)
    store_user_turn: bool = True
    #: (prompt bound, output cap × n), worked out once by ``metering.worst_case_tokens``
    worst_case: tuple[int, int] | None = None
    #: the product stream's ``workflow`` (checked shape): run it instead of a model call (the
    #: ``workflow`` extension step, ``deepspace_lab.workflows.chat``)
    workflow: dict[str, Any] | None = None

    def last_user_text(self) -> str:
        for message in reversed(self.payload["messages"]):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    def upstream_body(self, upstream_model: str) -> bytes:
        body = {k: v for k, v in self.payload.items() if k not in PRODUCT_FIELDS}
        body["model"] = upstream_model
        if self.stream:
            # Always ask for usage; the observer strips it again if the caller did not.
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        return orjson.dumps(body)


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _bad(message: str, *, code: str = "invalid_request", param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def parse_chat_request(raw: bytes, headers: Mapping[str, str], *, max_body_bytes: int) -> ChatRequest:
    """Validate ``raw``; raise :class:`InvalidRequest` with a stable code naming the field."""
    if len(raw) > max_body_bytes:
        raise _bad(f"request body is {len(raw)} bytes; the limit is {max_body_bytes}", code="body_too_large")
    if not raw.strip():
        raise _bad("request body is empty; send a JSON object", code="invalid_json")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise _bad("request body must be a JSON object", code="invalid_json")
    model = payload.get("model")
    if model is None or model == "":
        raise _bad("`model` is required (see GET /deepspace/v1/models)", code="missing_field", param="model")
    if not isinstance(model, str):
        raise _bad("`model` must be a string", code="invalid_type", param="model")
    if len(model) > 200 or "\x00" in model:
        raise _bad("`model` is 1-200 characters without NUL", code="invalid_value", param="model")
    messages = payload.get("messages")
    if messages is None:
        raise _bad("`messages` is required", code="missing_field", param="messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty array", code="invalid_type", param="messages")
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _bad(f"`{param}` must be an object", code="invalid_type", param=param)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _bad(f"`{param}.role` must be one of {sorted(ROLES)}", code="invalid_value", param=f"{param}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _bad(f"`{param}.content` must be a string or an array of parts", code="invalid_type",
                       param=f"{param}.content")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("`stream` must be true or false", code="invalid_type", param="stream")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _bad(f"`{name}` must be a positive integer", code="invalid_type", param=name)
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise _bad(f"`{name}` must be a number", code="invalid_type", param=name)
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("`stream_options` must be an object", code="invalid_type", param="stream_options")
    conversation_id = payload.get("conversation_id") or headers.get(CONVERSATION_HEADER) or None
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise _bad("`conversation_id` must be a string", code="invalid_type", param="conversation_id")
    if conversation_id is not None and not _ID.match(conversation_id):
        raise _bad("`conversation_id` is not a conversation id", code="invalid_value", param="conversation_id")
    return ChatRequest(
        payload=payload, model=model, stream=stream,
        include_usage=bool(stream and (options or {}).get("include_usage")),
        conversation_id=conversation_id,
    )
