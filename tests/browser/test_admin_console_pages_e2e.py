"""The console's working pages in a real headless Chromium: a platform admin signs in and sees
the Dashboard's figures from the roll-ups, looks up a billed request's trace (its timeline is
drawn), schedules a price change (it shows in the history as scheduled) and credits a wallet
with a double click (the balance changes once; the entry is listed). Screenshots are kept under
the test's tmp dir (the path is printed)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from deepspace_lab.billing.rollups import roll_up_due
from deepspace_lab.db.base import utcnow

from ..admin.conftest import AdminWorld, admin_world  # noqa: F401  (the fixture)
from ..cli.conftest import Processes, spawn  # noqa: F401  (the fixture)
from ..dashboards.conftest import MODEL, ledger, traced_chat
from ..dashboards.test_server import start_admin
from ..identity.conftest import PASSWORD
from .conftest import console_login, needs_chromium

pytestmark = pytest.mark.slow
WAIT = 30_000


def billed_request(w: AdminWorld) -> str:
    """One billed chat of org a's member, rolled up at once (the hour is closed early: a test)."""
    trace = traced_chat(w, w.a.people["member"].key)
    w.gw.loop.run(roll_up_due(w.gw.runtime.engine, now=utcnow() + timedelta(hours=1)))
    return trace


@needs_chromium
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_dashboard_trace_price_and_wallet_credit(admin_world: AdminWorld, spawn: Processes,  # noqa: F811
                                                 tmp_path: Path, browser_page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    w = admin_world
    trace = billed_request(w)
    _proc, url = start_admin(spawn, w.gw.url, tmp_path / "data", "--lang=en")
    page = browser_page
    console_login(page, url, w.platform.email, PASSWORD)
    expect(page.get_by_text(f"Signed in as {w.platform.email}", exact=False)).to_be_visible(timeout=60_000)

    figures = page.locator(".ds-figures")  # the Dashboard opens first
    requests = figures.locator(".ds-figure").filter(has_text="Requests").locator("b")
    expect(requests).to_have_text("1", timeout=WAIT)  # the one billed request
    expect(page.locator(".ds-spenders").get_by_text("org a", exact=True)).to_be_visible(timeout=WAIT)
    # the operators' org has no credit: a low balance, with its button to Billing
    expect(page.locator(".ds-anomalies .ds-anomaly-low_balance")).to_be_visible()
    page.screenshot(path=str(shots / "1-dashboard.png"), full_page=True)

    nav = page.locator(".ds-nav")
    nav.get_by_role("button", name="Audit", exact=True).click()
    page.locator(".ds-trace-id input").fill(trace)
    page.get_by_role("button", name="Look up", exact=True).click()
    timeline = page.locator(".ds-timeline")
    expect(timeline).to_contain_text("POST /deepspace/v1/chat/completions → 200", timeout=WAIT)
    expect(timeline).to_contain_text("capture")
    expect(timeline).to_contain_text(f"{MODEL}: ")
    page.screenshot(path=str(shots / "2-trace.png"), full_page=True)

    nav.get_by_role("button", name="Models", exact=True).click()
    history = page.locator(".ds-prices")
    expect(history.get_by_text("init", exact=True)).to_be_visible(timeout=WAIT)  # the catalog and history loaded
    when = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    page.get_by_placeholder("1.5").fill("7.25")
    page.get_by_placeholder("2", exact=True).fill("9")
    page.get_by_placeholder("2026-12-31T00:00:00Z").fill(when.isoformat())
    page.get_by_role("button", name="Schedule a price", exact=True).click()
    expect(history.get_by_text("7.25", exact=True)).to_be_visible(timeout=WAIT)
    expect(history.get_by_text(when.isoformat(), exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "3-price-scheduled.png"), full_page=True)

    nav.get_by_role("button", name="Billing", exact=True).click()
    page.locator(".ds-adjust-org input").fill(w.b.id)
    page.get_by_placeholder("10", exact=True).fill("42")
    page.locator(".ds-adjust-reason input").fill("browser test goodwill")
    page.get_by_role("button", name="Apply", exact=True).dblclick()
    expect(page.locator(".ds-money-outcome")).to_contain_text("the balance is", timeout=WAIT)
    expect(page.get_by_text("1,000,042", exact=True).first).to_be_visible(timeout=WAIT)
    page.get_by_text("Transactions", exact=True).click()
    expect(page.get_by_text("browser test goodwill", exact=True).first).to_be_visible(timeout=WAIT)
    page.screenshot(path=str(shots / "4-wallet-credited.png"), full_page=True)
    credited = [e for e in ledger(w, w.b.id, "credit") if e["amount_micros"] == 42_000_000]
    assert len(credited) == 1  # a double click credits once
