"""Random sequences of credit, debit, hold, top-up, capture, release, refund, lease renewal,
expiry (a moving clock) and replays, against a pure-Python model of the ledger. After every
step the wallet equals the model and every invariant holds (``check_invariants``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from deepspace_lab.billing import (
    capture_hold,
    check_invariants,
    credit_wallet,
    debit_wallet,
    place_hold,
    reconcile,
    refund_capture,
    release_hold,
    renew_hold_lease,
    set_overdraft_limit,
    top_up_hold,
)
from deepspace_lab.db import utcnow
from deepspace_lab.errors import DeepSpaceError

from .conftest import Ledger

AMOUNTS = st.integers(min_value=0, max_value=700)
POSITIVE = st.integers(min_value=1, max_value=700)
LEASES = st.sampled_from([30, 120, 600])


@dataclass
class ModelHold:
    amount: int
    lease_expires_at: datetime
    state: str = "open"
    captured: int = 0
    refunded: int = 0

    def lapsed(self, now: datetime) -> bool:
        return self.state == "open" and self.lease_expires_at <= now


class LedgerMachine(RuleBasedStateMachine):
    ledger: ClassVar[Ledger]

    def __init__(self) -> None:
        super().__init__()
        self.org = self.ledger.run(self.ledger.new_org())
        self.clock = utcnow()
        self.balance = self.frozen = self.overdraft = 0
        self.holds: dict[str, ModelHold] = {}
        self.done: list[tuple[Any, dict[str, Any], int]] = []  # (op, kwargs, entry id) of successes
        self.counter = 0

    def ref(self, kind: str) -> str:
        self.counter += 1
        return f"{self.org}-{kind}{self.counter}"

    def act(self, op: Any, expected: str, **kwargs: Any) -> Any:
        """Run ``op`` and check it ended as the model says: ``ok`` or an error code."""
        try:
            result = self.ledger.do(op, **kwargs)
        except DeepSpaceError as exc:
            assert exc.code == expected, (op.__name__, kwargs, exc.code, expected)
            return None
        assert expected == "ok", (op.__name__, kwargs, "ok", expected)
        if result is not None and hasattr(result, "id") and not result.replayed:
            self.done.append((op, kwargs, result.id))
        return result

    def pick(self, data: st.DataObject, *, prefer: str | None = None) -> str:
        """A hold of this wallet, mostly one in state ``prefer`` if given; about one time in
        ten, a ref that names none."""
        refs = sorted(self.holds)
        preferred = [ref for ref in refs if self.holds[ref].state == prefer] * 3
        return data.draw(st.sampled_from((refs + preferred) * 3 + ["no-such-hold"]))

    @initialize(overdraft=st.sampled_from([0, 0, 150]), funds=POSITIVE)
    def open_wallet(self, overdraft: int, funds: int) -> None:
        self.act(credit_wallet, "ok", org_id=self.org, amount_micros=funds, reason="seed", actor="t", ref=self.ref("c"))
        self.balance = funds
        if overdraft:
            self.ledger.do(set_overdraft_limit, org_id=self.org, limit_micros=overdraft)
            self.overdraft = overdraft

    @rule(amount=POSITIVE, debit=st.booleans())
    def adjust(self, amount: int, debit: bool) -> None:
        if not debit:
            self.act(credit_wallet, "ok", org_id=self.org, amount_micros=amount, reason="top-up", actor="t",
                     ref=self.ref("c"))
            self.balance += amount
            return
        fits = self.balance + self.overdraft >= amount
        self.act(debit_wallet, "ok" if fits else "insufficient_funds", org_id=self.org, amount_micros=amount,
                 reason="adjust", actor="t", ref=self.ref("d"))
        if fits:
            self.balance -= amount

    @rule(amount=AMOUNTS, lease_s=LEASES)
    def hold_a_little(self, amount: int, lease_s: int) -> None:
        # Rules are drawn evenly; holds are what most others act on, so there are two of them.
        self.hold(amount // 7, lease_s)

    @rule(amount=AMOUNTS, lease_s=LEASES)
    def hold(self, amount: int, lease_s: int) -> None:
        ref, fits = self.ref("h"), self.balance + self.overdraft >= amount
        self.act(place_hold, "ok" if fits else "insufficient_funds", org_id=self.org, ref=ref, amount_micros=amount,
                 lease_s=lease_s, now=self.clock)
        if fits:
            self.balance, self.frozen = self.balance - amount, self.frozen + amount
            self.holds[ref] = ModelHold(amount, self.clock + timedelta(seconds=lease_s))

    def _open_error(self, ref: str) -> str | None:
        hold = self.holds.get(ref)
        if hold is None:
            return "hold_not_found"
        if hold.state == "expired" or hold.lapsed(self.clock):
            return "hold_expired"
        return None if hold.state == "open" else "hold_already_resolved"

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), amount=POSITIVE)
    def top_up(self, data: st.DataObject, amount: int) -> None:
        hold_ref = self.pick(data)
        fits = self.balance + self.overdraft >= amount
        error = self._open_error(hold_ref) or (None if fits else "insufficient_funds")
        self.act(top_up_hold, error or "ok", hold_ref=hold_ref, ref=self.ref("t"), amount_micros=amount, now=self.clock)
        if error is None:
            self.holds[hold_ref].amount += amount
            self.balance, self.frozen = self.balance - amount, self.frozen + amount

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), extra=st.integers(min_value=-700, max_value=300))
    def capture(self, data: st.DataObject, extra: int) -> None:
        ref = self.pick(data)
        hold = self.holds.get(ref)
        amount = max(0, (hold.amount if hold else 0) + extra)
        if hold is not None and hold.state == "captured":
            expected = "ok" if hold.captured == amount else "ref_conflict"  # a replay, or a reuse
            self.act(capture_hold, expected, ref=ref, amount_micros=amount, now=self.clock)
            return
        error = self._open_error(ref)
        if error is None and self.balance + self.overdraft + hold.amount - amount < 0:  # type: ignore[union-attr]
            error = "capture_exceeds_hold"
        self.act(capture_hold, error or "ok", ref=ref, amount_micros=amount, now=self.clock)
        if error is None:
            assert hold is not None
            self.balance += hold.amount - amount
            self.frozen -= hold.amount
            hold.state, hold.captured = "captured", amount

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ref = self.pick(data)
        hold = self.holds.get(ref)
        if hold is None:
            self.act(release_hold, "hold_not_found", ref=ref, now=self.clock)
        elif hold.state in ("released", "expired"):
            self.act(release_hold, "ok", ref=ref, now=self.clock)  # replays the first release
        elif hold.state == "captured":
            self.act(release_hold, "hold_already_resolved", ref=ref, now=self.clock)
        else:
            self.act(release_hold, "ok", ref=ref, now=self.clock)
            self.balance, self.frozen = self.balance + hold.amount, self.frozen - hold.amount
            hold.state = "released"

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), percent=st.integers(min_value=1, max_value=120))
    def refund(self, data: st.DataObject, percent: int) -> None:
        """Refund ``percent`` of the capture (above 100: more than is left)."""
        ref = self.pick(data, prefer="captured")
        hold = self.holds.get(ref)
        amount = max(1, hold.captured * percent // 100) if hold is not None else percent
        if hold is None or hold.state != "captured":
            expected = "capture_not_found"
        else:
            expected = "ok" if hold.refunded + amount <= hold.captured else "refund_exceeds_capture"
        self.act(refund_capture, expected, ref=self.ref("f"), capture_ref=ref, amount_micros=amount, reason="sorry",
                 actor="t", now=self.clock)
        if expected == "ok":
            assert hold is not None
            hold.refunded += amount
            self.balance += amount

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), lease_s=LEASES)
    def renew(self, data: st.DataObject, lease_s: int) -> None:
        ref = self.pick(data)
        error = self._open_error(ref)
        self.act(renew_hold_lease, error or "ok", ref=ref, lease_s=lease_s, now=self.clock)
        if error is None:
            self.holds[ref].lease_expires_at = self.clock + timedelta(seconds=lease_s)

    @rule(seconds=st.integers(min_value=1, max_value=400))
    def time_passes(self, seconds: int) -> None:
        self.clock += timedelta(seconds=seconds)

    @rule()
    def reconcile_expires_lapsed_holds(self) -> None:
        report = self.ledger.do(reconcile, now=self.clock)
        assert report.ok, [p.to_dict() for p in report.problems]
        mine = {e.ref for e in report.expired if e.org_id == self.org}
        lapsed = {ref for ref, hold in self.holds.items() if hold.lapsed(self.clock)}
        assert mine == lapsed
        for ref in lapsed:
            hold = self.holds[ref]
            hold.state = "expired"
            self.balance, self.frozen = self.balance + hold.amount, self.frozen - hold.amount

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        op, kwargs, entry_id = data.draw(st.sampled_from(self.done))
        result = self.ledger.do(op, **kwargs)
        assert result.replayed and result.id == entry_id

    @invariant()
    def wallet_matches_the_model(self) -> None:
        assert self.ledger.balances(self.org) == (self.balance, self.frozen)
        assert self.frozen == sum(h.amount for h in self.holds.values() if h.state == "open")
        assert self.balance >= -self.overdraft

    @invariant()
    def ledger_invariants_hold(self) -> None:
        report = self.ledger.do(check_invariants)
        assert report.ok, [p.to_dict() for p in report.problems]


@pytest.mark.timeout(900)  # a failure shrinks for a while before it reports a minimal sequence
def test_random_operation_sequences_keep_every_invariant(ledger: Ledger) -> None:
    LedgerMachine.ledger = ledger
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=25, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
