"""Named conversations store the new user turn and the reply; unknown or foreign → 404."""

from __future__ import annotations

import httpx
from openai import OpenAI

from ..helpers import Gateway, count, make_tenant

MODEL = "deepspace-simulated-chat"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_conversation(gw: Gateway, key: str | None = None, title: str = "notes") -> str:
    response = httpx.post(gw.url + "/deepspace/api/conversations", json={"title": title},
                          headers=auth(key or gw.tenant.api_key))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["object"] == "conversation" and body["title"] == title
    return str(body["id"])


def messages_of(gw: Gateway, conv_id: str, key: str | None = None) -> httpx.Response:
    return httpx.get(gw.url + f"/deepspace/api/conversations/{conv_id}", headers=auth(key or gw.tenant.api_key))


def test_turns_are_stored_for_stream_and_non_stream(gateway: Gateway) -> None:
    conv = new_conversation(gateway)
    client = OpenAI(base_url=gateway.base_url, api_key=gateway.tenant.api_key, max_retries=0)
    first = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"}],
        extra_body={"conversation_id": conv})
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "two"}], stream=True,
        extra_headers={"X-DeepSpace-Conversation": conv}) if c.choices)
    body = messages_of(gateway, conv).json()
    turns = [(m["role"], m["content"]) for m in body["messages"]]
    assert turns == [("user", "one"), ("assistant", first.choices[0].message.content),
                     ("user", "two"), ("assistant", streamed)]
    assert body["messages"][1]["tokens"] == 24 and body["messages"][1]["model"] == MODEL
    assert len({m["trace_id"] for m in body["messages"]}) == 2  # one trace per request


def test_the_openai_route_stays_stateless_without_a_conversation(gateway: Gateway) -> None:
    OpenAI(base_url=gateway.base_url, api_key=gateway.tenant.api_key, max_retries=0).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert count(gateway.db, "messages") == 0


def test_unknown_conversation_is_404_and_nothing_is_created(gateway: Gateway) -> None:
    response = httpx.post(gateway.base_url + "/chat/completions", headers=auth(gateway.tenant.api_key),
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                "conversation_id": "conv_doesnotexist"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "conversation_not_found"
    assert count(gateway.db, "conversations") == 0 and count(gateway.db, "messages") == 0
    (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert row["status_code"] == 404


def test_another_orgs_conversation_is_indistinguishable_from_unknown(gateway: Gateway) -> None:
    other = make_tenant(gateway.settings, email="other@example.org")
    theirs = new_conversation(gateway, key=other.api_key)
    response = httpx.post(gateway.base_url + "/chat/completions", headers=auth(gateway.tenant.api_key),
                          json={"model": MODEL, "messages": [{"role": "user", "content": "peek"}],
                                "conversation_id": theirs})
    assert response.status_code == 404
    assert messages_of(gateway, theirs).status_code == 404
    assert messages_of(gateway, theirs, key=other.api_key).status_code == 200
    assert count(gateway.db, "messages") == 0


def test_failed_upstream_call_stores_no_turn(gateway: Gateway) -> None:
    conv = new_conversation(gateway)
    response = httpx.post(gateway.base_url + "/chat/completions", headers=auth(gateway.tenant.api_key),
                          json={"model": MODEL, "messages": [{"role": "user", "content": "x [sim:error=500]"}],
                                "conversation_id": conv})
    assert response.status_code == 502
    assert messages_of(gateway, conv).json()["messages"] == []


def test_conversation_create_validates_its_body(gateway: Gateway) -> None:
    for raw, code in ((b"{oops", "invalid_json"), (b'{"title": 3}', "invalid_type")):
        response = httpx.post(gateway.url + "/deepspace/api/conversations", content=raw,
                              headers=auth(gateway.tenant.api_key))
        assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert httpx.post(gateway.url + "/deepspace/api/conversations").status_code == 401
    assert count(gateway.db, "conversations") == 0
