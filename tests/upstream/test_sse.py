"""The SSE observer relays bytes untouched, drops only what it must (a usage chunk not asked
for; ``[DONE]``, which the pipeline sends once the request is billed), and learns usage."""

from __future__ import annotations

import json

from deepspace_lab.upstream import StreamObserver


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


CHUNKS = [
    event({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None}),
    event({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": None}),
    event({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}], "usage": None}),
    event({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
    event({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
    b"data: [DONE]\n\n",
]
STREAM = b"".join(CHUNKS)
RELAYED = b"".join(CHUNKS[:-1])  # [DONE] is held back


def relay(observer: StreamObserver, pieces: list[bytes]) -> bytes:
    return b"".join(observer.feed(p) for p in pieces) + observer.flush_tail()


def test_usage_chunk_is_dropped_when_the_caller_did_not_ask() -> None:
    obs = StreamObserver(strip_usage=True, collect_text=False)
    out = relay(obs, [STREAM])
    assert out == RELAYED.replace(CHUNKS[4], b"")
    assert obs.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert obs.response_id == "c1" and obs.finish_reason == "stop" and obs.done_seen


def test_usage_chunk_is_kept_when_asked_and_the_other_bytes_pass_unchanged() -> None:
    obs = StreamObserver(strip_usage=False, collect_text=False)
    assert relay(obs, [STREAM]) == RELAYED and obs.done_seen
    assert obs.usage is not None


def test_events_split_across_reads_are_reassembled() -> None:
    obs = StreamObserver(strip_usage=True, collect_text=True)
    pieces = [STREAM[i:i + 7] for i in range(0, len(STREAM), 7)]
    out = relay(obs, pieces)
    assert out == RELAYED.replace(CHUNKS[4], b"")
    assert obs.text == "Hello" and obs.content_events == 2


def test_crlf_separators_are_understood() -> None:
    obs = StreamObserver(strip_usage=True, collect_text=True)
    out = relay(obs, [STREAM.replace(b"\n", b"\r\n")])
    assert obs.text == "Hello" and obs.usage is not None and obs.done_seen
    assert CHUNKS[4] not in out


def test_a_truncated_tail_is_returned_by_flush_tail() -> None:
    obs = StreamObserver(strip_usage=True, collect_text=False)
    assert obs.feed(CHUNKS[1] + b'data: {"id":"c1","cho') == CHUNKS[1]
    assert obs.flush_tail() == b'data: {"id":"c1","cho'
    assert not obs.done_seen
