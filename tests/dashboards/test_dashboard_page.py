"""The Dashboard on the Admin API's overview: figures and trends from the roll-ups, top spenders,
and anomalies judged from the overview's numbers, each linking to the page where to act."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from deepspace_lab.billing.ledger import place_hold
from deepspace_lab.billing.models import UsageRecord
from deepspace_lab.billing.rollups import roll_up_due
from deepspace_lab.dashboards import AdminShell, Text
from deepspace_lab.dashboards.pages import BillingPage, DashboardPage
from deepspace_lab.dashboards.pages.dashboard import find_anomalies
from deepspace_lab.db.base import utcnow

from ..admin.conftest import AdminWorld
from .conftest import run, signed_in

UNTIL = "2026-12-10T12:00:00+00:00"


def overview(*, by_day: dict[str, int] | None = None, errors: tuple[int, int, float | None] = (0, 0, None),
             baseline_rate: float | None = None, holds: int = 0, reconcile_ok: bool | None = None,
             low: int = 0) -> dict[str, Any]:
    """An overview answer as the Admin API gives it, with the numbers a test sets."""
    today_errors, today_requests, ratio = errors
    return {
        "until": UNTIL,
        "trends": {"by_day": [{"key": k, "cost_micros": v} for k, v in (by_day or {}).items()]},
        "anomalies": {
            "holds_past_lease": {"count": holds, "oldest_lease_expires_at": "2026-12-10T11:00:00+00:00" if holds
                                 else None},
            "low_balances": {"threshold_micros": 1_000_000, "count": low,
                             "lowest": [{"org_id": "org_1", "org_name": "acme", "balance_micros": 250_000,
                                         "frozen_micros": 0}] * low},
            "reconciliation": None if reconcile_ok is None else {
                "job_id": "job_1", "finished_at": "2026-12-10T10:17:00+00:00",
                "result": {"ok": reconcile_ok, "problems": [] if reconcile_ok else [{"check": "wallet_total"}]}},
            "error_rate": {"today": {"requests": today_requests, "errors": today_errors,
                                     "error_rate": today_errors / today_requests if today_requests else None},
                           "baseline_7d": {"requests": 100, "errors": 1, "error_rate": baseline_rate},
                           "ratio": ratio}}}


def test_anomalies_are_judged_from_the_overview_numbers() -> None:
    t = Text("en")
    assert find_anomalies(overview(), t) == []
    quiet_week = {f"2026-12-0{d}": 1_000_000 for d in range(3, 10)}
    spike = find_anomalies(overview(by_day={**quiet_week, "2026-12-10": 2_000_000}), t)
    assert [(a.kind, a.page, a.tab) for a in spike] == [("spend_spike", "billing", "usage")]
    assert "2 credits spent today, against 1 a day" in spike[0].message
    assert find_anomalies(overview(by_day={**quiet_week, "2026-12-10": 1_999_999}), t) == []
    assert find_anomalies(overview(by_day={"2026-12-10": 5_000_000}), t) == []  # nothing to compare with
    errors = find_anomalies(overview(errors=(6, 20, 30.0), baseline_rate=0.01), t)
    assert [(a.kind, a.page, a.tab) for a in errors] == [("error_spike", "audit", "log")]
    assert "30.0% of today's requests failed (6 errors)" in errors[0].message
    assert find_anomalies(overview(errors=(4, 5, 80.0), baseline_rate=0.01), t) == []  # too few errors
    assert [a.kind for a in find_anomalies(overview(errors=(5, 10, None)), t)] == ["error_spike"]  # no baseline
    assert find_anomalies(overview(errors=(5, 100, None)), t) == []  # 5%: not alarming on its own
    kinds = find_anomalies(overview(holds=2, reconcile_ok=False, low=1), Text("zh"))
    assert [(a.kind, a.page, a.tab) for a in kinds] == [("stuck_holds", "billing", "transactions"),
                                                        ("drift", "billing", "wallets"),
                                                        ("low_balance", "billing", "wallets")]
    assert "acme (0.25)" in kinds[2].message and "低于" in kinds[2].message
    assert find_anomalies(overview(reconcile_ok=True), t) == []


def _usage_two_days_ago(w: AdminWorld) -> None:
    at = utcnow() - timedelta(days=2)
    rows = [{"request_id": f"req_dash_{org.id[-6:]}_{i}", "trace_id": secrets.token_hex(16), "org_id": org.id,
             "project_id": org.project_id, "model": "m-dash", "measured": "upstream", "status": "captured",
             "prompt_tokens": 10, "completion_tokens": 5, "cost_micros": cost, "created_at": at}
            for org, cost in ((w.a, 3_000_000), (w.b, 1_000_000)) for i in range(2)]
    with w.gw.db.begin() as conn:
        conn.execute(insert(UsageRecord), rows)
    w.gw.loop.run(roll_up_due(w.gw.runtime.engine))


def _stuck_hold(w: AdminWorld) -> None:
    """An open hold of org a's whose lease lapsed an hour ago (its request never finished)."""
    async def place() -> None:
        async with w.gw.runtime.sessions() as session:
            await place_hold(session, org_id=w.a.id, ref="req_dash_stuck", amount_micros=1, lease_s=60,
                             now=utcnow() - timedelta(hours=1))

    w.gw.loop.run(place())


def test_the_dashboard_shows_figures_spenders_and_links_to_where_to_act(admin_world: AdminWorld) -> None:
    w = admin_world
    _usage_two_days_ago(w)
    _stuck_hold(w)
    w.call("POST", f"/deepspace/admin/api/wallets/{w.b.id}/debit", key=w.platform.key,
           headers={"Idempotency-Key": "dash-low"}, json={"amount_micros": 10**12 - 500_000, "reason": "test"})

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            shell = AdminShell(session.client, session.identity, lang="en")
            page = shell.current
            assert isinstance(page, DashboardPage)
            await page.load()
            assert page.view is not None and not page.alert.visible
            figures = " ".join(pane.object for pane in page.figures.objects)
            assert "Requests" in figures and ">4<" in figures and ">8<" in figures  # 4 requests, 8 credits
            assert list(page.spenders.value["Org"])[:2] == ["org a", "org b"]
            assert list(page.spenders.value["Cost (credits)"])[:2] == ["6", "2"]
            assert len(page.charts.objects) == 4  # cost and requests by day, cost by model and by org
            days = page.charts.objects[1].object.renderers[0].data_source.data
            assert len(days["key"]) == 31 and sum(days["requests"]) == 4  # every day of the window, zeros too
            (low,) = [a for a in page.anomalies if a.kind == "low_balance"]
            assert "org b (0.5)" in low.message
            (stuck,) = [a for a in page.anomalies if a.kind == "stuck_holds"]
            assert (stuck.page, stuck.tab) == ("billing", "transactions")
            (row,) = [r for r in page.alerts.objects if "ds-anomaly-stuck_holds" in r.css_classes]
            row.objects[1].clicks += 1  # "Act: Billing", at its Transactions tab (not the first)
            billing = shell.current
            assert isinstance(billing, BillingPage) and shell.nav.value == "billing"
            assert billing.tabs.active == billing.tab_keys.index("transactions") == 1
            shell.go("billing", "usage")  # a link may open a page at one of its tabs
            assert shell.current is billing and billing.tabs.active == 2

    run(scenario)


def test_an_org_admin_sees_their_own_org_only(admin_world: AdminWorld) -> None:
    w = admin_world
    _usage_two_days_ago(w)

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.a.people["admin"].email) as session:
            page = DashboardPage(session.client, text=Text("zh"), identity=session.identity)
            await page.load()
            assert page.view is not None and page.view["org_id"] == w.a.id
            assert list(page.spenders.value["组织"]) == ["org a"]
            assert len(page.charts.objects) == 3  # no chart across orgs

    run(scenario)
