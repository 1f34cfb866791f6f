"""The simulator core: token counting, directives, deterministic replies, OpenAI shapes."""

from __future__ import annotations

from typing import Any

import pytest

from deepspace_lab.errors import InvalidRequest
from deepspace_lab.simulator import (
    SIMULATED_MARKER,
    SIMULATED_MODELS,
    Directives,
    completion_body,
    count_tokens,
    parse_directives,
    plan_reply,
    stream_chunks,
)

MODEL = "deepspace-simulated-chat"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_catalog_names_every_model_as_simulated() -> None:
    ids = {m["id"]: m["context_window"] for m in SIMULATED_MODELS}
    assert ids["deepspace-simulated-chat"] == 8192
    assert ids["deepspace-simulated-long"] == 32768
    assert all("simulated" in m["id"] and "Simulated" in m["description"] for m in SIMULATED_MODELS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("hello", 1), ("Hello, world!", 4), ("  spaced   out  ", 2), ("[sim:tokens=3]", 7)],
)
def test_count_tokens_counts_words_and_punctuation(text: str, expected: int) -> None:
    assert count_tokens(text) == expected


def test_no_directives_gives_defaults() -> None:
    assert parse_directives([user("plain question")]) == Directives()


def test_directives_are_parsed_from_the_last_user_message_only() -> None:
    messages = [
        user("earlier [sim:error=500]"),
        {"role": "assistant", "content": "ok [sim:tokens=2]"},
        user("now [sim:tokens=7] [sim:no_usage] [sim:finish=content_filter] [sim:delay_ms=12.5]"),
        {"role": "system", "content": "[sim:fail_after=1]"},
    ]
    assert parse_directives(messages) == Directives(
        tokens=7, no_usage=True, finish="content_filter", delay_ms=12.5
    )


def test_directives_read_text_parts_of_a_parts_list() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "hi [sim:fail_after=3]"}]}
    assert parse_directives([message]).fail_after == 3


def test_unknown_directive_keys_are_ignored() -> None:
    assert parse_directives([user("[sim:warp=9] [sim:tokens=4]")]) == Directives(tokens=4)


@pytest.mark.parametrize("bad", ["[sim:error=abc]", "[sim:error=200]", "[sim:tokens=0]", "[sim:delay_ms=-1]"])
def test_malformed_value_of_a_known_key_is_an_invalid_request(bad: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_directives([user(bad)])
    assert info.value.code == "invalid_directive"


def test_headers_override_message_directives() -> None:
    headers = {"X-Sim-Error": "429", "x-sim-token-latency-ms": "5", "X-Sim-No-Usage": "0", "Other": "1"}
    directives = parse_directives([user("[sim:error=500] [sim:no_usage] [sim:tokens=3]")], headers)
    assert directives == Directives(error=429, token_latency_ms=5.0, no_usage=False, tokens=3)


def test_reply_is_deterministic_and_marked_simulated() -> None:
    messages = [user("What is a quasar?")]
    first = plan_reply(MODEL, messages, max_tokens=None, directives=Directives())
    second = plan_reply(MODEL, messages, max_tokens=None, directives=Directives())
    assert first == second
    assert first.tokens[0] == SIMULATED_MARKER
    assert len(first.tokens) == first.completion_tokens == 24
    assert all(t.startswith(" ") and t.strip().isalpha() for t in first.tokens[1:])
    assert first.finish_reason == "stop"
    assert first.prompt_tokens == count_tokens("What is a quasar?")


def test_different_input_gives_a_different_reply() -> None:
    one = plan_reply(MODEL, [user("alpha")], max_tokens=None, directives=Directives())
    two = plan_reply(MODEL, [user("beta")], max_tokens=None, directives=Directives())
    assert one.content != two.content


def test_max_tokens_cuts_the_reply_with_finish_length() -> None:
    reply = plan_reply(MODEL, [user("x")], max_tokens=5, directives=Directives(tokens=10))
    assert (len(reply.tokens), reply.completion_tokens, reply.finish_reason) == (5, 5, "length")
    full = plan_reply(MODEL, [user("x")], max_tokens=None, directives=Directives(tokens=10))
    assert full.tokens[:5] == reply.tokens


def test_code_directive_ends_the_reply_with_a_fenced_python_block() -> None:
    from deepspace_lab.widgets.render import code_blocks

    directives = parse_directives([user("write code [sim:code] [sim:tokens=10]")])
    assert directives == Directives(code=True, tokens=10)
    reply = plan_reply(MODEL, [user("write code [sim:code] [sim:tokens=10]")], max_tokens=None, directives=directives)
    assert reply.tokens[0] == SIMULATED_MARKER and reply.completion_tokens == 10
    (block,) = code_blocks(reply.content)
    assert block.startswith("# simulated code") and '\\"simulated\\"' in block and "</script>" in block
    assert reply == plan_reply(MODEL, [user("write code [sim:code] [sim:tokens=10]")], max_tokens=None,
                               directives=directives)  # deterministic


def test_finish_directive_overrides_the_finish_reason() -> None:
    reply = plan_reply(MODEL, [user("x")], max_tokens=2, directives=Directives(finish="content_filter"))
    assert reply.finish_reason == "content_filter"


def test_completion_body_has_the_openai_shape() -> None:
    reply = plan_reply(MODEL, [user("hello there")], max_tokens=None, directives=Directives(tokens=3))
    body = completion_body(completion_id="chatcmpl-sim-1", created=7, model=MODEL, reply=reply)
    assert body["object"] == "chat.completion"
    assert (body["id"], body["created"], body["model"]) == ("chatcmpl-sim-1", 7, MODEL)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": reply.content}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    no_usage = completion_body(completion_id="x", created=7, model=MODEL, reply=reply, include_usage=False)
    assert "usage" not in no_usage


def test_stream_chunks_follow_openai_order() -> None:
    reply = plan_reply(MODEL, [user("hi")], max_tokens=None, directives=Directives(tokens=2))
    chunks = list(stream_chunks(completion_id="c", created=1, model=MODEL, reply=reply, include_usage=True))
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": reply.tokens[0]},
        {"content": reply.tokens[1]},
        {},
        None,
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:4]] == [None, None, None, "stop"]
    assert all(c["usage"] is None for c in chunks[:4])
    assert chunks[4]["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_stream_chunks_without_usage_have_no_usage_chunk() -> None:
    reply = plan_reply(MODEL, [user("hi")], max_tokens=None, directives=Directives(tokens=2))
    chunks = list(stream_chunks(completion_id="c", created=1, model=MODEL, reply=reply, include_usage=False))
    assert len(chunks) == 4
    assert all(c["choices"] and c["usage"] is None for c in chunks)
