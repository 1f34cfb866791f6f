"""The product stream's wire format: named SSE events (DESIGN §7).

:class:`ProductEventEncoder` turns the upstream's OpenAI chunks, as the relay hands them on,
into ``delta`` (reply text), ``thought`` (``reasoning_content``), ``tool_call`` (``tool_calls``),
``citation``, ``tool_result`` and structured ``thought`` s (from steps that add them to a chunk under
``deepspace``: ``citations``, ``tool_results``, ``thoughts``) and
``error`` events; the upstream's usage chunk and ``[DONE]`` are dropped — the handler ends the
stream with ``usage``, ``billing`` and ``done`` once the request is settled (:func:`final_events`).
"""

from __future__ import annotations

from typing import Any

import orjson

from .context import RequestContext

EVENTS = ("delta", "thought", "tool_call", "tool_result", "citation", "usage", "billing", "error", "done")


def named_event(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class ProductEventEncoder:
    def __init__(self) -> None:
        self._buf = b""
        self.error_sent = False

    def feed(self, data: bytes) -> bytes:
        buf = (self._buf + data).replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return b""
        complete, self._buf = buf[:end], buf[end + 2:]
        return b"".join(self._event(raw) for raw in complete.split(b"\n\n"))

    def flush(self) -> bytes:
        tail, self._buf = self._buf, b""
        return self._event(tail) if tail.strip() else b""

    def _event(self, raw: bytes) -> bytes:
        payload = b"".join(line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not payload or payload == b"[DONE]":
            return b""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict):
            self.error_sent = True
            return named_event("error", chunk["error"])
        out = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(thought, str) and thought:
                out.append(named_event("thought", {"content": thought}))
            if isinstance(delta.get("tool_calls"), list):
                out.append(named_event("tool_call", {"tool_calls": delta["tool_calls"]}))
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.append(named_event("delta", {"content": content}))
        extras = chunk.get("deepspace")
        if isinstance(extras, dict):
            for thought in extras.get("thoughts") or []:
                out.append(named_event("thought", thought if isinstance(thought, dict) else {"content": str(thought)}))
            for citation in extras.get("citations") or []:
                out.append(named_event("citation", citation if isinstance(citation, dict) else {"value": citation}))
            for result in extras.get("tool_results") or []:
                out.append(named_event("tool_result", result if isinstance(result, dict) else {"value": result}))
        return b"".join(out)


def final_events(ctx: RequestContext, wallet: dict[str, Any] | None) -> bytes:
    """``usage``, ``billing`` and ``done``, from the settled request."""
    billing = ctx.billing
    outcome = billing.outcome if billing is not None else None
    cancelled = billing is not None and billing.cut == "cancelled"
    usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "delivered_tokens": 0, "measured": "none"}
    if outcome is not None:
        usage = {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                 "delivered_tokens": outcome.delivered_tokens, "measured": outcome.measured}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    bill: dict[str, Any] = {"request_id": ctx.request_id, "held_micros": billing.held_micros if billing else 0,
                            "cost_micros": (billing.cost_micros or 0) if billing else 0,
                            "status": "captured" if billing and billing.cost_micros else "released"}
    if wallet is not None:
        bill.update(wallet)
    done = {"request_id": ctx.request_id, "trace_id": ctx.trace_id,
            "conversation_id": ctx.chat.conversation_id if ctx.chat else None,
            "finish_reason": "cancelled" if cancelled else ctx.finish_reason, "cancelled": cancelled,
            "error_code": None if cancelled else ctx.error_code}
    return named_event("usage", usage) + named_event("billing", bill) + named_event("done", done)
