"""Named conversations store the new user turn and the reply; unknown or foreign → 404."""

from __future__ import annotations

import base64

import httpx
import pytest
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


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def list_conversations(gw: Gateway, **params: str | int) -> httpx.Response:
    return httpx.get(gw.url + "/deepspace/api/conversations", params=params, headers=auth(gw.tenant.api_key))


def test_conversations_page_by_cursor_newest_first(gateway: Gateway) -> None:
    made = [new_conversation(gateway, title=f"c{i}") for i in range(5)]
    pages, cursor = [], None
    while True:
        body = list_conversations(gateway, limit=2, **({"cursor": cursor} if cursor else {})).json()
        pages.append([c["id"] for c in body["data"]])
        if (cursor := body["next_cursor"]) is None:
            break
    assert [c for page in pages for c in page] == made[::-1] and [len(p) for p in pages] == [2, 2, 1]


BAD_CURSORS = [
    "not-a-cursor",
    _cursor("2026-11-01T08:00:00|conv_1"),  # no time zone: the column refuses naive times
    _cursor("0001-01-01T00:00:00+01:00|conv_1"),  # before year 1 once in UTC
    _cursor("9999-12-31T23:59:59-01:00|conv_1"),  # after year 9999 once in UTC
    _cursor("2026-11-01T08:00:00+00:00|conv\x00"),  # not an id (PostgreSQL text cannot hold NUL)
    _cursor("2026-11-01T08:00:00+00:00|"),
]


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=["garbage", "naive", "year0", "year10000", "nul", "no-id"])
def test_a_cursor_we_cannot_have_made_is_a_clear_400(gateway: Gateway, cursor: str) -> None:
    new_conversation(gateway)
    response = list_conversations(gateway, cursor=cursor)
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_cursor", "cursor")
    (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert (row["status_code"], row["error_code"]) == (400, "invalid_cursor")


def test_a_cursor_with_another_offset_names_the_same_moment(gateway: Gateway) -> None:
    new_conversation(gateway)
    later = list_conversations(gateway, cursor=_cursor("2999-01-01T02:00:00+02:00|conv_zzz")).json()
    earlier = list_conversations(gateway, cursor=_cursor("2000-01-01T00:00:00+02:00|conv_zzz")).json()
    assert (len(later["data"]), earlier["data"]) == (1, [])


@pytest.mark.parametrize(("limit", "code"), [("", "invalid_type"), ("5_0", "invalid_type"), ("٥", "invalid_type"),
                                             ("ten", "invalid_type"), ("0", "invalid_value"),
                                             ("201", "invalid_value"), ("9" * 5000, "invalid_value")])
def test_a_limit_that_is_not_1_to_200_is_a_clear_400(gateway: Gateway, limit: str, code: str) -> None:
    response = list_conversations(gateway, limit=limit)
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, "limit")
