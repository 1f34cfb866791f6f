"""What both clients share: how each call is built and how each answer is read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..tracing import make_traceparent
from ._config import ClientConfig, next_idempotency_key
from ._errors import ConnectionFailed, DeepSpaceClientError, error_from_body

API = "/deepspace/api"
V1 = "/deepspace/v1"
USER_AGENT = "deepspace-lab-client"


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    #: False: send no credential (login, refresh)
    auth: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    #: a raw request body (a file upload), sent instead of ``json``
    content: bytes | None = None
    #: True: answer the response's bytes as they are (a file's content)
    raw: bool = False


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One event of the product stream: ``delta``, ``thought``, ``tool_call``, ``tool_result``,
    ``citation``, ``usage``, ``billing``, ``error`` or ``done``."""

    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A non-streaming chat completion with the Gateway's headers read: ``cost_micros`` (what it
    cost; an idempotent replay repeats the first request's), ``replayed`` (answered from an
    ``Idempotency-Key``'s stored response: nothing ran or was billed now), ``request_id``."""

    body: dict[str, Any]
    cost_micros: int | None
    replayed: bool
    request_id: str | None
    trace_id: str | None

    @classmethod
    def of(cls, response: httpx.Response) -> ChatResult:
        cost = response.headers.get("X-DeepSpace-Cost-Micros")
        return cls(body=response.json(), cost_micros=int(cost) if cost and cost.isdigit() else None,
                   replayed=response.headers.get("Idempotent-Replayed") == "true",
                   request_id=response.headers.get("X-Request-Id"), trace_id=response.headers.get("X-Trace-Id"))


def chat_body(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, **params}
    if stream:
        body["stream"] = True
    return body


def product_stream_body(*, conversation_id: str, content: str | None, model: str, system: str | None,
                        regenerate: bool, params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"conversation_id": conversation_id, "model": model, **params}
    if content is not None:
        body["content"] = content
    if system:
        body["system"] = system
    if regenerate:
        body["regenerate"] = True
    return body


def clean_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class BaseClient:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def openai_base_url(self) -> str:
        """For the official OpenAI SDK: ``OpenAI(base_url=client.openai_base_url, api_key=…)``."""
        return self.config.base_url + V1

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **call.headers}
        if self.config.trace_id:
            headers["traceparent"] = make_traceparent(self.config.trace_id)
        bearer = self.config.credentials.bearer() if call.auth else None
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
            if self.config.project_id and self.config.credentials.kind == "token":
                headers["X-DeepSpace-Project"] = self.config.project_id
        return headers

    def _request_kwargs(self, call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self._headers(call)}
        if call.params:
            kwargs["params"] = clean_params(call.params)
        if call.json is not None:
            kwargs["json"] = call.json
        if call.content is not None:
            kwargs["content"] = call.content
        return kwargs

    def _chat_call(self, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Call:
        """A chat completion; numbered for idempotency when the config has a prefix (unless the
        caller's ``headers`` name the key themselves)."""
        prefix = self.config.idempotency_prefix
        given = dict(headers or {})
        numbered = ({"Idempotency-Key": next_idempotency_key(prefix)} if prefix and "Idempotency-Key" not in given
                    else {})
        return Call("POST", V1 + "/chat/completions", json=body, headers={**numbered, **given})

    def _refresh_call(self) -> Call:
        return Call("POST", API + "/auth/refresh", json={"refresh_token": self.config.credentials.refresh_token},
                    auth=False)


def raise_for_response(response: httpx.Response, body: bytes) -> None:
    if response.status_code < 400:
        return
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    retry = response.headers.get("Retry-After")
    raise error_from_body(parsed, status=response.status_code, retry_after=float(retry) if retry and
                          retry.replace(".", "", 1).isdigit() else None,
                          request_id=response.headers.get("X-Request-Id"), trace_id=response.headers.get("X-Trace-Id"))


def decode(response: httpx.Response, *, raw: bool = False) -> Any:
    raise_for_response(response, response.content)
    if raw:
        return response.content
    if response.status_code == 204 or not response.content:
        return None
    if not response.headers.get("content-type", "application/json").startswith("application/json"):
        return response.text  # e.g. the Prometheus metrics
    return response.json()


def connection_error(exc: httpx.TransportError, base_url: str) -> ConnectionFailed:
    return ConnectionFailed(f"cannot reach the Gateway at {base_url}: {exc}", code="connection_error")


def is_expired(error: DeepSpaceClientError) -> bool:
    return error.code == "token_expired"


def event_data(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {"raw": raw}
    return value if isinstance(value, dict) else {"value": value}


def openai_chunk(raw: str) -> dict[str, Any] | None:
    """A decoded OpenAI stream chunk; None for ``[DONE]``; raises an ``error`` chunk's error."""
    if raw.strip() == "[DONE]":
        return None
    chunk = event_data(raw)
    if "error" in chunk:
        raise error_from_body(chunk, status=None)
    return chunk


def stream_error(data: Mapping[str, Any]) -> DeepSpaceClientError:
    """The typed error of a product stream's ``error`` event."""
    status = data.get("status")
    return error_from_body({"error": dict(data)}, status=status if isinstance(status, int) else None)
