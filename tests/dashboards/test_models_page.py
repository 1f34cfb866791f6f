"""The Models page on the Admin API: the catalog and a model's price history (in force,
scheduled), for platform admins; an org admin is told it is theirs to manage."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from deepspace_lab.billing import set_price
from deepspace_lab.dashboards import Text, sign_in
from deepspace_lab.dashboards.pages import ModelsPage
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.db.base import utcnow

from ..admin.conftest import AdminWorld
from ..identity.conftest import PASSWORD
from .conftest import run
from .test_components import until

MODEL = "deepspace-simulated-chat"


def schedule_price(url: str, *, days: int, input_micros: int) -> None:
    async def go() -> None:
        engine = make_async_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                await set_price(session, model_name=MODEL, input_micros_per_mtok=input_micros,
                                output_micros_per_mtok=2_000_000, effective_at=utcnow() + timedelta(days=days),
                                actor="tests")
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_a_platform_admin_sees_the_catalog_and_a_models_price_history(admin_world: AdminWorld) -> None:
    w = admin_world
    schedule_price(w.gw.settings.database_url, days=3, input_micros=1_500_000)

    async def scenario() -> None:
        session = await sign_in(w.gw.url, w.platform.email, PASSWORD)
        try:
            page = ModelsPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            assert MODEL in list(page.catalog.value["name"]) and not page.alert.visible
            page.choice.value = next(m["id"] for m in page.models if m["name"] == MODEL)
            await until(lambda: len(page.prices) == 2)
            scheduled, current = page.prices  # newest first
            assert (scheduled["scheduled"], scheduled["in_force"]) == (True, False)
            assert (current["scheduled"], current["in_force"]) == (False, True)
            assert page.history.value.iloc[0]["input_micros_per_mtok"] == "1.5"  # credits per Mtok, exact
        finally:
            await session.close()

    run(scenario)


def test_an_org_admin_is_told_models_are_for_platform_admins(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        session = await sign_in(w.gw.url, w.a.people["admin"].email, PASSWORD)
        try:
            page = ModelsPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            assert page.models == [] and not page.alert.visible  # nothing asked that would be refused
            assert "platform admins" in page.body().object
        finally:
            await session.close()

    run(scenario)
