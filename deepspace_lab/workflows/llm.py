"""The ``llm`` step kind: one chat completion through the Gateway (deepspace_lab.client).

The call carries the run-scoped key, ``Idempotency-Key: ctx.idempotency_key(0)`` (so a retried
or resumed attempt replays the finished call instead of paying again) and a ``traceparent`` of
the run's trace. Outputs: ``text`` (the reply), ``json`` (the reply parsed, with
``response_format: json``), ``model``, ``finish_reason``, ``usage``, ``replayed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from ..client import AsyncDeepSpaceClient, DeepSpaceClientError
from ..tracing import make_traceparent
from .steps import StepContext, StepFailed, StepKind, StepOutcome

#: client errors a later attempt cannot fix
_FINAL = {"invalid_request", "invalid_api_key", "permission_denied", "model_not_found", "invalid_value",
          "model_not_allowed", "insufficient_funds", "idempotency_key_reused"}
#: how often a waiting call looks at ``ctx.cancelled()``
CANCEL_POLL_S = 0.1

SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["model", "prompt"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "prompt": {"type": "string", "minLength": 1, "description": "the user message; templates allowed"},
        "system": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "response_format": {"enum": ["text", "json"], "description": "json: outputs.json is the reply parsed"},
    },
}


async def complete(ctx: StepContext, *, call_index: int, model: str, messages: list[dict[str, Any]],
                   **params: Any) -> tuple[dict[str, Any], int, int, bool]:
    """One chat completion of a step: (answer, tokens, cost in micros, replayed). A Gateway
    refusal or failure becomes :class:`StepFailed` with the Gateway's code; the call is given up
    when the run is cancelled (``cancelled``) or the step's deadline passes (``step_timeout``).
    While an earlier attempt's call with the same key still runs (a worker died mid-call), it
    waits for that call's stored answer instead of failing."""
    if not ctx.gateway_url:
        raise StepFailed("no Gateway for workflow steps: set DEEPSPACE_WORKFLOW_GATEWAY_URL on the workers",
                         code="workflow_gateway_unset", retryable=False)
    headers = {"Idempotency-Key": ctx.idempotency_key(call_index), "traceparent": make_traceparent(ctx.trace_id)}
    body = {k: v for k, v in params.items() if v is not None}
    timeout_s = 600.0 if ctx.deadline is None else max(ctx.deadline - time.monotonic(), 0.1)
    async with AsyncDeepSpaceClient(base_url=ctx.gateway_url, api_key=ctx.api_key, timeout_s=timeout_s) as client:
        while True:
            call = asyncio.ensure_future(client.chat_completion(model, messages, headers=headers, **body))
            try:
                while not call.done():
                    if ctx.cancelled():
                        raise StepFailed("the run was cancelled", code="cancelled", retryable=False)
                    await asyncio.wait({call}, timeout=CANCEL_POLL_S)
                result = call.result()
            except DeepSpaceClientError as exc:
                if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
                    raise StepFailed("the step ran out of time during a model call", code="step_timeout") from None
                if exc.code == "idempotency_in_progress" and not ctx.cancelled():
                    await asyncio.sleep(min(exc.retry_after or 1.0, 2.0))
                    continue
                raise StepFailed(exc.message, code=exc.code, retryable=exc.code not in _FINAL,
                                 detail={"status": exc.status, "request_id": exc.request_id}) from None
            finally:
                if not call.done():
                    call.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await call
            usage = result.body.get("usage") or {}
            return result.body, int(usage.get("total_tokens") or 0), int(result.cost_micros or 0), result.replayed


async def run_llm(ctx: StepContext) -> StepOutcome:
    spec = ctx.spec
    messages = ([{"role": "system", "content": spec["system"]}] if spec.get("system") else [])
    messages.append({"role": "user", "content": str(spec["prompt"])})
    await ctx.progress(f"calling {spec['model']}", None)
    body, tokens, cost, replayed = await complete(ctx, call_index=0, model=spec["model"], messages=messages,
                                                  max_tokens=spec.get("max_tokens"),
                                                  temperature=spec.get("temperature"))
    choice = (body.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    outputs: dict[str, Any] = {"text": text, "model": body.get("model"), "finish_reason": choice.get("finish_reason"),
                               "usage": body.get("usage"), "replayed": replayed}
    if spec.get("response_format") == "json":
        try:
            outputs["json"] = json.loads(text)
        except ValueError:
            raise StepFailed("the reply is not JSON", code="invalid_json_reply", detail={"text": text[:500]}) from None
    return StepOutcome(outputs=outputs, tokens=tokens, cost_micros=cost)


LLM = StepKind("llm", SCHEMA, run_llm, "One chat completion through the Gateway (billed once, traced with the run).")
