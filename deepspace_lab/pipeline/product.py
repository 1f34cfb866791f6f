"""The product stream (``POST /deepspace/api/chat/stream``, DESIGN §7): the caller names a
conversation and sends one message; the gateway builds the history itself, truncated to the
model's context, and the same pipeline as the OpenAI route runs it (billing, limits, audit).

Body: ``conversation_id`` and ``model`` (required), ``content`` (required unless
``regenerate``), ``system`` (a system prompt, e.g. the project's), ``regenerate`` (answer the
conversation's last user message again; no new user message is stored), ``temperature``,
``top_p``, ``max_tokens``, ``workflow`` (run a workflow instead of a model call:
``{"id" | "name", "version"?, "inputs"?}``, see ``deepspace_lab.workflows.chat``; not with
``regenerate``). Anything else is a 400 ``unknown_field``.

History: the system prompt, then the newest stored messages that fit in the context window
after the reply's reserve (``max_tokens``, else the smaller of the default output cap and a
quarter of the window), then the new message. A new message that alone does not fit is a 400
``prompt_too_long``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from ..auth.principal import Principal
from ..billing import cost_micros, in_force, price_history
from ..catalog import find_enabled_model
from ..conversations import list_messages
from ..conversations.models import Message
from ..db.base import utcnow
from ..errors import InvalidRequest
from .chat import ChatRequest
from .context import PipelineServices
from .metering import estimate_tokens, worst_case_tokens

KIND = "chat.product_stream"
FIELDS = ("conversation_id", "model", "content", "system", "regenerate", "temperature", "top_p", "max_tokens",
          "workflow")
WORKFLOW_FIELDS = ("id", "name", "version", "inputs")
#: the extension step that runs a request's ``workflow``
WORKFLOW_STEP = "workflow"
MAX_SYSTEM_CHARS = 20_000
_ID = re.compile(r"^[A-Za-z0-9_]{1,40}$")


def _bad(message: str, *, code: str = "invalid_value", param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def parse_product_body(raw: bytes, *, max_body_bytes: int) -> dict[str, Any]:
    """The checked body as a dict (see the module docstring); :class:`InvalidRequest` names the field."""
    if len(raw) > max_body_bytes:
        raise _bad(f"request body is {len(raw)} bytes; the limit is {max_body_bytes}", code="body_too_large")
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise _bad(f"unknown fields {unknown}; allowed: {list(FIELDS)}", code="unknown_field", param=unknown[0])
    for name in ("conversation_id", "model"):
        if body.get(name) in (None, ""):
            raise _bad(f"`{name}` is required", code="missing_field", param=name)
        if not isinstance(body[name], str):
            raise _bad(f"`{name}` must be a string", code="invalid_type", param=name)
    if not _ID.match(body["conversation_id"]):
        raise _bad("`conversation_id` is not a conversation id", param="conversation_id")
    if len(body["model"]) > 200 or "\x00" in body["model"]:
        raise _bad("`model` is 1-200 characters without NUL", param="model")
    regenerate = body.get("regenerate", False)
    if not isinstance(regenerate, bool):
        raise _bad("`regenerate` must be true or false", code="invalid_type", param="regenerate")
    content = body.get("content")
    if regenerate and content is not None:
        raise _bad("`regenerate` answers the last user message again: send no `content`", param="content")
    if not regenerate:
        if content is None:
            raise _bad("`content` is required (or `regenerate`: true)", code="missing_field", param="content")
        if not isinstance(content, str) or not content.strip():
            raise _bad("`content` must be a non-empty string", code="invalid_type", param="content")
    system = body.get("system")
    if system is not None and (not isinstance(system, str) or len(system) > MAX_SYSTEM_CHARS):
        raise _bad(f"`system` must be a string of at most {MAX_SYSTEM_CHARS} characters", code="invalid_type",
                   param="system")
    for name in ("content", "system"):
        if isinstance(body.get(name), str) and "\x00" in body[name]:
            raise _bad(f"`{name}` cannot contain NUL characters", param=name)
    value = body.get("max_tokens")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise _bad("`max_tokens` must be a positive integer", code="invalid_type", param="max_tokens")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise _bad(f"`{name}` must be a number", code="invalid_type", param=name)
    if "workflow" in body:
        if regenerate:
            raise _bad("a workflow runs on a new message: send `content`, not `regenerate`", param="workflow")
        body["workflow"] = _workflow_ref(body["workflow"])
    return body


def _workflow_ref(value: Any) -> dict[str, Any]:
    """The shape of ``workflow``; whether it exists and its inputs fit is the workflow step's to say."""
    if not isinstance(value, dict):
        raise _bad("`workflow` must be an object: {id or name, version, inputs}", code="invalid_type", param="workflow")
    unknown = sorted(set(value) - set(WORKFLOW_FIELDS))
    if unknown:
        raise _bad(f"unknown fields {unknown} in `workflow`; allowed: {list(WORKFLOW_FIELDS)}", code="unknown_field",
                   param=f"workflow.{unknown[0]}")
    if ("id" in value) == ("name" in value):
        raise _bad("name one workflow: `workflow.id` or `workflow.name`", code="missing_field", param="workflow.id")
    if "id" in value and not (isinstance(value["id"], str) and _ID.match(value["id"])):
        raise _bad("`workflow.id` is not a workflow id", param="workflow.id")
    if "name" in value and not (isinstance(value["name"], str) and 0 < len(value["name"]) <= 200
                                and "\x00" not in value["name"]):
        raise _bad("`workflow.name` is 1-200 characters without NUL", param="workflow.name")
    version = value.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise _bad("`workflow.version` must be a positive integer", code="invalid_type", param="workflow.version")
    if not isinstance(value.get("inputs", {}), dict):
        raise _bad("`workflow.inputs` must be an object", code="invalid_type", param="workflow.inputs")
    return dict(value)


def _tokens(message: dict[str, Any]) -> int:
    return estimate_tokens(len(str(message.get("content") or "").encode())) + 4


def build_messages(*, stored: Sequence[Message], body: dict[str, Any], context_window: int,
                   default_cap: int) -> tuple[list[dict[str, Any]], int, int]:
    """(messages to send, output reserve, stored messages left out)."""
    history = [{"role": m.role, "content": m.content} for m in stored if m.role in ("user", "assistant")]
    if body.get("regenerate"):
        while history and history[-1]["role"] != "user":
            history.pop()
        if not history:
            raise _bad("nothing to regenerate: the conversation has no user message yet", code="nothing_to_regenerate",
                       param="regenerate")
        new = history.pop()
    else:
        new = {"role": "user", "content": body["content"]}
    reserve = body.get("max_tokens") or max(1, min(default_cap, context_window // 4))
    head = [{"role": "system", "content": body["system"]}] if body.get("system") else []
    room = context_window - reserve - sum(_tokens(m) for m in head) - _tokens(new) - 3
    if room < 0:
        raise _bad(f"the message does not fit in the model's context window ({context_window} tokens with "
                   f"{reserve} kept for the reply)", code="prompt_too_long", param="content")
    kept: list[dict[str, Any]] = []
    for message in reversed(history):
        room -= _tokens(message)
        if room < 0:
            break
        kept.append(message)
    kept.reverse()
    return [*head, *kept, new], reserve, len(history) - len(kept)


def product_chat_request(*, body: dict[str, Any], messages: list[dict[str, Any]],
                         reserve: int) -> ChatRequest:
    payload: dict[str, Any] = {"model": body["model"], "messages": messages, "stream": True,
                               "stream_options": {"include_usage": True}, "max_tokens": reserve}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            payload[name] = body[name]
    return ChatRequest(payload=payload, model=body["model"], stream=True, include_usage=True,
                       conversation_id=body["conversation_id"], store_user_turn=not body.get("regenerate"),
                       workflow=body.get("workflow"))


async def estimate_hold(services: PipelineServices, *, principal: Principal, raw: bytes) -> dict[str, Any]:
    """What ``POST /chat/stream`` with this body would hold (the most it can cost) — computed
    as the budget hold does, from the same history — without calling anything or moving money."""
    settings = services.settings
    body = parse_product_body(raw, max_body_bytes=settings.max_body_bytes)
    async with services.sessions() as session:
        model = await find_enabled_model(session, body["model"])
        if model is None:
            raise _bad(f"unknown model {body['model'][:200]!r}", code="model_not_found", param="model")
        stored = await list_messages(session, principal=principal, conversation_id=body["conversation_id"])
        price = in_force(await price_history(session, model_name=model.name), model_name=model.name, at=utcnow())
    messages, reserve, dropped = build_messages(stored=stored, body=body, context_window=model.context_window,
                                                default_cap=settings.default_max_output_tokens)
    chat = product_chat_request(body=body, messages=messages, reserve=reserve)
    bound, out = worst_case_tokens(chat, context_window=model.context_window,
                                   default_cap=settings.default_max_output_tokens)
    return {"object": "chat.estimate", "model": model.name, "hold_micros": cost_micros(price, tokens_in=bound,
                                                                                          tokens_out=out),
            "prompt_tokens_bound": bound, "max_output_tokens": out, "history_messages": len(messages) - 1,
            "history_dropped": dropped, "input_micros_per_mtok": price.input_micros_per_mtok,
            "output_micros_per_mtok": price.output_micros_per_mtok}
