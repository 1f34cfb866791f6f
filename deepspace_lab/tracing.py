"""Trace and request ids (DESIGN §1).

A trace id is 32 lowercase hex chars, taken from an incoming W3C ``traceparent`` header when
one is valid, else new. Every request also gets its own ``request_id``. The current ids
live in context variables so log lines carry them without threading them through calls.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32

current_trace_id: ContextVar[str | None] = ContextVar("deepspace_trace_id", default=None)
current_request_id: ContextVar[str | None] = ContextVar("deepspace_request_id", default=None)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def trace_id_from_traceparent(value: str | None) -> str | None:
    """The trace id of a valid W3C ``traceparent`` value, else None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == "ff" or match.group(2) == _ZERO_TRACE:
        return None
    if match.group(3) == "0" * 16:
        return None
    return match.group(2)


def make_traceparent(trace_id: str) -> str:
    """A ``traceparent`` for an outgoing call: our trace id, a new span id, sampled."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
