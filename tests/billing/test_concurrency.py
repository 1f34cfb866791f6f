"""Interleavings: many tasks on separate connections racing on one wallet, one ref or one hold
(PostgreSQL), and several processes on one SQLite file. The database is the only referee:
no sleeps, every task starts at once behind an event."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from deepspace_lab.billing import (
    capture_hold,
    credit_wallet,
    expire_hold,
    get_hold,
    list_entries,
    place_hold,
    refund_capture,
    release_hold,
    top_up_hold,
)
from deepspace_lab.db import make_async_engine, make_sessionmaker, make_sync_engine, utcnow
from deepspace_lab.db.migrate import upgrade
from deepspace_lab.errors import DeepSpaceError

from . import _processes
from .conftest import Ledger, assert_invariants

TASKS = 40


@pytest.fixture
def pg_ledger(pg_url: str) -> Any:
    harness = Ledger(pg_url)
    harness.run(harness.engine.dispose())
    harness.engine = make_async_engine(pg_url, pool_size=TASKS + 2, max_overflow=0)
    harness.sessions = make_sessionmaker(harness.engine)
    yield harness
    harness.close()


async def race(ledger: Ledger, calls: list[Callable[[Any], Awaitable[Any]]]) -> list[Any]:
    """Run each call in its own session, all released at once when the last one is connected;
    returns the results, or the exceptions they raised."""
    start = asyncio.Event()
    ready = 0

    async def one(call: Callable[[Any], Awaitable[Any]]) -> Any:
        nonlocal ready
        async with ledger.sessions() as session:
            await session.connection()  # a connection of its own, checked out before the start
            await session.rollback()
            ready += 1
            if ready == len(calls):
                start.set()
            await start.wait()
            return await call(session)

    return await asyncio.gather(*(one(call) for call in calls), return_exceptions=True)


def outcome(result: Any) -> str:
    if isinstance(result, DeepSpaceError):
        return result.code
    return repr(result) if isinstance(result, BaseException) else "ok"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("overdraft", [0, 300])
def test_holds_racing_on_one_wallet_never_overdraw_it(pg_ledger: Ledger, overdraft: int) -> None:
    """(new-api#6609: concurrent requests all passed a read-then-decrement balance check.)"""
    org = pg_ledger.run(pg_ledger.new_wallet(balance_micros=1_000, overdraft_micros=overdraft))
    calls = [lambda s, i=i: place_hold(s, org_id=org, ref=f"h{i}", amount_micros=100) for i in range(TASKS)]
    results = pg_ledger.run(race(pg_ledger, calls))
    winners = (1_000 + overdraft) // 100
    assert Counter(map(outcome, results)) == {"ok": winners, "insufficient_funds": TASKS - winners}
    assert pg_ledger.balances(org) == (1_000 - winners * 100, winners * 100)
    assert pg_ledger.balances(org)[0] >= -overdraft


@pytest.mark.timeout(60)
def test_holds_and_captures_racing_on_one_wallet_stay_within_the_limit(pg_ledger: Ledger) -> None:
    org = pg_ledger.run(pg_ledger.new_wallet(balance_micros=1_000, overdraft_micros=200))
    for i in range(10):
        pg_ledger.do(place_hold, org_id=org, ref=f"old{i}", amount_micros=50)  # 500 frozen, 500 left
    calls: list[Callable[[Any], Awaitable[Any]]] = []
    for i in range(10):  # each capture charges 80 more than it held
        calls.append(lambda s, i=i: capture_hold(s, ref=f"old{i}", amount_micros=130))
    for i in range(TASKS - 10):
        calls.append(lambda s, i=i: place_hold(s, org_id=org, ref=f"new{i}", amount_micros=100))
    results = [outcome(r) for r in pg_ledger.run(race(pg_ledger, calls))]
    captures, holds = Counter(results[:10]), Counter(results[10:])
    assert set(captures) <= {"ok", "capture_exceeds_hold"} and set(holds) <= {"ok", "insufficient_funds"}
    balance, frozen = pg_ledger.balances(org)
    assert balance >= -200
    assert balance + frozen == 1_000 - 130 * captures["ok"]
    assert frozen == 50 * (10 - captures["ok"]) + 100 * holds["ok"]
    # Whatever the order, the winners used the allowance (500 + 200) until nothing else fit:
    left = 700 - 80 * captures["ok"] - 100 * holds["ok"]
    assert 0 <= left < 100 and (captures["ok"] == 10 or left < 80)


@pytest.mark.timeout(60)
def test_replays_of_one_ref_from_many_tasks_make_one_entry(pg_ledger: Ledger) -> None:
    """(LiteLLM#30460, #15740: a retried or duplicated charge applied twice.)"""
    org = pg_ledger.run(pg_ledger.new_wallet(balance_micros=10_000))
    for op, make in (
        ("credit", lambda s: credit_wallet(s, org_id=org, amount_micros=5, reason="r", actor="a", ref="c1")),
        ("hold", lambda s: place_hold(s, org_id=org, ref="h1", amount_micros=300)),
        ("capture", lambda s: capture_hold(s, ref="h1", amount_micros=200)),
        ("refund", lambda s: refund_capture(s, ref="f1", capture_ref="h1", amount_micros=50, reason="r", actor="a")),
    ):
        results = pg_ledger.run(race(pg_ledger, [make] * TASKS))
        assert all(not isinstance(r, BaseException) for r in results), [outcome(r) for r in results]
        assert len({r.id for r in results}) == 1, op
        assert sum(not r.replayed for r in results) == 1, op
    types = Counter(e.type for e in pg_ledger.do(list_entries, org_id=org, limit=200).entries)
    assert types == {"credit": 2, "hold": 1, "capture": 1, "refund": 1}
    assert pg_ledger.balances(org) == (10_000 + 5 - 200 + 50, 0)


@pytest.mark.timeout(60)
def test_captures_releases_and_expiry_racing_on_one_hold_resolve_it_once(pg_ledger: Ledger) -> None:
    org = pg_ledger.run(pg_ledger.new_wallet(balance_micros=100_000))
    placed_at = utcnow() - timedelta(seconds=10)
    for round_ in range(8):
        ref = f"h{round_}"
        hold = pg_ledger.do(place_hold, org_id=org, ref=ref, amount_micros=100, lease_s=5, now=placed_at)
        # the lease has lapsed for the sweeper (real time), not yet for the captures and releases
        at = placed_at + timedelta(seconds=1)
        calls: list[Callable[[Any], Awaitable[Any]]] = []
        for _ in range(5):
            calls.append(lambda s, ref=ref, at=at: capture_hold(s, ref=ref, amount_micros=60, now=at))
            calls.append(lambda s, ref=ref, at=at: release_hold(s, ref=ref, now=at))
            calls.append(lambda s, h=hold.hold_id: expire_hold(s, hold_id=h, actor="sweeper"))
        results = pg_ledger.run(race(pg_ledger, calls))
        state = pg_ledger.do(get_hold, ref=ref).state  # type: ignore[union-attr]
        winners = {r.id for r in results if r is not None and not isinstance(r, BaseException)}
        assert len(winners) == 1, [outcome(r) for r in results]
        losers = {outcome(r) for r in results if isinstance(r, BaseException)}
        assert losers <= {"hold_already_resolved", "hold_expired"}, losers
        assert state in ("captured", "released", "expired")
    engine = make_sync_engine(pg_ledger.url)
    try:
        with engine.connect() as conn:
            terminal = conn.execute(text("SELECT hold_id, COUNT(*) FROM transactions WHERE type IN "
                                         "('capture', 'release') GROUP BY hold_id")).all()
    finally:
        engine.dispose()
    assert len(terminal) == 8 and all(n == 1 for _, n in terminal)


@pytest.mark.timeout(60)
def test_refunds_racing_on_one_capture_never_exceed_it(pg_ledger: Ledger) -> None:
    org = pg_ledger.run(pg_ledger.new_wallet(balance_micros=1_000))
    pg_ledger.do(place_hold, org_id=org, ref="h", amount_micros=100)
    pg_ledger.do(capture_hold, ref="h", amount_micros=100)
    calls = [lambda s, i=i: refund_capture(s, ref=f"f{i}", capture_ref="h", amount_micros=10, reason="r", actor="a")
             for i in range(TASKS)]
    results = pg_ledger.run(race(pg_ledger, calls))
    assert Counter(map(outcome, results)) == {"ok": 10, "refund_exceeds_capture": TASKS - 10}
    assert pg_ledger.balances(org) == (1_000, 0)


@pytest.mark.timeout(90)
def test_processes_holding_on_one_sqlite_file_never_overdraw_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    upgrade(url)
    harness = Ledger(url)
    try:
        org = harness.run(harness.new_wallet(balance_micros=1_500))
    finally:
        harness.close()
    ctx = multiprocessing.get_context("spawn")
    processes, barrier, results = 3, ctx.Barrier(3), ctx.Queue()
    shared = [f"shared-{i}" for i in range(5)]  # every process also replays these refs
    workers = [ctx.Process(target=_processes.hold_each,
                           args=(url, org, shared + [f"p{n}-{i}" for i in range(10)], 100, barrier, results))
               for n in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [pair for _ in workers for pair in results.get(timeout=60)]
    for worker in workers:
        worker.join(10)
    placed = {ref: entry for ref, entry in outcomes if entry is not None}
    assert len(placed) == 15  # the wallet covers 15 holds, whoever asked first
    for ref in shared:
        assert len({entry for r, entry in outcomes if r == ref and entry is not None}) <= 1
    asyncio.run(assert_invariants(url))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("resolve", ["capture", "release"])
def test_top_ups_racing_with_the_end_of_their_hold_count_once_or_not_at_all(pg_ledger: Ledger, resolve: str) -> None:
    org = pg_ledger.run(pg_ledger.new_wallet(balance_micros=10_000))
    pg_ledger.do(place_hold, org_id=org, ref="req", amount_micros=100)
    calls: list[Callable[[Any], Awaitable[Any]]] = [
        lambda s, i=i: top_up_hold(s, hold_ref="req", ref=f"req:more{i}", amount_micros=10) for i in range(TASKS - 1)]
    calls.insert(TASKS // 2, (lambda s: capture_hold(s, ref="req", amount_micros=50)) if resolve == "capture"
                 else (lambda s: release_hold(s, ref="req")))
    outcomes = Counter(map(outcome, pg_ledger.run(race(pg_ledger, calls))))
    assert outcomes["ok"] >= 1 and set(outcomes) <= {"ok", "hold_already_resolved"}, outcomes
    topped_up = outcomes["ok"] - 1  # the capture or release is one of the oks
    hold = pg_ledger.do(get_hold, ref="req")
    assert hold is not None and hold.amount_micros == 100 + 10 * topped_up
    charged = 50 if resolve == "capture" else 0
    assert pg_ledger.balances(org) == (10_000 - charged, 0)  # every top-up came back with the end of the hold
