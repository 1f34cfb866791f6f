"""Versioned prices, the rounding rule, and captures at the price version of their hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.billing import (
    NoPriceError,
    PriceVersion,
    PriceVersionExistsError,
    capture_usage,
    cost_micros,
    list_prices,
    place_hold,
    price_for,
    set_price,
)
from deepspace_lab.db import utcnow

from .conftest import Ledger


def version(input_rate: int, output_rate: int, *, free: bool = False) -> PriceVersion:
    return PriceVersion(id=1, model_name="m", input_micros_per_mtok=input_rate, output_micros_per_mtok=output_rate,
                        effective_at=utcnow(), free=free, actor=None)


@pytest.mark.parametrize(("tokens_in", "tokens_out", "expected"), [
    (0, 0, 0),
    (1, 0, 1),              # 0.5 micro-credit rounds up to 1
    (2, 0, 1),              # exactly 1
    (3, 0, 2),              # 1.5 -> 2
    (1, 1, 3),              # 0.5 + 2 = 2.5 -> 3: one rounding on the total, not one per direction (1 + 2)
    (1_000_000, 1_000_000, 2_500_000),
    (333_333, 333_333, 833_333),  # 833,332.5 -> 833,333
])
def test_cost_is_the_ceiling_of_the_exact_total(tokens_in: int, tokens_out: int, expected: int) -> None:
    assert cost_micros(version(500_000, 2_000_000), tokens_in=tokens_in, tokens_out=tokens_out) == expected


def test_a_free_version_costs_nothing() -> None:
    assert cost_micros(version(0, 0, free=True), tokens_in=10**9, tokens_out=10**9) == 0


def set_version(ledger: Ledger, model: str, rate_in: int, rate_out: int, **kwargs: object) -> PriceVersion:
    async def work(session: AsyncSession) -> PriceVersion:
        price, _ = await set_price(session, model_name=model, input_micros_per_mtok=rate_in,
                                   output_micros_per_mtok=rate_out, actor="test", **kwargs)  # type: ignore[arg-type]
        await session.commit()
        return price

    return ledger.do(work)


def test_the_version_in_force_is_the_newest_not_in_the_future(ledger: Ledger) -> None:
    now = utcnow()
    old = set_version(ledger, "gpt-x", 1_000, 2_000, effective_at=now - timedelta(days=30))
    current = set_version(ledger, "gpt-x", 1_500, 3_000, effective_at=now - timedelta(days=1))
    future = set_version(ledger, "gpt-x", 9_000, 9_000, effective_at=now + timedelta(days=7))
    assert ledger.do(price_for, model_name="gpt-x").id == current.id
    assert ledger.do(price_for, model_name="gpt-x", at=now - timedelta(days=10)).id == old.id
    assert ledger.do(price_for, model_name="gpt-x", at=now + timedelta(days=8)).id == future.id
    assert [p.id for p in ledger.do(list_prices, model_name="gpt-x")] == [future.id, current.id, old.id]
    with pytest.raises(NoPriceError) as info:
        ledger.do(price_for, model_name="gpt-x", at=now - timedelta(days=31))
    assert info.value.code == "no_price"


def test_a_model_without_a_price_is_refused_unless_free(ledger: Ledger) -> None:
    with pytest.raises(NoPriceError):
        ledger.do(price_for, model_name="unpriced")
    set_version(ledger, "local-llm", 0, 0, free=True)
    free = ledger.do(price_for, model_name="local-llm")
    assert free.free and cost_micros(free, tokens_in=100, tokens_out=100) == 0


def test_history_is_not_rewritten(ledger: Ledger) -> None:
    at = utcnow()
    first = set_version(ledger, "m", 10, 20, effective_at=at)
    assert set_version(ledger, "m", 10, 20, effective_at=at).id == first.id  # a retried command
    with pytest.raises(PriceVersionExistsError):
        set_version(ledger, "m", 11, 20, effective_at=at)
    assert len(ledger.do(list_prices, model_name="m")) == 1


def test_a_capture_uses_the_price_version_of_its_hold(ledger: Ledger, make_wallet: Callable[..., str]) -> None:
    org = make_wallet(balance_micros=10_000_000)
    now = utcnow()
    price = set_version(ledger, "gpt-x", 1_000_000, 4_000_000, effective_at=now - timedelta(hours=1))
    estimate = cost_micros(price, tokens_in=1_000, tokens_out=500)  # 1,000 + 2,000
    ledger.do(place_hold, org_id=org, ref="req", amount_micros=estimate, price_id=price.id)
    set_version(ledger, "gpt-x", 50_000_000, 50_000_000, effective_at=now)  # a new price starts mid-request
    capture = ledger.do(capture_usage, ref="req", tokens_in=1_000, tokens_out=250)
    assert capture.amount_micros == 1_000 + 1_000
    assert ledger.balances(org) == (10_000_000 - 2_000, 0)


def test_usage_of_an_unpriced_hold_cannot_be_captured(ledger: Ledger, make_wallet: Callable[..., str]) -> None:
    org = make_wallet(balance_micros=100)
    ledger.do(place_hold, org_id=org, ref="req", amount_micros=10)
    with pytest.raises(NoPriceError):
        ledger.do(capture_usage, ref="req", tokens_in=1, tokens_out=1)
    assert ledger.balances(org) == (90, 10)
