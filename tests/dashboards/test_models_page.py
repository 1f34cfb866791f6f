"""The Models page on the Admin API: the catalog (enable, disable, add) and a model's prices
(schedule one, the history in force and scheduled, refusals by their codes under their field),
for platform admins; an org admin is told it is theirs to manage."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from deepspace_lab.billing import set_price
from deepspace_lab.dashboards import Text
from deepspace_lab.dashboards.pages import ModelsPage
from deepspace_lab.dashboards.pages.models import MODEL_COLUMNS, PRICE_COLUMNS
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.db.base import utcnow

from ..admin.conftest import AdminWorld
from .conftest import run, signed_in
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
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = ModelsPage(session.client, text=Text("en"), identity=session.identity)
            # made with their columns (a table first shown without them shows a header, no rows)
            assert list(page.catalog.value.columns) == MODEL_COLUMNS and page.catalog.value.empty
            assert list(page.history.value.columns) == PRICE_COLUMNS and page.history.value.empty
            await page.load()
            assert MODEL in list(page.catalog.value["name"]) and not page.alert.visible
            page.choice.value = next(m["id"] for m in page.models if m["name"] == MODEL)
            await until(lambda: len(page.prices) == 2)
            scheduled, current = page.prices  # newest first
            assert (scheduled["scheduled"], scheduled["in_force"]) == (True, False)
            assert (current["scheduled"], current["in_force"]) == (False, True)
            assert page.history.value.iloc[0]["input_micros_per_mtok"] == "1.5"  # credits per Mtok, exact

    run(scenario)


def test_a_price_sent_before_the_catalog_loads_is_refused_and_a_late_history_is_dropped(
        admin_world: AdminWorld) -> None:
    """Before the catalog has loaded no model is chosen: scheduling a price is refused under
    ``model_required`` (it used to say "Saved" having sent nothing). Two history reads in flight
    (the choice's, then the one after a save) show the newer even when the older answers last."""
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = ModelsPage(session.client, text=Text("en"), identity=session.identity)
            form = page.price_form
            form.fields["input_micros_per_mtok"].value, form.fields["output_micros_per_mtok"].value = "7.25", "9"
            assert await form.send() is None and form.last_error == ("model_required", None)
            assert form.form_error.visible and not form.done.visible

            await page.load()
            page.choice.value = next(m["id"] for m in page.models if m["name"] == MODEL)
            await until(lambda: len(page.prices) == 1)
            long_id = next(m["id"] for m in page.models if m["name"] != MODEL)
            first_asked, release_first = asyncio.Event(), asyncio.Event()
            read = session.client.admin_prices

            async def held_first(model_id: str) -> dict:
                answer = await read(model_id)
                if model_id == long_id:  # the older read: it answers only after the newer one
                    first_asked.set()
                    await release_first.wait()
                return answer

            session.client.admin_prices = held_first  # type: ignore[method-assign]
            older = asyncio.create_task(page.show_prices(long_id))
            await first_asked.wait()
            made = await form.send()  # saves for the chosen model, then reads its history
            assert made is not None and page.prices[0]["input_micros_per_mtok"] == 7_250_000
            release_first.set()
            await older
            assert page.prices[0]["input_micros_per_mtok"] == 7_250_000  # the late, older answer was dropped
            assert page.history.value.iloc[0]["input_micros_per_mtok"] == "7.25"

    run(scenario)


def test_an_org_admin_is_told_models_are_for_platform_admins(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.a.people["admin"].email) as session:
            page = ModelsPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            assert page.models == [] and not page.alert.visible  # nothing asked that would be refused
            assert "platform admins" in page.body().object

    run(scenario)


def test_a_platform_admin_toggles_a_model_adds_one_and_schedules_a_price(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = ModelsPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            page.choice.value = next(m["id"] for m in page.models if m["name"] == MODEL)
            await until(lambda: len(page.prices) == 1)
            assert page.toggle.label == "Disable"
            await page.set_enabled(False)
            assert page.chosen is not None and page.chosen["enabled"] is False and page.toggle.label == "Enable"
            assert page.catalog.value.set_index("name").loc[MODEL, "enabled"] == False  # noqa: E712
            await page.set_enabled(True)
            assert page.chosen["enabled"] is True and page.toggle.label == "Disable"

            form, fields = page.price_form, page.price_form.fields
            fields["input_micros_per_mtok"].value = "1.25"
            fields["output_micros_per_mtok"].value = "two"
            assert await form.send() is None and form.last_error == ("invalid_amount", "output_micros_per_mtok")
            fields["output_micros_per_mtok"].value = "2"
            fields["effective_at"].value = "next tuesday"
            assert await form.send() is None and form.last_error is not None
            assert form.last_error[1] == "effective_at" and form.field_errors["effective_at"].visible
            when = (utcnow() + timedelta(days=10)).replace(microsecond=0)
            fields["effective_at"].value = when.isoformat()
            made = await form.send()
            assert made is not None and made["scheduled"] is True and made["input_micros_per_mtok"] == 1_250_000
            scheduled = page.prices[0]  # newest first: the history reloaded
            assert (scheduled["scheduled"], scheduled["in_force"]) == (True, False)
            assert page.history.value.iloc[0]["input_micros_per_mtok"] == "1.25"
            fields["input_micros_per_mtok"].value = "3"
            assert await form.send() is None and form.last_error is not None
            assert form.last_error[0] == "price_version_exists"  # another price at the same time

            add = page.add_form
            add.fields["name"].value = "console-made-model"
            add.fields["upstream_name"].value = "upstream-x"
            add.fields["context_window"].value = "lots"
            assert await add.send() is None and add.last_error == ("invalid_number", "context_window")
            add.fields["context_window"].value = "16384"
            assert (await add.send())["name"] == "console-made-model"
            assert "console-made-model" in list(page.catalog.value["name"])
            assert await add.send() is None and add.last_error is not None  # the same name again is refused

    run(scenario)
