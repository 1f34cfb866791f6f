"""The product stream's encoder: OpenAI chunks in, named events out."""

from __future__ import annotations

import json

import orjson

from deepspace_lab.client import SSEDecoder
from deepspace_lab.pipeline.product_events import ProductEventEncoder


def chunk(**delta: object) -> bytes:
    return b"data: " + orjson.dumps({"id": "c1", "choices": [{"index": 0, "delta": delta}]}) + b"\n\n"


def decode(data: bytes) -> list[tuple[str, dict[str, object]]]:
    return [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(data.decode())]


def test_content_thoughts_tool_calls_citations_and_errors_become_named_events() -> None:
    encoder = ProductEventEncoder()
    calls = [{"id": "t1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]
    extras = b"data: " + orjson.dumps({"choices": [], "deepspace": {
        "citations": [{"title": "Doc", "url": "kb://1"}], "tool_results": [{"tool_call_id": "t1", "content": "ok"}]}})
    stream = (chunk(role="assistant") + chunk(reasoning_content="thinking…") + chunk(tool_calls=calls)
              + chunk(content="Hel") + extras + b"\n\n" + chunk(content="lo")
              + b'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\ndata: [DONE]\n\n')
    out = b"".join(encoder.feed(stream[i:i + 7]) for i in range(0, len(stream), 7)) + encoder.flush()
    assert decode(out) == [
        ("thought", {"content": "thinking…"}), ("tool_call", {"tool_calls": calls}),
        ("delta", {"content": "Hel"}), ("citation", {"title": "Doc", "url": "kb://1"}),
        ("tool_result", {"tool_call_id": "t1", "content": "ok"}), ("delta", {"content": "lo"})]
    error = encoder.feed(b'data: {"error":{"message":"broke","code":"upstream_stream_interrupted"}}\n\n')
    assert decode(error) == [("error", {"message": "broke", "code": "upstream_stream_interrupted"})]
    assert encoder.error_sent
