"""Reconciliation reports a sound ledger as ok and names each kind of damage."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from deepspace_lab.billing import capture_hold, check_invariants, place_hold, reconcile
from deepspace_lab.db import make_sync_engine
from deepspace_lab.db.migrate import upgrade

from .conftest import Ledger


@pytest.fixture
def damaged(fresh_db_url: Callable[[], str]) -> Iterator[Ledger]:
    """A ledger the test is allowed to break (not checked by the autouse invariant check)."""
    url = fresh_db_url()
    upgrade(url)
    harness = Ledger(url)
    yield harness
    harness.close()


def tamper(ledger: Ledger, statement: str) -> None:
    engine = make_sync_engine(ledger.url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def test_a_sound_ledger_reconciles(ledger: Ledger, make_wallet: Callable[..., str]) -> None:
    org = make_wallet(balance_micros=500, overdraft_micros=100)
    ledger.do(place_hold, org_id=org, ref="a", amount_micros=300)
    ledger.do(place_hold, org_id=org, ref="b", amount_micros=200)
    ledger.do(capture_hold, ref="a", amount_micros=350)
    report = ledger.do(reconcile)
    assert report.ok and report.wallets_checked == 1 and report.holds_checked == 2 and report.expired == []
    assert report.to_dict()["ok"] is True


@pytest.mark.parametrize(("statement", "checks"), [
    ("UPDATE wallets SET balance_micros = balance_micros + 1", {"wallet_total"}),
    ("UPDATE wallets SET frozen_micros = frozen_micros - 1, balance_micros = balance_micros + 1", {"wallet_frozen"}),
    ("UPDATE holds SET amount_micros = amount_micros + 1 WHERE ref = 'open'", {"hold_entries", "wallet_frozen"}),
    ("UPDATE holds SET state = 'released' WHERE ref = 'open'", {"hold_entries", "wallet_frozen"}),
    ("UPDATE holds SET captured_micros = 7 WHERE ref = 'done'", {"hold_entries"}),
])
def test_reconciliation_names_the_damage(damaged: Ledger, statement: str, checks: set[str]) -> None:
    org = damaged.run(damaged.new_wallet(balance_micros=1_000))
    damaged.do(place_hold, org_id=org, ref="open", amount_micros=100)
    damaged.do(place_hold, org_id=org, ref="done", amount_micros=100)
    damaged.do(capture_hold, ref="done", amount_micros=40)
    assert damaged.do(check_invariants).ok
    tamper(damaged, statement)
    report = damaged.do(reconcile)
    assert not report.ok
    assert {p.check for p in report.problems} == checks
    assert all(p.subject and p.message for p in report.problems)
