"""Billing through the gateway: helpers to read what a request left in the ledger, and the
autouse check that every ledger invariant (usage rows and budget counters included) holds
after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from deepspace_lab.billing import check_invariants, cost_micros, get_price

from ..helpers import Gateway, wait_for

MODEL = "deepspace-simulated-chat"


def body(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def post(gw: Gateway, payload: Any, *, key: str | None = None, **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gw.tenant.api_key}", **headers}
    return httpx.post(gw.base_url + "/chat/completions", json=payload, headers=headers, timeout=30)


def stream_chat(gw: Gateway, content: str, *, leave_after: int | None = None) -> tuple[str, list[str]]:
    """Stream a chat completion: (request id, SSE lines read). With ``leave_after``, drop the
    connection once that many ``data:`` events arrived (a client that leaves)."""
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=body(content, stream=True), timeout=30,
                      headers={"Authorization": f"Bearer {gw.tenant.api_key}"}) as response:
        request_id, lines, events = response.headers["X-Request-Id"], [], 0
        for line in response.iter_lines():
            lines.append(line)
            events += line.startswith("data: ")
            if leave_after is not None and events >= leave_after:
                break
    return request_id, lines


def rows(gw: Gateway, sql: str, **params: Any) -> list[dict[str, Any]]:
    with gw.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def usage_row(gw: Gateway, request_id: str) -> dict[str, Any]:
    (row,) = rows(gw, "SELECT * FROM usage_records WHERE request_id = :r", r=request_id)
    return row


def settled_usage_row(gw: Gateway, request_id: str, *, timeout_s: float = 15) -> dict[str, Any]:
    """The request's usage row once it is no longer pending (a drain may still be running)."""
    wait_for(lambda: bool(rows(gw, "SELECT 1 FROM usage_records WHERE request_id = :r AND status != 'pending'",
                               r=request_id)), timeout_s=timeout_s)
    return usage_row(gw, request_id)


def entries(gw: Gateway, request_id: str) -> list[dict[str, Any]]:
    return rows(gw, "SELECT t.type, t.amount_micros FROM transactions t JOIN holds h ON h.id = t.hold_id "
                    "WHERE h.ref = :r ORDER BY t.id", r=request_id)


def wallet(gw: Gateway, org_id: str | None = None) -> tuple[int, int]:
    (row,) = rows(gw, "SELECT balance_micros, frozen_micros FROM wallets WHERE org_id = :o",
                  o=org_id or gw.tenant.org_id)
    return row["balance_micros"], row["frozen_micros"]


def price_cost(gw: Gateway, price_id: int, prompt: int, completion: int) -> int:
    async def read() -> int:
        async with gw.runtime.sessions() as session:
            price = await get_price(session, price_id)
        assert price is not None
        return cost_micros(price, tokens_in=prompt, tokens_out=completion)

    return gw.loop.run(read())


def assert_billed_once(gw: Gateway, request_id: str) -> dict[str, Any]:
    """One usage row, one hold entry and exactly one terminal entry (DESIGN §12.6)."""
    row = usage_row(gw, request_id)
    kinds = [e["type"] for e in entries(gw, request_id)]
    assert kinds[0] == "hold" and kinds.count("hold") == 1, kinds
    assert kinds.count("capture") + kinds.count("release") == 1 and len(kinds) == 2, kinds
    assert row["status"] == ("captured" if "capture" in kinds else "released")
    return row


def check_ledger(gw: Gateway) -> list[Any]:
    async def run() -> list[Any]:
        async with gw.runtime.sessions() as session:
            return (await check_invariants(session)).problems

    return gw.loop.run(run())


@pytest.fixture
def billed_gateways(gateway_factory: Callable[..., Gateway]) -> Iterator[Callable[..., Gateway]]:
    """``gateway_factory``, and after the test: no hold left open, every invariant intact."""
    started: list[Gateway] = []

    def start(**overrides: Any) -> Gateway:
        gw = gateway_factory(**overrides)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        wait_for(lambda gw=gw: not rows(gw, "SELECT 1 FROM holds WHERE state = 'open'"))  # type: ignore[misc]
        assert check_ledger(gw) == []


@pytest.fixture
def gw(billed_gateways: Callable[..., Gateway]) -> Gateway:
    return billed_gateways()
