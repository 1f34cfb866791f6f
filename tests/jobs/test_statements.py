"""Monthly statements tell the ledger's story: a month's credits, debits, captures and refunds,
the balance it opened and closed with (entries of the months around it left out), and the money
still reserved by an open request at its close — read back from the statement's CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Any

from deepspace_lab.billing import ledger
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.jobs.statements import render_csv, render_markdown, statement_data

from ..helpers import make_tenant

C = 1_000_000  # micro-credits in a credit


def on(month: int, day: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, 12, minute, tzinfo=UTC)


def test_a_statement_sums_the_months_ledger_and_carries_the_balance(settings_factory: Any) -> None:
    settings = settings_factory()
    org = make_tenant(settings, email="statement@example.org", credit_micros=0).org_id
    other = make_tenant(settings, email="neighbour@example.org", credit_micros=0).org_id

    async def story() -> dict[str, dict[str, Any]]:
        engine = make_async_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as s:
                await ledger.credit_wallet(s, org_id=org, amount_micros=100 * C, reason="top-up", actor="t",
                                           now=on(10, 15))
                await ledger.credit_wallet(s, org_id=org, amount_micros=50 * C, reason="top-up", actor="t",
                                           now=on(11, 2))
                await ledger.place_hold(s, org_id=org, ref="req_1", amount_micros=10 * C, now=on(11, 3))
                await ledger.capture_hold(s, ref="req_1", amount_micros=7 * C, now=on(11, 3, 1))
                await ledger.refund_capture(s, ref="rfd_1", capture_ref="req_1", amount_micros=2 * C,
                                            reason="bad answer", actor="t", now=on(11, 5))
                await ledger.debit_wallet(s, org_id=org, amount_micros=5 * C, reason="adjustment", actor="t",
                                          now=on(11, 6))
                await ledger.place_hold(s, org_id=org, ref="req_2", amount_micros=4 * C, now=on(11, 30))
                await ledger.credit_wallet(s, org_id=org, amount_micros=1000 * C, reason="top-up", actor="t",
                                           now=on(12, 1))
                await ledger.credit_wallet(s, org_id=other, amount_micros=7777 * C, reason="not ours", actor="t",
                                           now=on(11, 10))
            async with engine.connect() as conn:
                return {m: await statement_data(conn, org_id=org, month=m) for m in ("2026-10", "2026-11", "2026-12")}
        finally:
            await engine.dispose()

    months = asyncio.run(story())
    november = read_csv(render_csv(months["2026-11"]))
    assert november == {"opening_balance": 100 * C, "credit": 50 * C, "debit": 5 * C, "capture": 7 * C,
                        "refund": 2 * C, "closing_balance": 136 * C}
    # the balance moves by exactly the month's entries, less what an open request still holds
    assert (november["opening_balance"] + november["credit"] - november["debit"] - november["capture"]
            + november["refund"] - months["2026-11"]["closing_frozen_micros"]) == november["closing_balance"]
    assert months["2026-11"]["closing_frozen_micros"] == 4 * C
    assert read_csv(render_csv(months["2026-10"])) == {"opening_balance": 0, "credit": 100 * C, "debit": 0,
                                                       "capture": 0, "refund": 0, "closing_balance": 100 * C}
    december = months["2026-12"]
    assert (december["opening_balance_micros"], december["closing_balance_micros"]) == (136 * C, 1136 * C)
    markdown = render_markdown(months["2026-11"])
    for line in ("| opening balance | 100.000000 |", "| refunds | 2.000000 |", "| closing balance | 136.000000 |",
                 "| of which reserved by open requests at close | 4.000000 |"):
        assert line in markdown


def read_csv(text: str) -> dict[str, int]:
    """The money rows of a statement's CSV: section → micro-credits."""
    return {row[0]: int(row[6]) for row in csv.reader(io.StringIO(text)) if row[0] not in ("section", "usage")}

