"""A PostgreSQL restart under the ledger: no operation fails for it, none is done twice.

The restart is played by terminating every backend of the test database (and waiting until
they are gone), which is what the connections of the raw pool and of the engine's pool see of
a restart. The production engine has no pre-ping: each path must find out and reconnect.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from deepspace_lab.billing import (
    capture_hold,
    credit_wallet,
    get_hold,
    list_entries,
    place_hold,
    release_hold,
    renew_hold_lease,
)
from deepspace_lab.db.rawpool import conninfo_of, raw_pool_for

from .conftest import Ledger


def terminate_backends(url: str) -> int:
    with psycopg.connect(conninfo_of(url), autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def pg_ledger(pg_url: str) -> Any:
    harness = Ledger(pg_url)
    yield harness
    harness.close()


@pytest.mark.timeout(60)
def test_every_ledger_path_survives_a_server_restart(pg_ledger: Ledger, pg_url: str) -> None:
    ledger = pg_ledger
    org = ledger.run(ledger.new_wallet(balance_micros=10_000))

    async def warm_up() -> int:
        # connections in both pools: the raw one (hold, capture) and the engine's (credit, reads)
        await ledger.call(place_hold, org_id=org, ref="before", amount_micros=100)
        await ledger.call(capture_hold, ref="before", amount_micros=100)
        await ledger.call(get_hold, ref="before")
        return raw_pool_for(ledger.engine).open_connections

    assert ledger.run(warm_up()) >= 1
    steps = [  # each right after a "restart": the raw pool's paths, the engine's transactions and reads
        lambda: ledger.do(place_hold, org_id=org, ref="h1", amount_micros=300),
        lambda: ledger.do(credit_wallet, org_id=org, amount_micros=50, reason="top-up", actor="t", ref="c1"),
        lambda: ledger.do(get_hold, ref="h1"),
        lambda: ledger.do(renew_hold_lease, ref="h1"),
        lambda: ledger.do(capture_hold, ref="h1", amount_micros=200),
        lambda: ledger.do(place_hold, org_id=org, ref="h2", amount_micros=10),
        lambda: ledger.do(release_hold, ref="h2"),
        lambda: ledger.do(get_hold, ref="h2"),
    ]
    for step in steps:
        assert terminate_backends(pg_url) >= 1
        assert step() is not None

    assert ledger.balances(org) == (10_000 - 100 + 50 - 200, 0)
    page = ledger.do(list_entries, org_id=org, limit=50)
    assert sorted((e.type, e.ref) for e in page.entries if e.ref in {"h1", "h2", "c1"}) == [
        ("capture", "h1"), ("credit", "c1"), ("hold", "h1"), ("hold", "h2"), ("release", "h2")]  # once each
