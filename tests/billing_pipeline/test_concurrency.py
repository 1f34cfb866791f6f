"""64 concurrent requests against a wallet that covers 10 (PostgreSQL): never more than 10
held at once, the balance never below zero, every request billed exactly once."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from ..helpers import Gateway, make_tenant
from .conftest import assert_billed_once, body, post, rows, usage_row, wallet

CONTENT = "in flight [sim:delay_ms=1500]"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_64_requests_against_a_wallet_that_covers_10(gw: Gateway) -> None:
    held = usage_row(gw, post(gw, body(CONTENT)).headers["X-Request-Id"])["held_micros"]
    funds = 10 * held + held - 1  # ten holds fit, an eleventh does not
    tenant = make_tenant(gw.settings, email=f"c-{secrets.token_hex(3)}@example.org", credit_micros=funds)

    def call(_: int) -> httpx.Response:
        return post(gw, body(CONTENT), key=tenant.api_key)

    with ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(call, range(64)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 402} and codes.count(200) >= 10, codes
    for refused in (r for r in responses if r.status_code == 402):
        assert refused.json()["error"]["code"] == "insufficient_funds"
        assert refused.headers["x-should-retry"] == "false"
    # Every entry records the wallet right after it: frozen never covered more than 10 holds.
    after: list[dict[str, Any]] = rows(gw, "SELECT type, balance_after_micros, frozen_after_micros FROM transactions "
                                          "WHERE org_id = :o ORDER BY id", o=tenant.org_id)
    assert max(e["frozen_after_micros"] for e in after) <= 10 * held
    assert min(e["balance_after_micros"] for e in after) >= 0
    billed = [assert_billed_once(gw, r.headers["X-Request-Id"]) for r in responses if r.status_code == 200]
    spent = sum(row["cost_micros"] for row in billed)
    assert wallet(gw, tenant.org_id) == (funds - spent, 0)
    assert len(rows(gw, "SELECT 1 FROM usage_records WHERE org_id = :o", o=tenant.org_id)) == codes.count(200)
