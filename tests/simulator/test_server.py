"""The simulator over real HTTP, driven by the official OpenAI SDK and by httpx."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from deepspace_lab.server_extension.simulator import start_simulator

MODEL = "deepspace-simulated-chat"


@contextmanager
def running_simulator(*, token_latency_ms: float = 0.0) -> Iterator[str]:
    """Run the simulator on its own loop in a thread; yields the ``/v1`` base URL."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        server, port = start_simulator(token_latency_ms=token_latency_ms)
        state.update(loop=asyncio.get_running_loop(), stop=stop, port=port)
        ready.set()
        await stop.wait()
        server.stop()
        await server.close_all_connections()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5), "simulator did not start"
    try:
        yield f"http://127.0.0.1:{state['port']}/v1"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(5)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_simulator() as url:
        yield url


@pytest.fixture
def sdk(base_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        yield client


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(response: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.iter_lines() if line]


def test_models_lists_the_simulated_catalog(sdk: OpenAI, http: httpx.Client) -> None:
    models = {m.id: m for m in sdk.models.list()}
    assert set(models) == {"deepspace-simulated-chat", "deepspace-simulated-long"}
    assert {m.owned_by for m in models.values()} == {"deepspace-simulator"}
    response = http.get("/models")
    assert response.json()["object"] == "list"
    assert response.headers["X-DeepSpace-Simulated"] == "true"


def test_non_stream_completion_is_deterministic_and_marked(sdk: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Describe a pulsar [sim:tokens=6]"}]
    first = sdk.chat.completions.create(model=MODEL, messages=messages)
    second = sdk.chat.completions.create(model=MODEL, messages=messages)
    content = first.choices[0].message.content
    assert content is not None and content.startswith("[simulated] ")
    assert len(content.split(" ")) == 6
    assert content == second.choices[0].message.content
    assert first.id != second.id and first.id.startswith("chatcmpl-sim-")
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (10, 6, 16)


def test_max_completion_tokens_cuts_with_finish_length(sdk: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "long please"}]
    result = sdk.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=3)
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 3
    legacy = sdk.chat.completions.create(model=MODEL, messages=messages, max_tokens=3)
    assert legacy.choices[0].message.content == result.choices[0].message.content


def test_stream_sends_tokens_and_usage_only_when_asked(sdk: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "stream it [sim:tokens=5]"}]
    with_usage = list(
        sdk.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    without_usage = list(sdk.chat.completions.create(model=MODEL, messages=messages, stream=True))
    tokens = [c.choices[0].delta.content for c in with_usage if c.choices and c.choices[0].delta.content]
    assert tokens[0] == "[simulated]" and len(tokens) == 5
    assert with_usage[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in with_usage if c.choices][-1] == "stop"
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in with_usage[:-1])
    assert all(c.choices and c.usage is None for c in without_usage)
    same = [c.choices[0].delta.content for c in without_usage if c.choices[0].delta.content]
    assert same == tokens
    non_stream = sdk.chat.completions.create(model=MODEL, messages=messages)
    assert non_stream.choices[0].message.content == "".join(tokens)


def test_stream_is_server_sent_events_ending_in_done(http: httpx.Client) -> None:
    with http.stream("POST", "/chat/completions", json=chat("hi [sim:tokens=2]", stream=True)) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["X-DeepSpace-Simulated"] == "true"
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    assert len(events) == 1 + 2 + 1 + 1  # role, two tokens, finish, [DONE]


def test_no_usage_directive_omits_usage_everywhere(http: httpx.Client) -> None:
    body = http.post("/chat/completions", json=chat("x [sim:no_usage]")).json()
    assert "usage" not in body
    payload = chat("x [sim:no_usage] [sim:tokens=2]", stream=True, stream_options={"include_usage": True})
    with http.stream("POST", "/chat/completions", json=payload) as response:
        chunks = [orjson.loads(e) for e in sse_events(response)[:-1]]
    assert all(c["choices"] and c["usage"] is None for c in chunks)


def test_finish_directive_sets_finish_reason(sdk: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sim:finish=content_filter]"}]
    result = sdk.chat.completions.create(model=MODEL, messages=messages)
    assert result.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limit_exceeded"), (503, "simulated_503")])
def test_error_directive_answers_that_status_with_an_openai_error(
    http: httpx.Client, status: int, code: str
) -> None:
    response = http.post("/chat/completions", json=chat(f"boom [sim:error={status}]", stream=True))
    assert response.status_code == status
    assert response.headers["X-DeepSpace-Simulated"] == "true"
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


def test_error_header_overrides_the_message(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=chat("[sim:error=500]"), headers={"X-Sim-Error": "401"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_sdk_raises_the_matching_error_class(sdk: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sim:error=429]"}]
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model=MODEL, messages=messages)


def test_fail_after_drops_the_stream_without_done(http: httpx.Client) -> None:
    received: list[str] = []
    payload = chat("[sim:tokens=6] [sim:fail_after=2]", stream=True)
    with pytest.raises(httpx.RemoteProtocolError):
        with http.stream("POST", "/chat/completions", json=payload) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line:
                    received.append(line.removeprefix("data: "))
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in received]
    assert contents[1:] and contents[1] == "[simulated]"
    assert len(contents) == 3  # role chunk and exactly two tokens; no finish, no [DONE]


def test_fail_after_surfaces_as_an_sdk_error_mid_stream(sdk: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sim:fail_after=1]"}]
    seen: list[str | None] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in sdk.chat.completions.create(model=MODEL, messages=messages, stream=True):
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["", "[simulated]"]


def test_fail_after_without_stream_closes_without_a_response(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/chat/completions", json=chat("[sim:fail_after=0]"))


def test_delay_longer_than_the_client_timeout_times_out(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/chat/completions", json=chat("[sim:delay_ms=1500]"))


def test_delay_holds_back_the_response_headers(http: httpx.Client) -> None:
    started = time.perf_counter()
    response = http.post("/chat/completions", json=chat("x"), headers={"X-Sim-Delay-Ms": "150"})
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.15
    assert time.perf_counter() - started >= 0.15


def test_token_latency_directive_spaces_out_tokens(http: httpx.Client) -> None:
    started = time.perf_counter()
    payload = chat("[sim:tokens=4] [sim:token_latency_ms=30]", stream=True)
    with http.stream("POST", "/chat/completions", json=payload) as response:
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    assert time.perf_counter() - started >= 4 * 0.03


def test_server_default_token_latency_applies() -> None:
    with running_simulator(token_latency_ms=25) as url, httpx.Client(base_url=url) as client:
        started = time.perf_counter()
        with client.stream("POST", "/chat/completions", json=chat("[sim:tokens=4]", stream=True)) as response:
            sse_events(response)
        slow = time.perf_counter() - started
        started = time.perf_counter()
        payload = chat("[sim:tokens=4] [sim:token_latency_ms=0]", stream=True)
        with client.stream("POST", "/chat/completions", json=payload) as response:
            sse_events(response)
        fast = time.perf_counter() - started
    assert slow >= 4 * 0.025
    assert fast < slow


def test_unknown_model_is_404_model_not_found(http: httpx.Client, sdk: OpenAI) -> None:
    response = http.post("/chat/completions", json={**chat("hi"), "model": "gpt-4o"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-4o", messages=messages)


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), "model"),
        (orjson.dumps({"model": MODEL}), "messages"),
        (orjson.dumps({"model": MODEL, "messages": []}), "messages"),
        (orjson.dumps({**chat("x"), "max_tokens": 0}), "max_tokens"),
        (orjson.dumps({**chat("x"), "max_completion_tokens": "9"}), "max_completion_tokens"),
        (orjson.dumps({**chat("x", stream=True), "stream_options": "yes"}), "stream_options"),
    ],
)
def test_bad_request_bodies_are_400_in_openai_shape(
    http: httpx.Client, content: bytes, param: str | None
) -> None:
    response = http.post("/chat/completions", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["X-DeepSpace-Simulated"] == "true"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_malformed_directive_value_is_400(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=chat("[sim:error=teapot]"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_directive"


def test_unknown_route_is_an_openai_shaped_404(http: httpx.Client) -> None:
    response = http.get("/embeddings")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    assert response.headers["X-DeepSpace-Simulated"] == "true"


def test_params_directive_says_what_sampling_parameters_reached_the_model(sdk: OpenAI) -> None:
    answer = sdk.chat.completions.create(model=MODEL, temperature=0.3, max_tokens=9, seed=7,
                                         messages=[{"role": "user", "content": "hi [sim:params] [sim:tokens=8]"}])
    words = (answer.choices[0].message.content or "").split()
    assert words[:4] == ["[simulated]", "temperature=0.3", "max_tokens=9", "seed=7"] and len(words) == 8
    plain = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi [sim:params]"}])
    assert "=" not in (plain.choices[0].message.content or "")  # nothing set: nothing said
