"""Every path a model call can take ends with one usage row and one terminal ledger entry:
success, upstream errors and timeouts before the first token, failures mid-stream, client
disconnects early, late and after ``[DONE]``, an upstream without usage, a price change
while a stream runs (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deepspace_lab.billing import set_price
from deepspace_lab.pipeline.metering import prompt_token_estimate

from ..helpers import TENANT_CREDIT_MICROS, Gateway
from .conftest import (
    MODEL,
    assert_billed_once,
    body,
    entries,
    post,
    price_cost,
    rows,
    settled_usage_row,
    stream_chat,
    usage_row,
    wallet,
)


def sse_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def test_a_completion_is_held_then_captured_at_its_usage(gw: Gateway) -> None:
    response = post(gw, body("hello there"))
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    request_id = response.headers["X-Request-Id"]
    row = assert_billed_once(gw, request_id)
    cost = price_cost(gw, row["price_id"], usage["prompt_tokens"], usage["completion_tokens"])
    assert int(response.headers["X-DeepSpace-Cost-Micros"]) == cost == row["cost_micros"] > 0
    assert row["measured"] == "upstream" and row["status"] == "captured"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert row["delivered_tokens"] == usage["completion_tokens"]
    assert row["upstream_response_id"] == response.json()["id"] and row["finish_reason"] == "stop"
    assert row["held_micros"] > cost  # the hold was the worst case
    assert [e["amount_micros"] for e in entries(gw, request_id)] == [row["held_micros"], cost]
    assert wallet(gw) == (TENANT_CREDIT_MICROS - cost, 0)
    (audit,) = gw.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert audit["detail"]["cost_micros"] == cost


def test_a_stream_carries_its_cost_in_the_usage_chunk(gw: Gateway) -> None:
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30,
                      json=body("stream me", stream=True, stream_options={"include_usage": True}),
                      headers={"Authorization": f"Bearer {gw.tenant.api_key}"}) as response:
        chunks = sse_chunks(response)
        request_id = response.headers["X-Request-Id"]
    usage = chunks[-1]["usage"]
    row = assert_billed_once(gw, request_id)
    assert usage["cost_micros"] == row["cost_micros"] == price_cost(
        gw, row["price_id"], usage["prompt_tokens"], usage["completion_tokens"])
    assert row["measured"] == "upstream" and row["stream"] in (True, 1)
    assert row["delivered_tokens"] == row["completion_tokens"] == usage["completion_tokens"]


def test_a_stream_without_usage_asked_is_billed_all_the_same(gw: Gateway) -> None:
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30, json=body("quiet", stream=True),
                      headers={"Authorization": f"Bearer {gw.tenant.api_key}"}) as response:
        chunks = sse_chunks(response)
        request_id = response.headers["X-Request-Id"]
    assert all("usage" not in c or c["usage"] is None for c in chunks)
    row = assert_billed_once(gw, request_id)
    assert row["measured"] == "upstream" and row["cost_micros"] > 0


def test_without_max_tokens_the_upstream_is_capped_at_what_the_hold_covers(billed_gateways: Any) -> None:
    gw = billed_gateways(default_max_output_tokens=5)
    response = post(gw, body("long please [sim:tokens=50]"))
    assert response.status_code == 200
    choice, usage = response.json()["choices"][0], response.json()["usage"]
    assert choice["finish_reason"] == "length" and usage["completion_tokens"] == 5
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert row["cost_micros"] <= row["held_micros"]


def test_the_callers_max_tokens_sizes_the_hold(gw: Gateway) -> None:
    small = post(gw, body("same prompt", max_tokens=10))
    large = post(gw, body("same prompt", max_tokens=1000))
    held = [usage_row(gw, r.headers["X-Request-Id"])["held_micros"] for r in (small, large)]
    price_id = usage_row(gw, small.headers["X-Request-Id"])["price_id"]
    assert held[1] - held[0] == price_cost(gw, price_id, 0, 990)
    three = post(gw, body("same prompt", max_tokens=10, n=3))  # each choice may use the whole cap
    assert usage_row(gw, three.headers["X-Request-Id"])["held_micros"] - held[0] == price_cost(gw, price_id, 0, 20)


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_before_any_output_releases_everything(gw: Gateway, stream: bool) -> None:
    response = post(gw, body("fail [sim:error=500]", stream=stream))
    assert response.status_code == 502
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert (row["status"], row["measured"], row["cost_micros"]) == ("released", "none", 0)
    assert row["error_code"] == "upstream_error"
    assert wallet(gw) == (TENANT_CREDIT_MICROS, 0)


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_timeout_before_the_first_token_releases_everything(billed_gateways: Any, stream: bool) -> None:
    gw = billed_gateways(upstream_timeout_s=0.3)
    response = post(gw, body("slow [sim:delay_ms=3000]", stream=stream))
    assert response.status_code == 504
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert (row["status"], row["measured"], row["error_code"]) == ("released", "none", "upstream_timeout")
    assert wallet(gw) == (TENANT_CREDIT_MICROS, 0)


def test_a_failure_mid_stream_captures_an_estimate_of_what_was_generated(gw: Gateway) -> None:
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30,
                      json=body("go [sim:tokens=20] [sim:fail_after=6] [sim:token_latency_ms=5]", stream=True),
                      headers={"Authorization": f"Bearer {gw.tenant.api_key}"}) as response:
        lines = list(response.iter_lines())
        request_id = response.headers["X-Request-Id"]
    assert any("upstream_stream_interrupted" in line for line in lines)
    row = assert_billed_once(gw, request_id)
    assert (row["status"], row["measured"], row["error_code"]) == (
        "captured", "estimated", "upstream_stream_interrupted")
    # tornado's client may lose the bytes that arrive with the upstream's FIN (README)
    assert 4 <= row["completion_tokens"] <= 6 and row["delivered_tokens"] == row["completion_tokens"]
    assert row["prompt_tokens"] > 0 and row["cost_micros"] == price_cost(
        gw, row["price_id"], row["prompt_tokens"], row["completion_tokens"])


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_that_sends_no_usage_is_billed_an_estimate(gw: Gateway, stream: bool) -> None:
    content = "no usage here [sim:no_usage] [sim:tokens=12]"
    response = post(gw, body(content, stream=stream))
    assert response.status_code == 200
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert row["measured"] == "estimated" and row["status"] == "captured"
    if stream:
        assert row["completion_tokens"] == 12  # the content chunks relayed
    else:
        reply = response.json()["choices"][0]["message"]["content"]
        assert row["completion_tokens"] == -(-len(reply.encode()) // 4)
    assert row["cost_micros"] == price_cost(gw, row["price_id"], row["prompt_tokens"], row["completion_tokens"])


def test_a_client_that_leaves_early_is_billed_what_the_drained_upstream_reports(gw: Gateway) -> None:
    request_id, _ = stream_chat(gw, "drain me [sim:tokens=40] [sim:token_latency_ms=25]", leave_after=3)
    row = settled_usage_row(gw, request_id)
    assert (row["status"], row["measured"], row["error_code"]) == ("captured", "drained", "client_disconnected")
    assert row["completion_tokens"] == 40 and row["delivered_tokens"] < 40
    assert row["cost_micros"] == price_cost(gw, row["price_id"], row["prompt_tokens"], 40)
    assert_billed_once(gw, request_id)


def test_a_drain_past_its_time_bound_is_cut_and_billed_an_estimate(billed_gateways: Any) -> None:
    gw = billed_gateways(drain_timeout_s=0.3)
    request_id, _ = stream_chat(gw, "slow drain [sim:tokens=200] [sim:token_latency_ms=40]", leave_after=3)
    row = settled_usage_row(gw, request_id)
    assert (row["status"], row["measured"], row["error_code"]) == ("captured", "estimated", "drain_timeout")
    assert 2 <= row["completion_tokens"] < 200 and row["delivered_tokens"] <= row["completion_tokens"]
    assert_billed_once(gw, request_id)


def test_drains_beyond_the_concurrency_bound_are_cut_at_once(billed_gateways: Any) -> None:
    gw = billed_gateways(max_concurrent_drains=0)
    request_id, _ = stream_chat(gw, "no drain [sim:tokens=200] [sim:token_latency_ms=40]", leave_after=3)
    row = settled_usage_row(gw, request_id, timeout_s=5)  # well before the 8 s the stream would take
    assert (row["measured"], row["error_code"]) == ("estimated", "drain_limit")
    assert row["completion_tokens"] < 200
    assert_billed_once(gw, request_id)


def test_a_client_that_leaves_after_done_is_billed_the_upstream_usage(gw: Gateway) -> None:
    request_id, _ = stream_chat(gw, "all of it [sim:tokens=8]")
    row = settled_usage_row(gw, request_id)
    assert (row["measured"], row["error_code"], row["completion_tokens"]) == ("upstream", None, 8)
    assert row["delivered_tokens"] == 8


def test_done_reaches_the_client_only_after_the_capture_committed(gw: Gateway,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that saw ``[DONE]`` reads its usage row captured, never ``pending``: the
    capture is made slow on purpose, so a ``[DONE]`` relayed as the upstream sent it would
    arrive first."""
    import asyncio

    from deepspace_lab.pipeline import billing

    capture = billing.capture_hold

    async def slow_capture(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)  # fault injection in the server, not synchronisation of the test
        return await capture(*args, **kwargs)

    monkeypatch.setattr(billing, "capture_hold", slow_capture)
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30,
                      json=body("bill me before you say done [sim:tokens=5]", stream=True),
                      headers={"Authorization": f"Bearer {gw.tenant.api_key}"}) as response:
        request_id = response.headers["X-Request-Id"]
        for line in response.iter_lines():
            if line == "data: [DONE]":  # where an OpenAI SDK stops reading
                status = usage_row(gw, request_id)["status"]  # read at once: no waiting
                break
    assert status == "captured"


def test_a_price_change_while_a_stream_runs_bills_the_price_it_was_held_at(gw: Gateway) -> None:
    old = rows(gw, "SELECT id, input_micros_per_mtok FROM prices WHERE model_name = :m ORDER BY effective_at DESC",
               m=MODEL)[0]
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30,
                      json=body("price [sim:tokens=30] [sim:token_latency_ms=20]", stream=True),
                      headers={"Authorization": f"Bearer {gw.tenant.api_key}"}) as response:
        request_id = response.headers["X-Request-Id"]
        lines = response.iter_lines()
        next(lines)

        async def reprice() -> None:
            async with gw.runtime.sessions() as session:
                await set_price(session, model_name=MODEL, input_micros_per_mtok=old["input_micros_per_mtok"] * 10,
                                output_micros_per_mtok=9_000_000, effective_at=datetime.now(UTC), actor="test")
                await session.commit()

        gw.loop.run(reprice())
        list(lines)
    row = assert_billed_once(gw, request_id)
    assert row["price_id"] == old["id"]
    assert row["cost_micros"] == price_cost(gw, old["id"], row["prompt_tokens"], row["completion_tokens"])


def test_the_usage_estimate_for_prompts_is_fair_not_the_hold_bound() -> None:
    from deepspace_lab.pipeline.chat import parse_chat_request
    from deepspace_lab.pipeline.metering import prompt_token_bound

    chat = parse_chat_request(json.dumps(body("x" * 400)).encode(), {}, max_body_bytes=10_000)
    assert prompt_token_bound(chat) >= 400 > prompt_token_estimate(chat) >= 100


class ContextStep:
    """An extension step that adds input after the hold, as RAG will: it tops the hold up."""

    name = "test_context"

    def __init__(self, services: Any) -> None:
        self.services = services

    async def __call__(self, ctx: Any, call_next: Any) -> None:
        from deepspace_lab.pipeline.billing import grow_hold

        context = "retrieved passage " * 50
        ctx.chat.payload["messages"].insert(0, {"role": "system", "content": context})
        ctx.detail["topped_up"] = await grow_hold(self.services, ctx, extra_prompt_tokens=len(context.encode()) + 8)
        await call_next(ctx)


def test_a_step_that_adds_input_tops_the_hold_up_before_the_call(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepspace_lab.pipeline import Pipeline
    from deepspace_lab.pipeline.registry import discover_steps

    plain = usage_row(gw, post(gw, body("with context")).headers["X-Request-Id"])
    monkeypatch.setattr(gw.runtime, "_pipeline", Pipeline(gw.runtime.services, extensions=["test_context"],
                                                          registry=dict(discover_steps(), test_context=ContextStep)))
    response = post(gw, body("with context"))
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    (audit,) = gw.audit_rows(trace_id=response.headers["X-Trace-Id"])
    topped = audit["detail"]["topped_up"]
    assert topped > 0
    row = usage_row(gw, request_id)
    assert row["held_micros"] == plain["held_micros"] + topped
    assert row["prompt_tokens"] > plain["prompt_tokens"]  # the model did read the added context
    kinds = [e["type"] for e in rows(gw, "SELECT t.type FROM transactions t JOIN holds h ON h.id = t.hold_id "
                                         "WHERE h.ref = :r ORDER BY t.id", r=request_id)]
    assert kinds == ["hold", "hold", "capture"]
