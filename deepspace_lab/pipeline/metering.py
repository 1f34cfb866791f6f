"""What billing knows about one request: its hold, its price, and how to count tokens without
the upstream's word.

Two counts, for two different jobs:

- :func:`prompt_token_bound` is an **upper bound** for the hold: no tokenizer in use makes a
  token out of less than one byte of text, so the UTF-8 size of everything the model reads,
  plus a per-message allowance for the chat template, is never below the real prompt tokens.
  The hold (this bound plus the output cap, at the pinned price) therefore always covers
  the capture of a request whose upstream reports its usage honestly.
- :func:`estimate_tokens` is a **fair estimate** (about four bytes a token, the usual ratio
  for English text in GPT-style tokenizers) for the rare capture with no usage from the
  upstream (``measured = estimated``); output is counted as the content chunks relayed,
  which OpenAI-style streams send one token at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..billing import PriceVersion, UsageOutcome
from .chat import ChatRequest, content_text

#: Tokens a chat template adds around each message (role markers, separators), generously.
PER_MESSAGE_TOKENS = 8
PER_REQUEST_TOKENS = 16
BYTES_PER_TOKEN_ESTIMATE = 4


def _message_bytes(message: dict[str, Any]) -> tuple[int, int]:
    """(bytes of text, bytes of everything else the model reads: images, tool calls, names)."""
    content = message.get("content")
    text = len(content_text(content).encode())
    other = 0
    if isinstance(content, list):
        other += sum(len(orjson.dumps(p)) for p in content if isinstance(p, dict) and p.get("type") != "text")
    for key in ("tool_calls", "function_call", "name", "tool_call_id"):
        if message.get(key) is not None:
            other += len(orjson.dumps(message[key]))
    return text, other


def prompt_token_bound(chat: ChatRequest) -> int:
    """An upper bound on the request's prompt tokens (see the module docstring)."""
    total = PER_REQUEST_TOKENS
    for message in chat.payload["messages"]:
        text, other = _message_bytes(message)
        total += text + other + PER_MESSAGE_TOKENS
    for key in ("tools", "functions", "response_format"):
        if chat.payload.get(key) is not None:
            total += len(orjson.dumps(chat.payload[key]))
    return total


def estimate_tokens(text_bytes: int) -> int:
    return -(-text_bytes // BYTES_PER_TOKEN_ESTIMATE)


def prompt_token_estimate(chat: ChatRequest) -> int:
    """A fair estimate of the prompt tokens, for a capture without upstream usage."""
    total = 3
    for message in chat.payload["messages"]:
        text, other = _message_bytes(message)
        total += estimate_tokens(text + other) + 4
    return total


def requested_output_cap(chat: ChatRequest) -> int | None:
    """The smaller of ``max_tokens`` and ``max_completion_tokens``, if the caller named one."""
    caps = [chat.payload[k] for k in ("max_tokens", "max_completion_tokens") if chat.payload.get(k) is not None]
    return min(caps) if caps else None


def worst_case_tokens(chat: ChatRequest, *, context_window: int | None, default_cap: int) -> tuple[int, int]:
    """(prompt upper bound, output cap × ``n``): what the hold covers and tokens-per-minute
    limits count until the capture corrects them. When the caller names no output cap, the
    default one (limited by what the context window leaves) is written into the request, so
    the upstream is asked for no more than is held. Worked out once per request (the rate limit
    and the hold both need it)."""
    if chat.worst_case is not None:
        return chat.worst_case
    cap = requested_output_cap(chat)
    if cap is None:
        cap = default_cap
        if context_window:  # what the context leaves after the prompt (never below 1)
            cap = max(1, min(cap, context_window - prompt_token_estimate(chat)))
        chat.payload["max_tokens"] = cap
    choices = chat.payload.get("n") or 1  # each of n choices may use the whole output cap
    chat.worst_case = (prompt_token_bound(chat), cap * choices)
    return chat.worst_case


@dataclass(slots=True)
class RequestBilling:
    """One request's billing state, shared by the billing steps and the relay."""

    ref: str
    price: PriceVersion
    held_micros: int
    #: set once the hold is captured or released (by whichever step did it)
    settled: bool = False
    #: top-ups of the hold by extension steps (``billing.grow_hold``)
    top_ups: int = 0
    cost_micros: int | None = None
    #: prompt + completion tokens the capture counted (0 when the hold was released)
    tokens_used: int = 0
    # what the relay saw (streams)
    output_events: int = 0
    delivered_events: int | None = None
    drained: bool = False
    #: why the relay stopped reading the upstream early (``drain_timeout``, ``drain_limit``,
    #: ``cancelled`` by the caller's Stop)
    cut: str | None = None
    #: what the settlement counted (set by ``billing.settle``)
    outcome: UsageOutcome | None = None

    @property
    def client_left(self) -> bool:
        return self.delivered_events is not None
