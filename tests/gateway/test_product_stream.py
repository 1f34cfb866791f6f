"""The product stream: named events in order, the history built by the gateway, the billing
event equal to the usage row, Stop mid-stream, and no way into another tenant's streams."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from deepspace_lab.client import DeepSpaceClient, InvalidRequestError, NotFoundError

from ..helpers import Gateway, count, make_tenant, wait_for

MODEL = "deepspace-simulated-chat"
STREAM = "/deepspace/api/chat/stream"


def client_of(gw: Gateway, key: str | None = None) -> DeepSpaceClient:
    return DeepSpaceClient(base_url=gw.url, api_key=key or gw.tenant.api_key, timeout_s=20)


def usage_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    from sqlalchemy import text

    with gw.db.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM usage_records WHERE request_id = :r"),
                                 {"r": request_id}).mappings().one())


def test_events_arrive_in_order_and_the_bill_is_the_usage_row(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation("first")["id"]
    with client.stream_chat(conversation_id=conv, content="hello [sim:tokens=6]", model=MODEL) as stream:
        events = list(stream)
        request_id = stream.request_id
    names = [e.event for e in events]
    assert names == ["delta"] * 6 + ["usage", "billing", "done"]
    text = "".join(e.data["content"] for e in events if e.event == "delta")
    assert text.startswith("[simulated]")
    usage, bill, done = (e.data for e in events[-3:])
    row = usage_row(gateway, request_id)
    assert bill["cost_micros"] == row["cost_micros"] > 0 and bill["held_micros"] == row["held_micros"]
    assert usage["completion_tokens"] == row["completion_tokens"] == 6
    assert usage["prompt_tokens"] == row["prompt_tokens"] and usage["measured"] == "upstream"
    assert bill["balance_micros"] == client.wallet()["balance_micros"]
    assert done == {"request_id": request_id, "trace_id": done["trace_id"], "conversation_id": conv,
                    "finish_reason": "stop", "cancelled": False, "error_code": None}
    stored = client.conversation(conv)["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "hello [sim:tokens=6]"), ("assistant", text)]


def test_the_gateway_sends_the_history_and_the_system_prompt(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    for word in ("one", "two"):
        list(client.stream_chat(conversation_id=conv, content=f"{word} [sim:tokens=3]", model=MODEL))
    # the simulator's reply is a function of every message it was sent: the same history
    # through the OpenAI route gives the same words
    history = [{"role": m["role"], "content": m["content"]} for m in client.conversation(conv)["messages"]]
    events = list(client.stream_chat(conversation_id=conv, content="three [sim:tokens=4]", model=MODEL,
                                     system="be brief", max_tokens=50))
    sent = [{"role": "system", "content": "be brief"}, *history, {"role": "user", "content": "three [sim:tokens=4]"}]
    expected = client.chat(MODEL, sent, max_tokens=50)["choices"][0]["message"]["content"]
    assert "".join(e.data["content"] for e in events if e.event == "delta") == expected


def test_regenerate_answers_the_last_message_again_without_storing_it_twice(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    list(client.stream_chat(conversation_id=conv, content="hi [sim:tokens=3]", model=MODEL))
    events = list(client.stream_chat(conversation_id=conv, regenerate=True, model=MODEL))
    assert events[-1].event == "done" and events[-1].data["error_code"] is None
    assert [m["role"] for m in client.conversation(conv)["messages"]] == ["user", "assistant", "assistant"]


def test_a_long_history_is_truncated_to_the_context_window(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    big = "word " * 2000  # ~2500 estimated tokens each; the simulated model's window is 8192
    for _ in range(4):
        list(client.stream_chat(conversation_id=conv, content=big + "[sim:tokens=2]", model=MODEL, max_tokens=10))
    with client.stream_chat(conversation_id=conv, content="last [sim:tokens=2]", model=MODEL, max_tokens=10) as s:
        assert list(s)[-1].event == "done"
        request_id = s.request_id
    detail = gateway.audit_rows(request_id=request_id)[0]["detail"]
    assert detail["history_messages"] == 8 and detail["history_dropped"] >= 1
    with pytest.raises(InvalidRequestError) as err:
        list(client.stream_chat(conversation_id=conv, content="word " * 40000, model=MODEL))
    assert err.value.code == "prompt_too_long" and err.value.status == 400


@pytest.mark.parametrize(("body", "code"), [
    ({"model": MODEL, "content": "x"}, "missing_field"),
    ({"conversation_id": "conv_x", "model": MODEL}, "missing_field"),
    ({"conversation_id": "conv_x", "model": MODEL, "content": "x", "stream": False}, "unknown_field"),
    ({"conversation_id": "conv_x", "model": MODEL, "content": 3}, "invalid_type"),
    ({"conversation_id": "conv_x", "model": MODEL, "content": "x", "max_tokens": 0}, "invalid_type"),
])
def test_bad_bodies_are_400_with_a_stable_code(gateway: Gateway, body: dict[str, Any], code: str) -> None:
    response = httpx.post(gateway.url + STREAM, json=body,
                          headers={"Authorization": f"Bearer {gateway.tenant.api_key}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_an_unknown_conversation_is_404_and_nothing_is_billed(gateway: Gateway) -> None:
    with pytest.raises(NotFoundError) as err:
        list(client_of(gateway).stream_chat(conversation_id="conv_nope", content="x", model=MODEL))
    assert err.value.code == "conversation_not_found"
    assert count(gateway.db, "usage_records") == 0


def test_an_upstream_failure_mid_stream_is_an_error_event_then_usage_billing_done(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    content = "x [sim:tokens=9] [sim:fail_after=3] [sim:token_latency_ms=20]"
    events = list(client.stream_chat(conversation_id=conv, content=content, model=MODEL))
    names = [e.event for e in events]
    assert "error" in names and names[-3:] == ["usage", "billing", "done"]
    assert events[-1].data["error_code"] == "upstream_stream_interrupted"
    assert client.conversation(conv)["messages"] == []  # a broken reply is not stored


def test_stop_mid_stream_keeps_the_reply_and_bills_what_was_generated(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    events: list[Any] = []
    with client.stream_chat(conversation_id=conv, content="long [sim:tokens=400] [sim:token_latency_ms=20]",
                            model=MODEL) as stream:
        for event in stream:
            events.append(event)
            if len(events) == 5:
                assert client.cancel(stream.request_id)["status"] == "cancelling"
        request_id = stream.request_id
    names = [e.event for e in events]
    assert names[-3:] == ["usage", "billing", "done"] and set(names[:-3]) == {"delta"}
    usage, bill, done = (e.data for e in events[-3:])
    assert done["cancelled"] is True and done["finish_reason"] == "cancelled"
    delivered = len(names) - 3
    assert 5 <= delivered < 400 and usage["delivered_tokens"] == delivered
    row = usage_row(gateway, request_id)
    assert row["error_code"] == "cancelled" and row["completion_tokens"] == usage["completion_tokens"] >= delivered
    assert bill["cost_micros"] == row["cost_micros"] > 0 and row["status"] == "captured"
    text = "".join(e.data["content"] for e in events if e.event == "delta")
    assert client.conversation(conv)["messages"][-1]["content"] == text
    with pytest.raises(NotFoundError):  # over: nothing left to cancel
        client.cancel(request_id)


def test_another_org_cannot_cancel_a_stream(gateway: Gateway) -> None:
    client = client_of(gateway)
    other = client_of(gateway, make_tenant(gateway.settings, email="other@example.org").api_key)
    conv = client.create_conversation()["id"]
    seen = threading.Event()
    with client.stream_chat(conversation_id=conv, content="x [sim:tokens=60] [sim:token_latency_ms=10]",
                            model=MODEL) as stream:
        events = []
        for event in stream:
            events.append(event)
            if len(events) == 2:
                with pytest.raises(NotFoundError) as err:
                    other.cancel(stream.request_id)
                assert err.value.code == "stream_not_found"
                seen.set()
    assert seen.is_set() and events[-1].data["cancelled"] is False
    assert len([e for e in events if e.event == "delta"]) == 60
    wait_for(lambda: count(gateway.db, "usage_records", status="captured") == 1)


def test_the_estimate_is_the_hold_the_stream_then_takes(gateway: Gateway) -> None:
    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    list(client.stream_chat(conversation_id=conv, content="earlier [sim:tokens=3]", model=MODEL))
    estimate = client.estimate(conversation_id=conv, content="now [sim:tokens=3]", model=MODEL, max_tokens=64)
    assert estimate["max_output_tokens"] == 64 and estimate["history_messages"] == 2
    with client.stream_chat(conversation_id=conv, content="now [sim:tokens=3]", model=MODEL, max_tokens=64) as s:
        bill = [e for e in s if e.event == "billing"][0].data
    assert bill["held_micros"] == estimate["hold_micros"] > bill["cost_micros"]
    with pytest.raises(NotFoundError):
        client.estimate(conversation_id="conv_nope", content="x", model=MODEL)


def test_stop_reaches_a_stream_running_in_another_gateway_process(gateway_factory: Any, redis_url: str) -> None:
    """Two gateways behind a load balancer share Redis: a cancel that lands on the other one
    still stops the stream; another org's cancel is refused there too."""
    from ..helpers import start_gateway

    first = gateway_factory(redis_url=redis_url)
    second = start_gateway(first.settings, first.tenant)
    try:
        client, elsewhere = client_of(first), client_of(second)
        other = client_of(second, make_tenant(first.settings, email="other-org@example.org").api_key)
        conv = client.create_conversation()["id"]
        events: list[Any] = []
        with client.stream_chat(conversation_id=conv, content="x [sim:tokens=400] [sim:token_latency_ms=20]",
                                model=MODEL) as stream:
            for event in stream:
                events.append(event)
                if len(events) == 3:
                    with pytest.raises(NotFoundError):
                        other.cancel(stream.request_id)
                    assert elsewhere.cancel(stream.request_id)["status"] == "cancelling"
        assert events[-1].data["cancelled"] is True and len(events) - 3 < 400
        with pytest.raises(NotFoundError):  # over: its registration is gone everywhere
            elsewhere.cancel(stream.request_id)
    finally:
        second.close()


def test_every_named_event_matches_its_schema_in_the_openapi_document(gateway: Gateway) -> None:
    """DESIGN §7's nine events, as the Gateway sends them, validate against the `StreamEvent<Name>`
    schemas of the OpenAPI document (the simulator has no thoughts, tool steps or citations: those
    four come from the stream's own encoder, fed the upstream chunk and the extras a step adds)."""
    import json

    from jsonschema import Draft202012Validator

    from deepspace_lab.client import SSEDecoder
    from deepspace_lab.pipeline.product_events import EVENTS, ProductEventEncoder
    from deepspace_lab.server_extension.openapi import openapi_document

    client = client_of(gateway)
    conv = client.create_conversation()["id"]
    broken = "x [sim:tokens=9] [sim:fail_after=3] [sim:token_latency_ms=20]"
    events = [(e.event, e.data) for content in ("x [sim:tokens=3]", broken)
              for e in client.stream_chat(conversation_id=conv, content=content, model=MODEL)]
    chunk = {"choices": [{"index": 0, "delta": {
        "reasoning_content": "look it up",
        "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "search", "arguments": "{}"}}]}}],
        "deepspace": {"citations": [{"title": "A paper", "url": "https://example.org/p"}],
                      "tool_results": [{"tool_call_id": "call_1", "content": "42"}]}}
    encoded = ProductEventEncoder().feed(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    events += [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(encoded.decode())]
    assert {name for name, _ in events} == set(EVENTS)
    components = openapi_document()["components"]
    for name, data in events:
        schema = "StreamEvent" + "".join(part.title() for part in name.split("_"))
        Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": components}).validate(data)
