"""Ledger scenarios on both backends: each tells a story and asserts the wallet at every step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from deepspace_lab.billing import (
    CaptureExceedsHoldError,
    CaptureNotFoundError,
    HoldAlreadyResolvedError,
    HoldExpiredError,
    HoldNotFoundError,
    InsufficientFundsError,
    InvalidAmountError,
    OrgNotFoundError,
    OverdraftBelowDebtError,
    RefConflictError,
    RefundExceedsCaptureError,
    capture_hold,
    credit_wallet,
    debit_wallet,
    get_hold,
    list_entries,
    place_hold,
    reconcile,
    refund_capture,
    release_hold,
    renew_hold_lease,
    set_overdraft_limit,
    top_up_hold,
)
from deepspace_lab.db import make_sync_engine, utcnow
from deepspace_lab.errors import DeepSpaceError

from .conftest import Ledger

MakeWallet = Callable[..., str]


def entries(ledger: Ledger, org_id: str) -> list[tuple[str, str, int]]:
    page = ledger.do(list_entries, org_id=org_id, limit=200)
    return [(e.type, e.ref, e.amount_micros) for e in reversed(page.entries)]


def test_top_up_hold_partial_capture_release_refund(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet()
    ledger.do(credit_wallet, org_id=org, amount_micros=1_000, reason="top-up", actor="cli:ops", ref="topup-1")
    assert ledger.balances(org) == (1_000, 0)

    ledger.do(place_hold, org_id=org, ref="req-a", amount_micros=300)
    assert ledger.balances(org) == (700, 300)
    ledger.do(place_hold, org_id=org, ref="req-b", amount_micros=200)
    assert ledger.balances(org) == (500, 500)

    captured = ledger.do(capture_hold, ref="req-a", amount_micros=120)  # 180 of the 300 comes back
    assert (captured.type, captured.amount_micros) == ("capture", 120)
    assert (captured.balance_after_micros, captured.frozen_after_micros) == (680, 200)
    assert ledger.balances(org) == (680, 200)

    released = ledger.do(release_hold, ref="req-b")
    assert released.amount_micros == 200
    assert ledger.balances(org) == (880, 0)

    refund = ledger.do(refund_capture, ref="refund-1", capture_ref="req-a", amount_micros=50, reason="bad answer",
                       actor="cli:ops")
    assert refund.refund_of == captured.id
    assert ledger.balances(org) == (930, 0)
    ledger.do(refund_capture, ref="refund-2", capture_ref="req-a", amount_micros=70, reason="rest", actor="cli:ops")
    assert ledger.balances(org) == (1_000, 0)  # the whole capture is back
    with pytest.raises(RefundExceedsCaptureError) as info:
        ledger.do(refund_capture, ref="refund-3", capture_ref="req-a", amount_micros=1, reason="more",
                  actor="cli:ops")
    assert info.value.code == "refund_exceeds_capture" and info.value.http_status == 409
    assert ledger.balances(org) == (1_000, 0)

    assert entries(ledger, org) == [
        ("credit", "topup-1", 1_000), ("hold", "req-a", 300), ("hold", "req-b", 200), ("capture", "req-a", 120),
        ("release", "req-b", 200), ("refund", "refund-1", 50), ("refund", "refund-2", 70)]
    hold = ledger.do(get_hold, ref="req-a")
    assert hold is not None and (hold.state, hold.captured_micros, hold.refunded_micros) == ("captured", 120, 120)


def test_insufficient_funds_changes_nothing(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100)
    with pytest.raises(InsufficientFundsError) as info:
        ledger.do(place_hold, org_id=org, ref="too-much", amount_micros=101)
    assert info.value.code == "insufficient_funds" and info.value.http_status == 402
    assert info.value.detail == {"required_micros": 101, "available_micros": 100}
    assert ledger.balances(org) == (100, 0)
    assert ledger.do(get_hold, ref="too-much") is None
    assert [t for t, _, _ in entries(ledger, org)] == ["credit"]
    ledger.do(credit_wallet, org_id=org, amount_micros=1, reason="more", actor="t")
    ledger.do(place_hold, org_id=org, ref="too-much", amount_micros=101)  # the failure did not stick to the ref
    assert ledger.balances(org) == (0, 101)


def test_holds_may_use_the_overdraft_and_no_more(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100, overdraft_micros=50)
    ledger.do(place_hold, org_id=org, ref="r1", amount_micros=150)
    assert ledger.balances(org) == (-50, 150)
    with pytest.raises(InsufficientFundsError):
        ledger.do(place_hold, org_id=org, ref="r2", amount_micros=1)
    with pytest.raises(OverdraftBelowDebtError):
        ledger.do(set_overdraft_limit, org_id=org, limit_micros=49)
    ledger.do(capture_hold, ref="r1", amount_micros=150)
    assert ledger.balances(org) == (-50, 0)


def test_capture_above_the_hold_takes_the_excess_from_the_balance(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100)
    ledger.do(place_hold, org_id=org, ref="r1", amount_micros=60)
    ledger.do(capture_hold, ref="r1", amount_micros=90)
    assert ledger.balances(org) == (10, 0)


def test_capture_more_than_held_and_covered_is_rejected(ledger: Ledger, make_wallet: MakeWallet) -> None:
    """(new-api#6911: a settle above the hold failed after the response and only the hold was
    charged.) Above the hold, what the balance and overdraft cover is charged, never more."""
    org = make_wallet(balance_micros=100, overdraft_micros=5)
    ledger.do(place_hold, org_id=org, ref="r1", amount_micros=100)
    with pytest.raises(CaptureExceedsHoldError) as info:
        ledger.do(capture_hold, ref="r1", amount_micros=106)
    assert info.value.code == "capture_exceeds_hold"
    assert ledger.balances(org) == (0, 100)
    hold = ledger.do(get_hold, ref="r1")
    assert hold is not None and hold.state == "open"
    ledger.do(capture_hold, ref="r1", amount_micros=105)  # hold plus the whole overdraft allowance
    assert ledger.balances(org) == (-5, 0)


def test_every_operation_replays_its_first_result(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet()
    first = ledger.do(credit_wallet, org_id=org, amount_micros=500, reason="r", actor="a", ref="c1")
    again = ledger.do(credit_wallet, org_id=org, amount_micros=500, reason="r", actor="a", ref="c1")
    assert again.id == first.id and again.replayed and not first.replayed
    hold = ledger.do(place_hold, org_id=org, ref="h1", amount_micros=100)
    assert ledger.do(place_hold, org_id=org, ref="h1", amount_micros=100).id == hold.id
    assert ledger.balances(org) == (400, 100)
    capture = ledger.do(capture_hold, ref="h1", amount_micros=40)
    assert ledger.do(capture_hold, ref="h1", amount_micros=40).id == capture.id
    ledger.do(place_hold, org_id=org, ref="h2", amount_micros=100)
    release = ledger.do(release_hold, ref="h2")
    assert ledger.do(release_hold, ref="h2").id == release.id
    refund = {"ref": "f1", "capture_ref": "h1", "amount_micros": 10, "reason": "r", "actor": "a"}
    assert ledger.do(refund_capture, **refund).id == ledger.do(refund_capture, **refund).id
    debit = ledger.do(debit_wallet, org_id=org, amount_micros=5, reason="fix", actor="a", ref="d1")
    assert ledger.do(debit_wallet, org_id=org, amount_micros=5, reason="fix", actor="a", ref="d1").id == debit.id
    assert ledger.balances(org) == (500 - 40 + 10 - 5, 0)
    assert len(entries(ledger, org)) == 7


def test_a_ref_reused_with_other_parameters_is_refused(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org, other = make_wallet(balance_micros=1_000), make_wallet(balance_micros=1_000)
    ledger.do(credit_wallet, org_id=org, amount_micros=1, reason="r", actor="a", ref="credit-of-org")
    ledger.do(place_hold, org_id=org, ref="h1", amount_micros=100)
    for call in (
        lambda: ledger.do(place_hold, org_id=org, ref="h1", amount_micros=101),
        lambda: ledger.do(place_hold, org_id=other, ref="h1", amount_micros=100),
        lambda: ledger.do(credit_wallet, org_id=other, amount_micros=1, reason="r", actor="a", ref="credit-of-org"),
        lambda: ledger.do(top_up_hold, hold_ref="h1", ref="h1", amount_micros=1),
    ):
        with pytest.raises(RefConflictError) as info:
            call()
        assert info.value.code == "ref_conflict" and info.value.http_status == 422
    ledger.do(capture_hold, ref="h1", amount_micros=50)
    with pytest.raises(RefConflictError):
        ledger.do(capture_hold, ref="h1", amount_micros=51)
    assert ledger.balances(org) == (951, 0) and ledger.balances(other) == (1_000, 0)


def test_a_hold_resolves_at_most_once(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=1_000)
    ledger.do(place_hold, org_id=org, ref="h1", amount_micros=100)
    ledger.do(capture_hold, ref="h1", amount_micros=100)
    with pytest.raises(HoldAlreadyResolvedError) as info:
        ledger.do(release_hold, ref="h1")
    assert info.value.code == "hold_already_resolved"
    ledger.do(place_hold, org_id=org, ref="h2", amount_micros=100)
    ledger.do(release_hold, ref="h2")
    with pytest.raises(HoldAlreadyResolvedError):
        ledger.do(capture_hold, ref="h2", amount_micros=10)
    with pytest.raises(HoldAlreadyResolvedError):
        ledger.do(top_up_hold, hold_ref="h2", ref="h2-more", amount_micros=10)
    with pytest.raises(HoldNotFoundError):
        ledger.do(capture_hold, ref="nope", amount_micros=1)
    with pytest.raises(HoldNotFoundError):
        ledger.do(release_hold, ref="nope")
    assert ledger.balances(org) == (900, 0)


def test_a_top_up_adds_to_the_open_hold(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=300)
    ledger.do(place_hold, org_id=org, ref="req", amount_micros=100)
    top_up = ledger.do(top_up_hold, hold_ref="req", ref="req:rag", amount_micros=50)
    assert top_up.type == "hold" and top_up.hold_id == ledger.do(get_hold, ref="req").id  # type: ignore[union-attr]
    assert ledger.balances(org) == (150, 150)
    with pytest.raises(InsufficientFundsError):
        ledger.do(top_up_hold, hold_ref="req", ref="req:tools", amount_micros=151)
    assert ledger.balances(org) == (150, 150)
    ledger.do(capture_hold, ref="req", amount_micros=140)
    assert ledger.balances(org) == (160, 0)


def test_an_expired_hold_is_released_by_reconciliation_and_cannot_be_captured(
    ledger: Ledger, make_wallet: MakeWallet
) -> None:
    """(new-api#4424: a crash after the hold leaked it; LiteLLM PR #30522: cancelled requests
    pinned their reservations.) Nobody resolves the hold; its lease runs out."""
    org = make_wallet(balance_micros=100)
    t0 = utcnow()
    ledger.do(place_hold, org_id=org, ref="crashed", amount_micros=80, lease_s=30, now=t0, trace_id="a" * 32)
    later = t0 + timedelta(seconds=31)
    with pytest.raises(HoldExpiredError) as info:
        ledger.do(capture_hold, ref="crashed", amount_micros=10, now=later)
    assert info.value.code == "hold_expired"
    with pytest.raises(HoldExpiredError):
        ledger.do(renew_hold_lease, ref="crashed", now=later)
    assert ledger.balances(org) == (20, 80)  # still frozen until reconciliation runs

    report = ledger.do(reconcile, now=later)
    assert report.ok and [e.ref for e in report.expired] == ["crashed"]
    assert ledger.balances(org) == (100, 0)
    (release,) = [e for e in ledger.do(list_entries, org_id=org).entries if e.type == "release"]
    assert (release.reason, release.trace_id, release.amount_micros) == ("lease expired", "a" * 32, 80)
    assert ledger.do(get_hold, ref="crashed").state == "expired"  # type: ignore[union-attr]
    with pytest.raises(HoldExpiredError):
        ledger.do(capture_hold, ref="crashed", amount_micros=10, now=later)
    assert ledger.do(release_hold, ref="crashed").id == release.id  # the release already happened
    assert ledger.do(reconcile, now=later).expired == []


def test_a_renewed_lease_keeps_the_hold_alive(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100)
    t0 = utcnow()
    ledger.do(place_hold, org_id=org, ref="long", amount_micros=50, lease_s=30, now=t0)
    assert ledger.do(renew_hold_lease, ref="long", lease_s=30, now=t0 + timedelta(seconds=20)) == \
        t0 + timedelta(seconds=50)
    assert ledger.do(reconcile, now=t0 + timedelta(seconds=40)).expired == []
    ledger.do(capture_hold, ref="long", amount_micros=50, now=t0 + timedelta(seconds=45))
    assert ledger.balances(org) == (50, 0)


@pytest.mark.parametrize("amount", [-1, 0, 1.5, True, "10", 2**63])
def test_amounts_that_are_not_positive_integers_are_refused(
    ledger: Ledger, make_wallet: MakeWallet, amount: object
) -> None:
    org = make_wallet(balance_micros=100)
    with pytest.raises(InvalidAmountError) as info:
        ledger.do(credit_wallet, org_id=org, amount_micros=amount, reason="r", actor="a")
    assert info.value.code == "invalid_amount" and info.value.http_status == 400
    if amount != 0:
        with pytest.raises(InvalidAmountError):
            ledger.do(place_hold, org_id=org, ref="h", amount_micros=amount)
    assert ledger.balances(org) == (100, 0) and len(entries(ledger, org)) == 1


def test_wallets_are_created_on_first_use_and_unknown_orgs_refused(ledger: Ledger) -> None:
    free_user = ledger.run(ledger.new_org())
    ledger.do(place_hold, org_id=free_user, ref="free-model-call", amount_micros=0)  # a free model still holds
    ledger.do(capture_hold, ref="free-model-call", amount_micros=0)
    assert ledger.balances(free_user) == (0, 0)
    payer = ledger.run(ledger.new_org())
    ledger.do(credit_wallet, org_id=payer, amount_micros=7, reason="first", actor="a")
    assert ledger.balances(payer) == (7, 0)
    with pytest.raises(OrgNotFoundError) as info:
        ledger.do(credit_wallet, org_id="org_missing", amount_micros=7, reason="r", actor="a")
    assert info.value.code == "org_not_found"
    with pytest.raises(InsufficientFundsError):
        ledger.do(place_hold, org_id=ledger.run(ledger.new_org()), ref="broke", amount_micros=1)


def test_a_free_model_call_holds_nothing_even_on_an_exhausted_wallet(ledger: Ledger, make_wallet: MakeWallet) -> None:
    """(LiteLLM#35369: an over-budget user was blocked from a zero-cost model.)"""
    org = make_wallet(balance_micros=100, overdraft_micros=50)
    ledger.do(place_hold, org_id=org, ref="all-of-it", amount_micros=150)
    assert ledger.balances(org) == (-50, 150)
    ledger.do(place_hold, org_id=org, ref="free-call", amount_micros=0)
    ledger.do(capture_hold, ref="free-call", amount_micros=0)
    assert ledger.balances(org) == (-50, 150)


def test_a_debit_stays_within_the_overdraft(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100, overdraft_micros=10)
    ledger.do(debit_wallet, org_id=org, amount_micros=110, reason="chargeback", actor="cli:ops")
    assert ledger.balances(org) == (-10, 0)
    with pytest.raises(InsufficientFundsError):
        ledger.do(debit_wallet, org_id=org, amount_micros=1, reason="more", actor="cli:ops")


def test_only_a_capture_can_be_refunded(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100)
    ledger.do(place_hold, org_id=org, ref="open", amount_micros=10)
    for capture_ref in ("open", "unknown"):
        with pytest.raises(CaptureNotFoundError):
            ledger.do(refund_capture, ref=f"f-{capture_ref}", capture_ref=capture_ref, amount_micros=1, reason="r",
                      actor="a")
    assert ledger.balances(org) == (90, 10)


def test_entries_carry_trace_and_request_ids(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100)
    hold = ledger.do(place_hold, org_id=org, ref="r", amount_micros=10, trace_id="b" * 32, request_id="req_1")
    capture = ledger.do(capture_hold, ref="r", amount_micros=5)
    assert (hold.trace_id, hold.request_id) == ("b" * 32, "req_1")
    assert (capture.trace_id, capture.request_id) == ("b" * 32, "req_1")  # inherited from the hold


def test_entries_are_append_only_in_the_database(ledger: Ledger, make_wallet: MakeWallet) -> None:
    make_wallet(balance_micros=100)
    engine = make_sync_engine(ledger.url)
    try:
        for statement in ("UPDATE transactions SET amount_micros = 1", "DELETE FROM transactions"):
            with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT amount_micros FROM transactions")).scalar_one() == 100
    finally:
        engine.dispose()


def test_operations_refuse_a_session_with_a_transaction_open(ledger: Ledger, make_wallet: MakeWallet) -> None:
    org = make_wallet(balance_micros=100)

    async def inside_a_unit_of_work() -> None:
        async with ledger.sessions() as session:
            await session.execute(text("SELECT 1"))
            await place_hold(session, org_id=org, ref="r", amount_micros=1)

    with pytest.raises(RuntimeError, match="their own transaction"):
        ledger.run(inside_a_unit_of_work())
    assert ledger.balances(org) == (100, 0)


def test_an_unexpected_database_error_changes_nothing_and_the_ledger_goes_on(
    ledger: Ledger, make_wallet: MakeWallet
) -> None:
    org = make_wallet(balance_micros=100)
    with pytest.raises(Exception) as info:  # a bug (no such price version), not a ledger outcome
        ledger.do(place_hold, org_id=org, ref="r", amount_micros=10, price_id=987_654)
    assert "foreign key" in str(info.value).lower() and not isinstance(info.value, DeepSpaceError)
    assert ledger.balances(org) == (100, 0) and ledger.do(get_hold, ref="r") is None
    for _ in range(12):  # more than the pool holds: every connection went back in a usable state
        ledger.do(place_hold, org_id=org, ref=f"ok-{_}", amount_micros=1)
    assert ledger.balances(org) == (88, 12)


def test_a_cancelled_operation_either_happened_or_not_and_its_retry_tells(
    ledger: Ledger, make_wallet: MakeWallet
) -> None:
    """A caller that gives up mid-operation (a disconnect, a timeout) does not know whether the
    hold happened; the retry with the same ref does it exactly once either way."""
    org = make_wallet(balance_micros=10_000)

    async def give_up_after(ref: str, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(ledger.call(place_hold, org_id=org, ref=ref, amount_micros=100), timeout_s)
        except TimeoutError:
            pass

    refs = [f"c{n}" for n in range(40)]
    for n, ref in enumerate(refs):  # give up at 0, 0.2, 0.4 ... 7.8 ms: before, during and after
        ledger.run(give_up_after(ref, n / 5000))
    retried = [ledger.do(place_hold, org_id=org, ref=ref, amount_micros=100) for ref in refs]
    assert len({e.id for e in retried}) == len(refs)
    assert ledger.balances(org) == (10_000 - 40 * 100, 40 * 100)
