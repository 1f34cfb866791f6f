"""Bad input gets a clear 400 and stores nothing; upstream failures map to 502/504 —
every one with an audit row and no secret on the wire."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from ..helpers import Gateway, count

MODEL = "deepspace-simulated-chat"


def post(gw: Gateway, body: Any, *, raw: bytes | None = None, **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.tenant.api_key}", **headers}
    if raw is not None:
        return httpx.post(gw.base_url + "/chat/completions", content=raw, headers=headers, timeout=30)
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers, timeout=30)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


BAD_BODIES = [
    (b"{not json", "invalid_json", None),
    (b"", "invalid_json", None),
    (b"[1, 2]", "invalid_json", None),
    (json.dumps({"messages": user("hi")}).encode(), "missing_field", "model"),
    (json.dumps({"model": 5, "messages": user("hi")}).encode(), "invalid_type", "model"),
    (json.dumps({"model": "m\x00", "messages": user("hi")}).encode(), "invalid_value", "model"),
    (json.dumps({"model": MODEL, "messages": user("hi"), "conversation_id": "../x"}).encode(), "invalid_value",
     "conversation_id"),
    (json.dumps({"model": "no-such-model", "messages": user("hi")}).encode(), "model_not_found", "model"),
    (json.dumps({"model": MODEL}).encode(), "missing_field", "messages"),
    (json.dumps({"model": MODEL, "messages": []}).encode(), "invalid_type", "messages"),
    (json.dumps({"model": MODEL, "messages": ["hi"]}).encode(), "invalid_type", "messages[0]"),
    (json.dumps({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}).encode(), "invalid_value",
     "messages[0].role"),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": 7}]}).encode(), "invalid_type",
     "messages[0].content"),
    (json.dumps({"model": MODEL, "messages": user("hi"), "stream": "yes"}).encode(), "invalid_type", "stream"),
    (json.dumps({"model": MODEL, "messages": user("hi"), "max_tokens": -1}).encode(), "invalid_type", "max_tokens"),
    (json.dumps({"model": MODEL, "messages": user("hi"), "temperature": "hot"}).encode(), "invalid_type",
     "temperature"),
]


@pytest.mark.parametrize(("raw", "code", "param"), BAD_BODIES, ids=[c for _, c, _ in BAD_BODIES])
def test_bad_input_is_a_clear_400_that_stores_nothing(gateway: Gateway, raw: bytes, code: str,
                                                      param: str | None) -> None:
    response = post(gateway, None, raw=raw)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == param
    assert error["type"] == "invalid_request_error" and error["message"]
    assert response.headers["x-should-retry"] == "false"
    (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert row["status_code"] == 400 and row["error_code"] == code
    assert count(gateway.db, "messages") == 0 and count(gateway.db, "usage_records") == 0


def test_oversized_body_is_refused_with_400(gateway_factory) -> None:
    gw = gateway_factory(max_body_bytes=2048)
    response = post(gw, {"model": MODEL, "messages": user("x" * 5000)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "body_too_large"


def test_unknown_route_and_wrong_method_use_the_error_shape(gateway: Gateway) -> None:
    response = httpx.get(gateway.base_url + "/chat/completions")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_down_is_502_with_an_audit_row(gateway_factory, stream: bool) -> None:
    gw = gateway_factory(upstream_base_url=f"http://127.0.0.1:{_closed_port()}/v1",
                         upstream_api_key="sk-upstream-SECRET-value-123")
    response = post(gw, {"model": MODEL, "messages": user("hi"), "stream": stream})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable" and "unreachable" in error["message"]
    assert "SECRET" not in response.text and "127.0.0.1" not in response.text
    (row,) = gw.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert row["status_code"] == 502 and row["error_code"] == "upstream_unavailable"


@pytest.mark.parametrize("stream", [False, True])
def test_slow_upstream_is_504_after_the_configured_timeout(gateway_factory, stream: bool) -> None:
    gw = gateway_factory(upstream_timeout_s=0.3)
    response = post(gw, {"model": MODEL, "messages": user("hi [sim:delay_ms=3000]"), "stream": stream})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert "0.3 s" in response.json()["error"]["message"]
    (row,) = gw.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert row["status_code"] == 504 and row["latency_ms"] < 2500


@pytest.mark.parametrize(("status", "code", "ours"), [
    (500, "upstream_error", 502), (503, "upstream_error", 502), (401, "upstream_auth_failed", 502),
    (429, "upstream_rate_limited", 429), (400, "upstream_rejected", 400),
])
def test_upstream_errors_map_to_our_codes(gateway: Gateway, status: int, code: str, ours: int) -> None:
    for stream in (False, True):
        response = post(gateway, {"model": MODEL, "messages": user(f"hi [sim:error={status}]"), "stream": stream})
        assert response.status_code == ours
        assert response.json()["error"]["code"] == code
        (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
        assert row["error_code"] == code


def test_mid_stream_failure_ends_with_an_error_event(gateway: Gateway) -> None:
    client = OpenAI(base_url=gateway.base_url, api_key=gateway.tenant.api_key, max_retries=0)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        # Paced tokens: tornado's client drops bytes that arrive in the same read as the
        # upstream's FIN, so the last token before the cut may be lost (see README).
        for chunk in client.chat.completions.create(
                model=MODEL, messages=user("go [sim:fail_after=8] [sim:token_latency_ms=5]"), stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert 6 <= len(received) <= 8 and received[0] == "[simulated]"
    assert "broke off" in str(caught.value)
    rows = [r for r in gateway.audit_rows() if r["error_code"] == "upstream_stream_interrupted"]
    assert len(rows) == 1 and rows[0]["status_code"] == 200


def test_mid_non_stream_failure_is_502(gateway: Gateway) -> None:
    response = post(gateway, {"model": MODEL, "messages": user("go [sim:fail_after=3]")})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"


def test_upstream_is_sent_our_trace_and_request_ids(gateway_factory) -> None:
    """The simulator echoes nothing, so check with a tiny upstream that records headers."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: dict[str, str] = {}

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.update({k.lower(): v for k, v in self.headers.items()})
            self.rfile.read(int(self.headers["Content-Length"]))
            seen["body"] = "read"
            body = json.dumps({"id": "up-1", "object": "chat.completion", "model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gw = gateway_factory(upstream_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                             upstream_api_key="sk-upstream-xyz")
        response = post(gw, {"model": MODEL, "messages": user("hi")})
        assert response.status_code == 200
        trace = response.headers["X-Trace-Id"]
        assert seen["traceparent"].split("-")[1] == trace
        assert seen["x-request-id"] == response.headers["X-Request-Id"]
        assert seen["authorization"] == "Bearer sk-upstream-xyz"
        assert gw.tenant.api_key not in json.dumps(seen)  # the caller's key never goes upstream
    finally:
        server.shutdown()


def _refusing_upstream(status: int, body: bytes) -> Any:
    """A tiny upstream that answers every call with ``status`` and ``body``."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Refuser(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Refuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _new_api_error(message: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": "new_api_error", "code": code}}).encode()


OUT_OF_QUOTA = [
    (403, _new_api_error("user quota is not enough sk-upstreamSECRET1", "insufficient_user_quota")),
    (403, _new_api_error("pre-consume failed, remaining 0.12", "pre_consume_token_quota_failed")),
    (403, _new_api_error("用户额度不足, 剩余额度: ＄0.120000", None)),
    (401, _new_api_error("该令牌额度已用尽", None)),  # one-api: the token's own quota ran out
    (403, _new_api_error("Insufficient account balance", "")),
    # new-api#6306: a pre-consume failure answered as a request error still names the balance
    (400, _new_api_error("pre-consume failed, remaining 0.12", None)),
    (422, _new_api_error("remaining balance 0.12 is not enough", None)),
    (402, _new_api_error("insufficient quota, remaining 0.12", "insufficient_quota")),
    (429, _new_api_error("You exceeded your current quota, remaining 0.12", "insufficient_quota")),
]


@pytest.mark.parametrize(("status", "body"), OUT_OF_QUOTA, ids=["code", "pre-consume", "message-zh", "token-401",
                                                                "balance", "400", "422", "402", "429"])
def test_an_upstream_account_out_of_quota_is_a_retryable_503(gateway_factory, caplog, status: int,
                                                             body: bytes) -> None:
    server = _refusing_upstream(status, body)
    try:
        gw = gateway_factory(upstream_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                             upstream_api_key="sk-upstream-xyz")
        for stream in (False, True):
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="deepspace_lab.upstream"):
                response = post(gw, {"model": MODEL, "messages": user("hi"), "stream": stream})
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert (error["code"], error["type"]) == ("upstream_quota_exhausted", "server_error")
            assert response.headers.get("x-should-retry") != "false"  # a retry can work once it is topped up
            for upstream_detail in ("quota is not", "额度", "balance", "0.12", "SECRET", "new_api"):
                assert upstream_detail not in response.text
            (row,) = gw.audit_rows(trace_id=response.headers["X-Trace-Id"])
            assert (row["status_code"], row["error_code"]) == (503, "upstream_quota_exhausted")
            (logged,) = [r for r in caplog.records if r.name == "deepspace_lab.upstream"]
            assert logged.levelno == logging.ERROR and "out of quota" in logged.getMessage()
            assert "SECRET" not in logged.getMessage()
        assert count(gw.db, "messages") == 0
    finally:
        server.shutdown()


GENUINE_AUTH_FAILURES = [
    (401, _new_api_error("Incorrect API key provided: sk-wrong****", "invalid_api_key")),
    (401, _new_api_error("无效的令牌", None)),  # one-api: invalid token
    (403, b"Forbidden"),
    (403, _new_api_error("this token has no access to the model", None)),
]


@pytest.mark.parametrize(("status", "body"), GENUINE_AUTH_FAILURES, ids=["openai", "invalid-token-zh", "text",
                                                                         "no-access"])
def test_a_genuine_upstream_auth_failure_stays_upstream_auth_failed(gateway_factory, caplog, status: int,
                                                                     body: bytes) -> None:
    server = _refusing_upstream(status, body)
    try:
        gw = gateway_factory(upstream_base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                             upstream_api_key="sk-upstream-xyz")
        with caplog.at_level(logging.ERROR, logger="deepspace_lab.upstream"):
            response = post(gw, {"model": MODEL, "messages": user("hi")})
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_auth_failed"
        assert any("credentials" in r.getMessage() for r in caplog.records if r.name == "deepspace_lab.upstream")
    finally:
        server.shutdown()
