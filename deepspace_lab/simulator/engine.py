"""The simulated model itself: catalog, directives, deterministic replies, OpenAI JSON shapes.

Plain Python with no I/O and no web framework, so the HTTP handlers stay thin and every rule
here is unit-testable. See the package docstring for the directive table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from deepspace_lab.errors import InvalidRequest

#: The catalog served at ``GET /v1/models``. "simulated" is in every id on purpose: the
#: simulator must never be mistaken for a real model anywhere it shows up.
SIMULATED_MODELS: tuple[dict[str, Any], ...] = (
    {
        "id": "deepspace-simulated-chat",
        "context_window": 8192,
        # simulated prices (micro-credits per million tokens), set by `init` when none exists
        "input_micros_per_mtok": 500_000,
        "output_micros_per_mtok": 1_500_000,
        "description": "Simulated model (no real AI): deterministic replies for development and tests",
    },
    {
        "id": "deepspace-simulated-long",
        "context_window": 32768,
        "input_micros_per_mtok": 1_000_000,
        "output_micros_per_mtok": 3_000_000,
        "description": "Simulated model (no real AI) with a long context window: deterministic replies",
    },
)

#: Fixed ``created`` timestamp for the catalog (2025-01-01T00:00:00Z) so listings are stable.
CATALOG_CREATED = 1735689600
OWNED_BY = "deepspace-simulator"
#: The first token of every reply, so simulated output is recognisable wherever it lands.
SIMULATED_MARKER = "[simulated]"
DEFAULT_REPLY_TOKENS = 24

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_DIRECTIVE_RE = re.compile(r"\[sim:([A-Za-z_][\w-]*)(?:=([^\]\s]*))?\]")
_HEADER_PREFIX = "x-sim-"
_FALSE_VALUES = frozenset({"0", "false", "no", "off"})

# 64 words: a sha256 byte modulo 64 picks one without bias (256 is a multiple of 64).
_VOCABULARY: tuple[str, ...] = (
    "orbit", "nebula", "quasar", "comet", "galaxy", "photon", "vector", "signal",
    "module", "kernel", "lattice", "tensor", "gradient", "sample", "channel", "buffer",
    "cluster", "payload", "beacon", "relay", "station", "capsule", "thruster", "gyroscope",
    "horizon", "plasma", "pulsar", "meteor", "eclipse", "zenith", "apogee", "perigee",
    "telemetry", "uplink", "downlink", "antenna", "sensor", "probe", "rover", "lander",
    "matrix", "token", "stream", "packet", "ledger", "budget", "quota", "metric",
    "notebook", "widget", "pipeline", "gateway", "upstream", "replica", "shard", "cursor",
    "simulated", "deterministic", "echo", "placeholder", "draft", "outline", "summary", "answer",
)  # fmt: skip

_id_counter = itertools.count(1)

#: The fenced block a ``code`` reply ends with, one stream token per line. Quotes, backslashes
#: and ``</script>`` are in it on purpose: whatever carries code into a notebook must keep them.
SIMULATED_CODE_LINES: tuple[str, ...] = (
    "\n\n```python\n",
    "# simulated code (no real AI)\n",
    "greeting = \"it's a \\\"simulated\\\" reply\"\n",
    "path = \"C:\\\\data\\\\orbit\"\n",
    "print(greeting, path, \"</script>\")\n",
    "```",
)


def count_tokens(text: str) -> int:
    """A cheap, deterministic token estimate: words and single punctuation marks."""
    return len(_TOKEN_RE.findall(text))


@dataclass(frozen=True, slots=True)
class Directives:
    """Fault and shape controls for one request; field names are the directive keys.

    Units: ``delay_ms`` and ``token_latency_ms`` in milliseconds; ``tokens`` and
    ``fail_after`` in reply tokens. ``None`` means "not requested".
    """

    error: int | None = None
    delay_ms: float = 0.0
    token_latency_ms: float | None = None
    fail_after: int | None = None
    tokens: int = DEFAULT_REPLY_TOKENS
    no_usage: bool = False
    finish: str | None = None
    code: bool = False
    params: bool = False


#: the request's sampling parameters the ``params`` directive reports, in this order
SAMPLING_PARAMS = ("temperature", "top_p", "max_tokens", "seed", "presence_penalty", "frequency_penalty")

_FIELD_NAMES = frozenset(f.name for f in fields(Directives))


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message: a plain string, or the ``text`` parts of a parts list."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def _convert(key: str, raw: str | None) -> Any:
    """Turn one directive value into its typed form; raises ValueError when malformed."""
    if key in ("no_usage", "code", "params"):
        return raw is None or raw.strip().lower() not in _FALSE_VALUES
    if raw is None or raw == "":
        raise ValueError("a value is required")
    if key == "error":
        status = int(raw)
        if not 400 <= status <= 599:
            raise ValueError("must be an HTTP error status between 400 and 599")
        return status
    if key in ("delay_ms", "token_latency_ms"):
        milliseconds = float(raw)
        if not 0 <= milliseconds <= 600_000:
            raise ValueError("must be between 0 and 600000 milliseconds")
        return milliseconds
    if key in ("fail_after", "tokens"):
        count = int(raw)
        if count < (1 if key == "tokens" else 0) or count > 100_000:
            raise ValueError("out of range")
        return count
    return raw  # finish: any reason string, passed through as given


def _apply(directives: Directives, key: str, raw: str | None, *, source: str) -> Directives:
    key = key.strip().lower().replace("-", "_")
    if key not in _FIELD_NAMES:
        return directives  # unknown keys are ignored, so new clients never break old servers
    try:
        value = _convert(key, raw)
    except ValueError as exc:
        raise InvalidRequest(
            f"Invalid simulator directive {key}={raw!r} in {source}: {exc}",
            code="invalid_directive",
            param="messages" if source == "message" else None,
        ) from exc
    return replace(directives, **{key: value})


def parse_directives(
    messages: Sequence[Mapping[str, Any]], headers: Mapping[str, str] | None = None
) -> Directives:
    """Directives from the last user message, then ``X-Sim-<Name>`` headers on top.

    Header names map to keys by lower-casing and turning ``-`` into ``_``
    (``X-Sim-Delay-Ms: 50`` is ``delay_ms=50``). Unknown keys are ignored.

    Raises :class:`InvalidRequest` (code ``invalid_directive``) for a malformed value of a
    known key, so a typo in a test fails loudly instead of silently succeeding.
    """
    directives = Directives()
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user is not None:
        for match in _DIRECTIVE_RE.finditer(message_text(last_user)):
            directives = _apply(directives, match.group(1), match.group(2), source="message")
    for name, value in (headers or {}).items():
        if name.lower().startswith(_HEADER_PREFIX):
            directives = _apply(directives, name[len(_HEADER_PREFIX) :], value, source="header")
    return directives


@dataclass(frozen=True, slots=True)
class Reply:
    """A planned reply. ``tokens`` are the stream pieces; joined they are the content."""

    tokens: list[str]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    @property
    def content(self) -> str:
        return "".join(self.tokens)


def _seed(model: str, messages: Sequence[Mapping[str, Any]]) -> bytes:
    text = "\x1e".join(f"{m.get('role', '')}\x1f{message_text(m)}" for m in messages)
    return f"{model}\x1d{text}".encode()


def _words(seed: bytes, count: int) -> Iterator[str]:
    produced = 0
    for block in itertools.count():
        for byte in hashlib.sha256(seed + block.to_bytes(8, "big")).digest():
            if produced == count:
                return
            yield _VOCABULARY[byte % len(_VOCABULARY)]
            produced += 1


def plan_reply(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int | None,
    directives: Directives,
    sampling: Mapping[str, Any] | None = None,
) -> Reply:
    """The deterministic reply to ``messages``: same model and messages, same reply.

    The reply is ``directives.tokens`` tokens long (the ``[simulated]`` marker counts as
    one), cut to ``max_tokens`` with finish reason ``"length"`` when that is smaller.
    ``directives.finish`` overrides the finish reason. With ``directives.params`` the first
    words are the request's ``sampling`` parameters as ``name=value`` in the order given (the
    caller picks them, in :data:`SAMPLING_PARAMS` order, from what the request set), so a test
    sees what reached the model.
    """
    wanted = directives.tokens
    finish_reason = "stop"
    if max_tokens is not None and max_tokens < wanted:
        wanted, finish_reason = max_tokens, "length"
    code = list(SIMULATED_CODE_LINES) if directives.code else []
    said = [f" {name}={json.dumps(value)}" for name, value in (sampling or {}).items()] if directives.params else []
    words = _words(_seed(model, messages), max(wanted - 1 - len(said) - len(code), 0))
    tokens = (([SIMULATED_MARKER] if wanted > 0 else []) + said + [f" {word}" for word in words] + code)[:wanted]
    return Reply(
        tokens=tokens,
        prompt_tokens=sum(count_tokens(message_text(m)) for m in messages),
        completion_tokens=len(tokens),
        finish_reason=directives.finish or finish_reason,
    )


def new_completion_id(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """``chatcmpl-sim-<hex>``: derived from the input plus a process counter, so unique."""
    digest = hashlib.sha256(_seed(model, messages) + str(next(_id_counter)).encode()).hexdigest()
    return f"chatcmpl-sim-{digest[:24]}"


def usage_dict(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def completion_body(
    *, completion_id: str, created: int, model: str, reply: Reply, include_usage: bool = True
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` object; ``usage`` is left out when not included."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
    }
    if include_usage:
        body["usage"] = usage_dict(reply)
    return body


def stream_chunks(
    *, completion_id: str, created: int, model: str, reply: Reply, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, in OpenAI's order.

    A role chunk, one chunk per token, a finish chunk with an empty delta, then (only when
    ``include_usage``) a usage chunk with ``"choices": []``. Every other chunk carries
    ``"usage": None``.
    """

    def chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            "usage": None,
        }

    yield chunk({"role": "assistant", "content": ""}, None)
    for token in reply.tokens:
        yield chunk({"content": token}, None)
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage_dict(reply),
        }


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error body ``{"error": {"message", "type", "param", "code"}}``."""
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def simulated_error_body(status: int) -> dict[str, Any]:
    """The body answered for the ``error=<status>`` directive."""
    code = "rate_limit_exceeded" if status == 429 else f"simulated_{status}"
    return error_body(status, f"Simulated upstream error (HTTP {status}) requested by a directive", code=code)


def find_model(model_id: str) -> dict[str, Any] | None:
    return next((m for m in SIMULATED_MODELS if m["id"] == model_id), None)
