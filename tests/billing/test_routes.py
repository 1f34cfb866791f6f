"""GET /deepspace/api/wallet and /wallet/transactions: the caller's org only, paged newest first."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx

from deepspace_lab.billing import capture_hold, credit_wallet, place_hold

from ..helpers import Gateway, make_tenant
from .conftest import Ledger

WALLET = "/deepspace/api/wallet"
ENTRIES = "/deepspace/api/wallet/transactions"


def bare(gw: Gateway, email: str) -> Any:
    """A tenant whose wallet never had money (the fixture's tenant starts with test credit)."""
    return make_tenant(gw.settings, email=email, credit_micros=0)


def get(gw: Gateway, path: str, key: str, **params: Any) -> httpx.Response:
    return httpx.get(gw.url + path, params=params, headers={"Authorization": f"Bearer {key}"})


def test_the_wallet_and_its_entries_belong_to_the_callers_org(
    gateway_factory: Callable[..., Gateway], ledger: Ledger
) -> None:
    gw = gateway_factory()
    mine, theirs = bare(gw, "a@example.org"), bare(gw, "b@example.org")
    ledger.do(credit_wallet, org_id=mine.org_id, amount_micros=1_000, reason="top-up", actor="cli:ops", ref="a-1")
    ledger.do(place_hold, org_id=mine.org_id, ref="req-a", amount_micros=300, trace_id="c" * 32)
    ledger.do(capture_hold, ref="req-a", amount_micros=100)
    ledger.do(credit_wallet, org_id=theirs.org_id, amount_micros=7, reason="gift", actor="cli:ops", ref="b-1")

    response = get(gw, WALLET, mine.api_key)
    assert response.status_code == 200, response.text
    assert response.json() == {"object": "wallet", "org_id": mine.org_id, "balance_micros": 900,
                               "frozen_micros": 0, "overdraft_limit_micros": 0, "available_micros": 900}
    assert get(gw, WALLET, theirs.api_key).json()["balance_micros"] == 7

    entries = get(gw, ENTRIES, mine.api_key).json()
    assert [(e["type"], e["ref"], e["amount_micros"]) for e in entries["data"]] == [
        ("capture", "req-a", 100), ("hold", "req-a", 300), ("credit", "a-1", 1_000)]
    assert entries["data"][0]["trace_id"] == "c" * 32 and "actor" not in entries["data"][0]
    assert entries["data"][0]["balance_after_micros"] == 900 and not entries["has_more"]
    theirs_entries = get(gw, ENTRIES, theirs.api_key).json()["data"]
    assert [e["ref"] for e in theirs_entries] == ["b-1"]

    trace = response.headers["X-Trace-Id"]
    (row,) = gw.audit_rows(trace_id=trace)
    assert (row["kind"], row["org_id"], row["status_code"]) == ("api.wallet.read", mine.org_id, 200)


def test_an_org_without_money_sees_an_empty_wallet(gateway: Gateway) -> None:
    key = bare(gateway, "poor@example.org").api_key
    body = get(gateway, WALLET, key).json()
    assert (body["balance_micros"], body["frozen_micros"]) == (0, 0)
    assert get(gateway, ENTRIES, key).json() == {
        "object": "list", "data": [], "has_more": False, "next_cursor": None}


def test_entries_page_by_cursor_newest_first(gateway: Gateway, ledger: Ledger) -> None:
    tenant = bare(gateway, "pages@example.org")
    org, key = tenant.org_id, tenant.api_key
    for i in range(7):
        ledger.do(credit_wallet, org_id=org, amount_micros=i + 1, reason="r", actor="a", ref=f"c{i}")
    pages, cursor = [], None
    while True:
        body = get(gateway, ENTRIES, key, limit=3, **({"cursor": cursor} if cursor else {})).json()
        pages.append([e["ref"] for e in body["data"]])
        cursor = body["next_cursor"]
        assert body["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert pages == [["c6", "c5", "c4"], ["c3", "c2", "c1"], ["c0"]]

    other = make_tenant(gateway.settings, email="other@example.org")
    first = get(gateway, ENTRIES, key, limit=3).json()["next_cursor"]
    assert get(gateway, ENTRIES, other.api_key, cursor=first).json()["data"] == []  # a cursor opens nothing


def test_bad_paging_parameters_are_400_and_no_key_is_401(gateway: Gateway) -> None:
    key = gateway.tenant.api_key
    for params, code in (({"limit": 0}, "invalid_limit"), ({"limit": 201}, "invalid_limit"),
                         ({"limit": "ten"}, "invalid_limit"), ({"cursor": "not-a-cursor"}, "invalid_cursor")):
        response = get(gateway, ENTRIES, key, **params)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, params
    for path in (WALLET, ENTRIES):
        assert httpx.get(gateway.url + path).status_code == 401
        assert get(gateway, path, "dsk_not_a_real_key").status_code == 401


def test_a_cursor_past_bigint_is_a_clear_400_not_an_overflow(gateway: Gateway) -> None:
    def cursor(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    key = gateway.tenant.api_key
    for raw in ("t" + "9" * 25, f"t{2**63}", "t" + "9" * 5000, "t²", "t١"):
        response = get(gateway, ENTRIES, key, cursor=cursor(raw))
        assert response.status_code == 400, (raw[:30], response.text)
        assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_cursor", "cursor")
    largest = get(gateway, ENTRIES, key, cursor=cursor(f"t{2**63 - 1}"))
    assert largest.status_code == 200 and largest.json()["data"]  # the top of BIGINT is still a cursor
