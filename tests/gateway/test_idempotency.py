"""``Idempotency-Key`` on chat completions: a retry replays the stored result and runs (and
bills) nothing; running → 409, another request → 422; failures free the key; concurrent
retries — also across two gateways on one database — run the request exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any, ClassVar

import httpx
import pytest
from openai import OpenAI

from deepspace_lab.db import utcnow
from deepspace_lab.idempotency import lookup_key
from deepspace_lab.pipeline import Pipeline, RequestContext, discover_steps
from deepspace_lab.pipeline.context import Next
from deepspace_lab.pipeline.idempotency import IdempotencyStep
from deepspace_lab.pipeline.registry import CHAT_STEPS_BEFORE

from ..helpers import Gateway, count, start_gateway

MODEL = "deepspace-simulated-chat"
KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
MARKER = "X-DeepSpace-Test-Marker"


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def post(gw: Gateway, body: dict[str, Any], *, key: str | None = KEY, **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.tenant.api_key}", **headers}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers, timeout=30)


class Probe:
    """An extension step, so it runs after ``idempotency`` (and after billing): it counts the
    requests that get that far, sets a header through the sink, and can hold them at a gate."""

    name: ClassVar[str] = "probe"

    def __init__(self, gw: Gateway, *, held: bool) -> None:
        self.loop = gw.loop
        self.passed = 0
        self.gate = gw.loop.run(self._event(held))

    @staticmethod
    async def _event(is_set: bool) -> asyncio.Event:
        event = asyncio.Event()
        if not is_set:
            event.set()
        return event

    def release(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.gate.set)

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        self.passed += 1
        assert ctx.sink is not None
        ctx.sink.set_header(MARKER, f"run-{self.passed}")
        await self.gate.wait()
        await call_next(ctx)


def install_probe(gw: Gateway, monkeypatch: pytest.MonkeyPatch, *, held: bool = False) -> Probe:
    probe = Probe(gw, held=held)
    registry = dict(discover_steps(), probe=lambda services: probe)
    monkeypatch.setattr(gw.runtime, "_pipeline",
                        Pipeline(gw.runtime.services, extensions=["probe"], registry=registry))
    return probe


def upstream_calls(gw: Gateway) -> int:
    return sum(1 for r in gw.audit_rows(kind="gateway.request") if (r["detail"] or {}).get("upstream_response_id"))


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_idempotency_runs_after_validate_and_before_billing() -> None:
    assert CHAT_STEPS_BEFORE[:2] == ("validate", "idempotency")
    if "budget_hold" in CHAT_STEPS_BEFORE:
        assert CHAT_STEPS_BEFORE.index("idempotency") < CHAT_STEPS_BEFORE.index("budget_hold")


def test_without_the_header_nothing_is_kept(gateway: Gateway) -> None:
    first, second = post(gateway, chat(), key=None), post(gateway, chat(), key=None)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"] and "Idempotent-Replayed" not in second.headers
    assert count(gateway.db, "idempotency_keys") == 0


def test_a_retry_replays_the_completion_byte_for_byte_and_runs_nothing(gateway: Gateway,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    probe = install_probe(gateway, monkeypatch)
    first = post(gateway, chat())
    usage_rows = count(gateway.db, "usage_records")
    second = post(gateway, chat())
    assert first.status_code == second.status_code == 200
    assert second.content == first.content and second.headers["content-type"] == "application/json"
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert second.headers[MARKER] == first.headers[MARKER] == "run-1"  # recorded headers come back
    assert probe.passed == 1 and upstream_calls(gateway) == 1
    assert count(gateway.db, "usage_records") == usage_rows  # nothing billed for the replay
    assert second.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    (row,) = gateway.audit_rows(trace_id=second.headers["X-Trace-Id"])
    assert row["status_code"] == 200 and row["request_id"] == second.headers["X-Request-Id"]
    assert row["detail"]["idempotent_replay"] is True and row["detail"]["idempotency_key"] == KEY
    assert row["detail"]["replay_of_request_id"] == first.headers["X-Request-Id"]


def test_a_streamed_completion_is_replayed_to_the_official_sdk(gateway: Gateway,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    probe = install_probe(gateway, monkeypatch)
    client = OpenAI(base_url=gateway.base_url, api_key=gateway.tenant.api_key, max_retries=0)

    def run() -> list[Any]:
        return list(client.chat.completions.create(model=MODEL, messages=chat()["messages"], stream=True,
                                                   stream_options={"include_usage": True},
                                                   extra_headers={"Idempotency-Key": KEY}))

    first, second = run(), run()
    assert [c.model_dump() for c in second] == [c.model_dump() for c in first]
    assert first[-1].usage is not None and probe.passed == 1
    # byte for byte (another key: the SDK's JSON is not httpx's, so it is another request)
    raw = [post(gateway, chat(stream=True), key="raw-stream") for _ in range(2)]
    assert [r.headers.get("Idempotent-Replayed") for r in raw] == [None, "true"]
    assert all(r.headers["content-type"].startswith("text/event-stream") for r in raw)
    assert raw[1].content == raw[0].content and raw[0].content.endswith(b"data: [DONE]\n\n")
    assert probe.passed == 2


def test_the_same_key_for_another_request_is_422_and_not_retryable(gateway: Gateway) -> None:
    assert post(gateway, chat("one")).status_code == 200
    conversation = httpx.post(gateway.url + "/deepspace/api/conversations", json={"title": "t"},
                              headers={"Authorization": f"Bearer {gateway.tenant.api_key}"}).json()["id"]
    for response in (post(gateway, chat("two")),
                     post(gateway, chat("one"), **{"X-DeepSpace-Conversation": conversation})):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert response.headers["x-should-retry"] == "false"
        (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
        assert row["error_code"] == "idempotency_key_reused"
    assert count(gateway.db, "messages") == 0  # the conversation got no turn


def test_keys_are_scoped_to_the_org(gateway_factory: Callable[..., Gateway]) -> None:
    first, other_org = gateway_factory(), gateway_factory()
    one, two = post(first, chat()), post(other_org, chat())
    assert one.status_code == two.status_code == 200
    assert one.json()["id"] != two.json()["id"] and "Idempotent-Replayed" not in two.headers


@pytest.mark.parametrize("value", ["x" * 256, "bad\tkey", "é"])
def test_an_invalid_key_is_a_clear_400(gateway: Gateway, value: str) -> None:
    response = httpx.post(gateway.base_url + "/chat/completions", json=chat(), timeout=30,
                          headers={"Authorization": f"Bearer {gateway.tenant.api_key}",
                                   "Idempotency-Key": value.encode()})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert count(gateway.db, "idempotency_keys") == 0 and upstream_calls(gateway) == 0


def test_while_the_first_runs_a_retry_gets_409_with_retry_after(gateway: Gateway,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    probe = install_probe(gateway, monkeypatch, held=True)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, gateway, chat())
        wait_for(lambda: probe.passed == 1)
        retry = post(gateway, chat())
        assert retry.status_code == 409 and retry.json()["error"]["code"] == "idempotency_in_progress"
        assert retry.headers["Retry-After"] == "1" and "x-should-retry" not in retry.headers
        probe.release()
        first = running.result(30)
    assert first.status_code == 200
    assert post(gateway, chat()).content == first.content and probe.passed == 1


def test_a_running_request_renews_its_lease(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a crashed gateway's key can be taken over: a live request, however long, keeps it."""
    monkeypatch.setattr(IdempotencyStep, "lease_s", 1.5)
    probe = install_probe(gateway, monkeypatch, held=True)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, gateway, chat())
        wait_for(lambda: probe.passed == 1)
        created = gateway.loop.run(lookup_key(gateway.runtime.engine, org_id=gateway.tenant.org_id, key=KEY))
        assert created is not None
        wait_for(lambda: utcnow() > created.created_at + timedelta(seconds=2))  # past the first lease
        retry = post(gateway, chat())
        assert retry.status_code == 409 and retry.json()["error"]["code"] == "idempotency_in_progress"
        probe.release()
        assert running.result(30).status_code == 200
    assert probe.passed == 1


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_frees_the_key(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    probe = install_probe(gateway, monkeypatch)
    failing = chat("hi [sim:error=500]", stream=stream)
    assert [post(gateway, failing).status_code for _ in range(2)] == [502, 502]
    assert probe.passed == 2  # the retry ran again
    fixed = post(gateway, chat(stream=stream))  # the freed key may carry another request
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed.headers


def test_a_stream_broken_off_upstream_frees_the_key(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = install_probe(gateway, monkeypatch)
    broken = chat("go [sim:fail_after=3] [sim:token_latency_ms=5]", stream=True)
    bodies = [post(gateway, broken).content for _ in range(2)]
    assert all(b"upstream_stream_interrupted" in b and not b.endswith(b"[DONE]\n\n") for b in bodies)
    assert probe.passed == 2 and count(gateway.db, "idempotency_keys") == 0


def test_a_stream_the_client_left_frees_the_key(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the gateway drains after a disconnect is not relayed, so no whole copy exists:
    never replay a stream with a gap, run the retry again."""
    probe = install_probe(gateway, monkeypatch)
    body = chat("slow [sim:token_latency_ms=20]", stream=True)
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {gateway.tenant.api_key}", "Idempotency-Key": KEY}) as first:
        next(first.iter_raw())
        trace = first.headers["X-Trace-Id"]
    wait_for(lambda: len(gateway.audit_rows(trace_id=trace)) == 1)
    retry = post(gateway, body)
    assert "Idempotent-Replayed" not in retry.headers and retry.content.endswith(b"data: [DONE]\n\n")
    assert probe.passed == 2
    assert post(gateway, body).headers["Idempotent-Replayed"] == "true"  # the retry's whole stream is kept


def test_a_non_stream_answer_is_kept_though_the_client_left(gateway: Gateway,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    probe = install_probe(gateway, monkeypatch, held=True)
    headers = {"Authorization": f"Bearer {gateway.tenant.api_key}", "Idempotency-Key": KEY}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while the request is held
        httpx.post(gateway.base_url + "/chat/completions", json=chat(), headers=headers, timeout=0.5)
    probe.release()
    wait_for(lambda: len(gateway.audit_rows(kind="gateway.request")) == 1)
    retry = post(gateway, chat())
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true" and probe.passed == 1


def test_a_response_too_big_to_keep_is_not_run_again(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(IdempotencyStep, "max_response_bytes", 100)
    probe = install_probe(gateway, monkeypatch)
    first = post(gateway, chat())
    assert first.status_code == 200 and len(first.content) > 100
    (row,) = gateway.audit_rows(trace_id=first.headers["X-Trace-Id"])
    assert row["detail"]["idempotent_response_stored"] is False
    retry = post(gateway, chat())
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "idempotent_response_not_stored"
    assert retry.headers["x-should-retry"] == "false" and probe.passed == 1


# -- concurrency ----------------------------------------------------------------------------------

REQUESTS = 32


def test_concurrent_retries_on_two_gateways_run_the_request_once(gateway: Gateway,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gateways on one database, 32 requests with one key at once, the first held inside:
    exactly one gets past the step, every other one is 409; once it is done, every retry
    (again all at once) replays its response."""
    other = start_gateway(gateway.settings, gateway.tenant)
    try:
        probes = [install_probe(gw, monkeypatch, held=True) for gw in (gateway, other)]
        gateways = [gateway, other] * (REQUESTS // 2)
        with ThreadPoolExecutor(REQUESTS) as pool:
            futures = [pool.submit(post, gw, chat()) for gw in gateways]
            done: set[Future[httpx.Response]] = set()
            while len(done) < REQUESTS - 1:  # all but the held one answer while it is held
                finished, _ = wait(set(futures) - done, timeout=30, return_when=FIRST_COMPLETED)
                assert finished, "requests hung"
                done |= finished
            # the request that claimed the key may answer the others' 409s before it reaches the probe
            wait_for(lambda: sum(p.passed for p in probes) >= 1)
            assert sum(p.passed for p in probes) == 1
            assert Counter(f.result().status_code for f in done) == {409: REQUESTS - 1}
            for probe in probes:
                probe.release()
            (held,) = set(futures) - done
            first = held.result(30)
            assert first.status_code == 200
            retries = [f.result(30) for f in [pool.submit(post, gw, chat()) for gw in gateways]]
        assert all(r.status_code == 200 and r.content == first.content for r in retries)
        assert all(r.headers["Idempotent-Replayed"] == "true" for r in retries)
        assert sum(p.passed for p in probes) == 1 and upstream_calls(gateway) == 1
    finally:
        other.close()


def test_concurrent_streamed_requests_with_one_key_reach_the_upstream_once(gateway: Gateway) -> None:
    """No gate: a natural race. Whatever the interleaving, one request runs, every other one
    is 409 or a replay of exactly that stream."""
    body = chat("race [sim:token_latency_ms=2]", stream=True)
    with ThreadPoolExecutor(REQUESTS) as pool:
        responses = list(pool.map(lambda _: post(gateway, body), range(REQUESTS)))
    ran = [r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r.headers]
    replays = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(ran) == 1 and upstream_calls(gateway) == 1
    assert all(r.status_code == 409 for r in responses if r not in ran and r not in replays)
    assert all(r.content == ran[0].content for r in replays)
    assert ran[0].content.endswith(b"data: [DONE]\n\n")
