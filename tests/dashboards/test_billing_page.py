"""The Billing page on the Admin API's money routes: wallets and ledger entries paged on the
server, every org for a platform admin, their own org only for an org admin."""

from __future__ import annotations

from deepspace_lab.dashboards import Text, sign_in
from deepspace_lab.dashboards.pages import BillingPage

from ..admin.conftest import AdminWorld
from ..identity.conftest import PASSWORD
from .conftest import run
from .test_components import until


def test_a_platform_admin_pages_every_orgs_wallets_and_entries(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        session = await sign_in(w.gw.url, w.platform.email, PASSWORD)
        try:
            page = BillingPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            orgs = {r["org_id"] for r in page.wallets.rows}
            assert {w.a.id, w.b.id} <= orgs and not page.wallets.alert.visible
            shown = page.wallets.table.value
            row = shown[shown["org_id"] == w.a.id].iloc[0]
            assert row["balance (credits)"] == "1,000,000" and row["org_name"] == "org a"  # credits, exact
            assert {r["org_id"] for r in page.transactions.rows} >= {w.a.id, w.b.id}
            page.transactions.filters["org_id"].value = w.b.id
            page.transactions.filters["type"].value = "credit"  # each change reloads (the newest answer wins)
            await until(lambda: {(r["org_id"], r["type"]) for r in page.transactions.rows} == {(w.b.id, "credit")})
            page.wallets.size_select.value = 1
            await until(lambda: len(page.wallets.rows) == 1)
            first = page.wallets.rows
            await page.wallets.next_page()
            assert len(first) == len(page.wallets.rows) == 1 and first != page.wallets.rows
        finally:
            await session.close()

    run(scenario)


def test_an_org_admin_sees_only_their_own_org(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        session = await sign_in(w.gw.url, w.a.people["admin"].email, PASSWORD)
        try:
            page = BillingPage(session.client, text=Text("zh"), identity=session.identity)
            assert "org_id" not in page.transactions.filters  # nothing to choose: the scope is one org
            await page.load()
            assert [r["org_id"] for r in page.wallets.rows] == [w.a.id]
            assert page.transactions.rows and {r["org_id"] for r in page.transactions.rows} == {w.a.id}
        finally:
            await session.close()

    run(scenario)
