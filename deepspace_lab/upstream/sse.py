"""Watching an upstream's OpenAI SSE stream while relaying it byte for byte.

The relay forwards complete events as they arrive and parses only the few it must: the first
one (response id), the usage chunk (kept or dropped depending on whether the caller asked
for it), the one that carries a finish reason, and all of them when the reply text is wanted
(a named conversation). Everything else passes through without a JSON parse, which keeps a
64-chunk stream cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

_DONE = b"data: [DONE]"


class StreamObserver:
    """Feed upstream bytes in, get the bytes to send to the caller out."""

    def __init__(self, *, strip_usage: bool, collect_text: bool,
                 usage_extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.strip_usage = strip_usage
        self.collect_text = collect_text
        #: fields to add to the usage object the caller sees (the gateway adds the cost)
        self.usage_extra = usage_extra
        self.response_id: str | None = None
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done_seen = False
        self.content_events = 0
        self.text_parts: list[str] = []
        self._buf = b""

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return b""
        complete, self._buf = buf[: end + 2], buf[end + 2 :]
        events = complete.split(b"\n\n")
        events.pop()  # the empty tail after the last separator
        kept: list[bytes] | None = None
        for index, event in enumerate(events):
            out = self._observe(event)
            if out is not event and kept is None:
                kept = events[:index]
            if kept is not None and out is not None:
                kept.append(out)
        if kept is None:
            return complete
        return b"".join(e + b"\n\n" for e in kept)

    def _observe(self, event: bytes) -> bytes | None:
        """Record what we need from one event; returns it (or its rewrite), None to drop it."""
        if event.startswith(_DONE):  # held back: the pipeline ends the stream with it once billed
            self.done_seen = True
            return None
        if (b'"content":"' in event and b'"content":""' not in event) or (
            b'"content": "' in event and b'"content": ""' not in event
        ):
            self.content_events += 1
        has_usage = b'"usage":{' in event or b'"usage": {' in event
        has_finish = b'"finish_reason":"' in event or b'"finish_reason": "' in event
        if not (self.collect_text or has_usage or has_finish or self.response_id is None):
            return event
        chunk = _parse_data(event)
        if chunk is None:
            return event
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = chunk["id"]
        choices = chunk.get("choices") or []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            if self.collect_text:
                content = (choice.get("delta") or {}).get("content")
                if isinstance(content, str):
                    self.text_parts.append(content)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
            if self.strip_usage and not choices:
                return None
            if self.usage_extra is not None:
                chunk["usage"] = {**self.usage, **self.usage_extra(self.usage)}
                return sse_event(chunk)[:-2]
        return event

    def flush_tail(self) -> bytes:
        """Whatever is left without a closing blank line (a truncated stream)."""
        tail, self._buf = self._buf, b""
        return tail


def _parse_data(event: bytes) -> dict[str, Any] | None:
    payload = b"".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
    if not payload:
        return None
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
