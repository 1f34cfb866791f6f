"""The client without a gateway: SSE decoding, error mapping, configuration, token renewal
(``httpx.MockTransport`` at the transport boundary)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from deepspace_lab.client import (
    AuthenticationError,
    BudgetExceededError,
    ConnectionFailed,
    DeepSpaceClient,
    DeepSpaceClientError,
    InsufficientFundsError,
    NotFoundError,
    RateLimitedError,
    SSEDecoder,
    UpstreamError,
    error_from_body,
    gateway_root,
)
from deepspace_lab.client._config import ClientConfig


def test_sse_decoder_joins_split_chunks_names_and_multiline_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("event: del") == []
    assert decoder.feed("ta\r\ndata: {\"a\"\r\n") == []
    events = decoder.feed("data: :1}\r\n\r\n: keepalive\n\ndata: [DONE]\n\nevent: done\ndata: {}")
    assert [(e.event, e.data) for e in events] == [("delta", '{"a"\n:1}'), ("message", "[DONE]")]
    assert [(e.event, e.data) for e in decoder.close()] == [("done", "{}")]


@pytest.mark.parametrize(("status", "code", "cls"), [
    (402, "insufficient_funds", InsufficientFundsError),
    (429, "budget_exceeded", BudgetExceededError),
    (429, "rate_limited", RateLimitedError),
    (429, "upstream_rate_limited", RateLimitedError),
    (401, "invalid_api_key", AuthenticationError),
    (404, "conversation_not_found", NotFoundError),
    (502, "upstream_unavailable", UpstreamError),
    (504, "upstream_timeout", UpstreamError),
    (500, "internal_error", DeepSpaceClientError),
])
def test_errors_are_typed_by_the_servers_code_then_status(status: int, code: str, cls: type) -> None:
    error = error_from_body({"error": {"message": "m", "code": code, "param": "p"}}, status=status, retry_after=3)
    assert type(error) is cls and error.code == code and error.status == status and error.retry_after == 3
    assert error.param == "p" and str(error) == f"m ({code})"


def test_config_comes_from_the_environment_and_explicit_values_win() -> None:
    env = {"DEEPSPACE_GATEWAY_URL": "http://h:1/user/a/deepspace/v1/", "DEEPSPACE_API_KEY": "dsk_x",
           "DEEPSPACE_PROJECT": "prj_1"}
    config = ClientConfig.resolve(environ=env)
    assert config.base_url == "http://h:1/user/a" and config.credentials.bearer() == "dsk_x"
    assert config.project_id == "prj_1"
    assert ClientConfig.resolve(base_url="http://other", api_key="dsk_y", environ=env).credentials.bearer() == "dsk_y"
    with pytest.raises(DeepSpaceClientError) as err:
        ClientConfig.resolve(environ={})
    assert err.value.code == "client_not_configured" and "DEEPSPACE_GATEWAY_URL" in err.value.message
    assert gateway_root("http://x/deepspace/api") == "http://x"


def _jwt(exp: float) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256'})}.{part({'exp': exp})}.sig"


def test_an_expiring_token_is_renewed_once_for_every_client_sharing_it() -> None:
    calls: list[tuple[str, str | None]] = []
    fresh = _jwt(time.time() + 900)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.path, request.headers.get("Authorization")))
        if request.url.path.endswith("/auth/refresh"):
            assert json.loads(request.content) == {"refresh_token": "dsr_1"}
            return httpx.Response(200, json={"access_token": fresh, "refresh_token": "dsr_2"})
        return httpx.Response(200, json={"ok": True, "project": request.headers.get("X-DeepSpace-Project")})

    env = {"DEEPSPACE_GATEWAY_URL": "http://gw", "DEEPSPACE_TOKEN": _jwt(time.time() + 5),
           "DEEPSPACE_REFRESH_TOKEN": "dsr_1", "DEEPSPACE_PROJECT": "prj_9"}
    first = DeepSpaceClient(config=ClientConfig.resolve(environ=env), transport=httpx.MockTransport(handler))
    second = DeepSpaceClient(config=ClientConfig.resolve(environ=env), transport=httpx.MockTransport(handler))
    assert first.me() == {"ok": True, "project": "prj_9"}
    assert second.me()["ok"]
    assert [path for path, _ in calls] == ["/deepspace/api/auth/refresh", "/deepspace/api/me", "/deepspace/api/me"]
    assert calls[1][1] == calls[2][1] == f"Bearer {fresh}"


def test_an_unreachable_gateway_is_connection_failed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = DeepSpaceClient(base_url="http://gw", api_key="dsk_x", transport=httpx.MockTransport(handler))
    with pytest.raises(ConnectionFailed) as err:
        client.wallet()
    assert err.value.code == "connection_error" and err.value.status is None
