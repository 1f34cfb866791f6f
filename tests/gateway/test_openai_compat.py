"""Any OpenAI client talks to the Gateway unchanged; every request is traced and audited."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from deepspace_lab.auth import key_prefix

from ..helpers import Gateway, count

MODEL = "deepspace-simulated-chat"
HELLO = [{"role": "user", "content": "hello there"}]


def sdk(gw: Gateway, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key or gw.tenant.api_key, max_retries=0)


def test_models_list_shows_the_catalog(gateway: Gateway) -> None:
    ids = [m.id for m in sdk(gateway).models.list()]
    assert ids == ["deepspace-simulated-chat", "deepspace-simulated-long"]


def test_non_streaming_completion_with_the_official_sdk(gateway: Gateway) -> None:
    reply = sdk(gateway).chat.completions.create(model=MODEL, messages=HELLO)
    assert reply.choices[0].message.content.startswith("[simulated]")
    assert reply.usage is not None and reply.usage.completion_tokens == 24
    again = sdk(gateway).chat.completions.create(model=MODEL, messages=HELLO)
    assert again.choices[0].message.content == reply.choices[0].message.content  # deterministic upstream


def test_streaming_completion_relays_every_token_and_done(gateway: Gateway) -> None:
    stream = sdk(gateway).chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = sdk(gateway).chat.completions.create(model=MODEL, messages=HELLO).choices[0].message.content
    assert text == expected
    # usage was asked of the upstream by the gateway, but the caller did not ask: it is stripped
    assert all(c.usage is None for c in chunks)


def test_streaming_usage_chunk_is_kept_when_the_caller_asks(gateway: Gateway) -> None:
    chunks = list(sdk(gateway).chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 24


def test_raw_sse_ends_with_done(gateway: Gateway) -> None:
    with httpx.stream("POST", gateway.base_url + "/chat/completions",
                      headers={"Authorization": f"Bearer {gateway.tenant.api_key}"},
                      json={"model": MODEL, "messages": HELLO, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_trace_id_from_traceparent_is_echoed_and_audited(gateway: Gateway) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = httpx.post(gateway.base_url + "/chat/completions",
                          headers={"Authorization": f"Bearer {gateway.tenant.api_key}",
                                   "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
                          json={"model": MODEL, "messages": HELLO})
    assert response.status_code == 200
    assert response.headers["X-Trace-Id"] == trace
    rows = gateway.audit_rows(trace_id=trace)
    assert len(rows) == 1
    row = rows[0]
    assert row["kind"] == "gateway.request" and row["status_code"] == 200
    assert row["org_id"] == gateway.tenant.org_id and row["api_key_id"] == gateway.tenant.api_key_id
    assert row["model"] == MODEL and row["request_id"] == response.headers["X-Request-Id"]
    assert row["latency_ms"] > 0


def test_invalid_traceparent_gets_a_new_trace_id(gateway: Gateway) -> None:
    response = httpx.get(gateway.base_url + "/models", headers={
        "Authorization": f"Bearer {gateway.tenant.api_key}", "traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    trace = response.headers["X-Trace-Id"]
    assert len(trace) == 32 and trace != "0" * 32
    assert len(gateway.audit_rows(trace_id=trace)) == 1


def test_every_streamed_request_is_audited_with_its_usage(gateway: Gateway) -> None:
    with httpx.stream("POST", gateway.base_url + "/chat/completions",
                      headers={"Authorization": f"Bearer {gateway.tenant.api_key}"},
                      json={"model": MODEL, "messages": HELLO, "stream": True}) as response:
        response.read()
        trace = response.headers["X-Trace-Id"]
    (row,) = gateway.audit_rows(trace_id=trace)
    assert row["status_code"] == 200 and row["error_code"] is None
    detail = row["detail"]
    assert detail["stream"] is True and detail["completion_tokens"] == 24
    assert detail["upstream_response_id"].startswith("chatcmpl-sim-")


def test_missing_and_wrong_keys_are_refused_in_the_openai_shape_and_audited(gateway: Gateway) -> None:
    for headers, code in (({}, "missing_api_key"),
                          ({"Authorization": "Bearer dsk_0123456789ab_" + "x" * 43}, "invalid_api_key"),
                          ({"Authorization": "Bearer not-a-key"}, "invalid_api_key")):
        response = httpx.post(gateway.base_url + "/chat/completions", headers=headers,
                              json={"model": MODEL, "messages": HELLO})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["type"] == "authentication_error"
        (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
        assert row["status_code"] == 401 and row["org_id"] is None
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, key="dsk_0123456789ab_" + "y" * 43).models.list()


def test_a_key_whose_secret_part_is_wrong_is_refused(gateway: Gateway) -> None:
    prefix = key_prefix(gateway.tenant.api_key)
    response = httpx.get(gateway.base_url + "/models",
                         headers={"Authorization": f"Bearer {prefix}_{'A' * 43}"})
    assert response.status_code == 401


def test_jupyter_style_token_header_is_not_a_gateway_credential(gateway: Gateway) -> None:
    response = httpx.get(gateway.base_url + "/models",
                         headers={"Authorization": f"token {gateway.tenant.api_key}"})
    assert response.status_code == 401


def test_health_and_readiness(gateway: Gateway) -> None:
    health = httpx.get(gateway.url + "/deepspace/api/health").json()
    assert health["status"] == "ok" and health["upstream"] == "simulated"
    ready = httpx.get(gateway.url + "/deepspace/api/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "not_configured", "upstream": "ok"}


def test_readiness_checks_a_real_redis(gateway_factory, redis_url: str) -> None:
    gw = gateway_factory(redis_url=redis_url)
    assert httpx.get(gw.url + "/deepspace/api/health/ready").json()["checks"]["redis"] == "ok"


def test_readiness_is_503_when_redis_is_unreachable(gateway_factory) -> None:
    gw = gateway_factory(redis_url="redis://127.0.0.1:1/0")
    ready = httpx.get(gw.url + "/deepspace/api/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("error: cannot reach Redis")


def test_batched_audit_rows_reach_the_database(gateway_factory) -> None:
    gw = gateway_factory(audit_flush_interval_ms=3_600_000)  # never flushes by itself in this test
    traces = [httpx.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {gw.tenant.api_key}"})
              .headers["X-Trace-Id"] for _ in range(5)]
    assert count(gw.db, "audit_logs", kind="gateway.request") == 0
    gw.loop.run(gw.runtime.audit.flush())
    assert [len(gw.audit_rows(trace_id=t)) for t in traces] == [1] * 5
