"""The Billing page on the Admin API's money routes: wallets and ledger entries paged on the
server, every org for a platform admin, their own org only for an org admin; crediting a
wallet (once per operation however often it is clicked), usage records, credit codes, and
exports and statements as Worker jobs with their progress."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from deepspace_lab.client import DeepSpaceClient, InvalidRequestError
from deepspace_lab.dashboards import Text
from deepspace_lab.dashboards.pages import BillingPage
from deepspace_lab.dashboards.values import parse_credits
from deepspace_lab.db.base import utcnow

from ..admin.conftest import AdminWorld
from ..helpers import Gateway
from .conftest import MODEL, key_client, ledger, run, signed_in
from .test_components import until


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway]) -> Gateway:
    """The admin world's gateway, with a Worker queue of its own (the export test starts a worker)."""
    return gateway_factory(worker_backend="sqlite")


def test_a_platform_admin_pages_every_orgs_wallets_and_entries(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
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

    run(scenario)


def test_an_org_admin_sees_only_their_own_org(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.a.people["admin"].email) as session:
            page = BillingPage(session.client, text=Text("zh"), identity=session.identity)
            assert "org_id" not in page.transactions.filters  # nothing to choose: the scope is one org
            await page.load()
            assert [r["org_id"] for r in page.wallets.rows] == [w.a.id]
            assert page.transactions.rows and {r["org_id"] for r in page.transactions.rows} == {w.a.id}

    run(scenario)


def test_amounts_are_read_exactly_or_refused_with_a_code() -> None:
    assert parse_credits("1.5", param="a") == 1_500_000 and parse_credits("1,000,000", param="a") == 10**12
    assert parse_credits("0.000001", param="a") == 1
    for bad in ("", "1.0000001", "abc", "1e400", "nan"):
        with pytest.raises(InvalidRequestError) as refused:
            parse_credits(bad, param="amount_micros")
        assert (refused.value.code, refused.value.param) == ("invalid_amount", "amount_micros")


def test_a_wallet_credit_clicked_twice_moves_money_once(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = BillingPage(session.client, text=Text("en"), identity=session.identity)
            form = page.adjust
            form.fields["org_id"].value = w.a.id
            form.fields["amount_micros"].value = "12.5"
            form.fields["reason"].value = "goodwill"
            first, second = await asyncio.gather(form.send(), form.send())  # a double click
            assert sorted([first["replayed"], second["replayed"]]) == [False, True]
            assert first["entry"]["id"] == second["entry"]["id"]
            assert page.last_operation is not None
            assert page.last_operation["wallet"]["balance_micros"] == 10**12 + 12_500_000
            again = await form.send()  # the same form once more: still the same operation
            assert again["replayed"] is True and "Already done" in page.outcome.object
            form.fields["reason"].value = "goodwill, second time"  # a changed form is a new operation
            assert (await form.send())["replayed"] is False and "Done: credit of 12.5" in page.outcome.object
            credits_ = [e for e in ledger(w, w.a.id, "credit") if e["amount_micros"] == 12_500_000]
            assert sorted(e["reason"] for e in credits_) == ["goodwill", "goodwill, second time"]
            row = page.wallets.table.value
            assert row[row["org_id"] == w.a.id].iloc[0]["balance (credits)"] == "1,000,025"  # the table reloaded
            page.verb.value = "debit"
            form.fields["amount_micros"].value = "2000000"
            assert await form.send() is None and form.last_error is not None
            assert form.last_error[0] == "insufficient_funds"
            form.fields["amount_micros"].value = "1.2345678"
            assert await form.send() is None and form.last_error == ("invalid_amount", "amount_micros")
            assert form.field_errors["amount_micros"].visible
            assert [e["amount_micros"] for e in ledger(w, w.a.id, "debit")] == []  # refused: nothing moved

    run(scenario)


def test_an_org_admin_has_no_money_forms_but_their_usage_records(admin_world: AdminWorld) -> None:
    w = admin_world
    for org in (w.a, w.b):
        with DeepSpaceClient(base_url=w.gw.url, api_key=org.people["member"].key) as client:
            client.chat(MODEL, [{"role": "user", "content": "hello [sim:tokens=2]"}])

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.a.people["admin"].email) as session:
            page = BillingPage(session.client, text=Text("en"), identity=session.identity)
            assert page.codes is None and page.tab_keys == ["wallets", "transactions", "usage", "statements"]
            assert "org_id" not in page.usage.filters
            await page.load()
            assert [(r["org_id"], r["model"]) for r in page.usage.rows] == [(w.a.id, MODEL)]
            page.usage.filters["model"].value = "no-such-model"
            await until(lambda: page.usage.rows == [])
            page.focus("statements")
            assert page.tabs.active == 3

    run(scenario)


def test_credit_codes_are_shown_once_listed_and_revoked(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = BillingPage(session.client, text=Text("en"), identity=session.identity)
            codes = page.codes
            assert codes is not None
            await codes.load()
            codes.create.fields["count"].value = "2"
            codes.create.fields["amount_micros"].value = "five"
            assert await codes.create.send() is None and codes.create.last_error == ("invalid_amount", "amount_micros")
            codes.create.fields["amount_micros"].value = "5"
            made = await codes.create.send()
            shown = codes.new_codes.value.splitlines()
            assert shown == made["codes"] and len(shown) == 2 and all(c.startswith("DSC-") for c in shown)
            batch = made["batch"]["id"]
            assert codes.batches.rows[0]["id"] == batch and codes.batch.value == batch
            await until(lambda: len(codes.codes.rows) == 2)
            assert {r["state"] for r in codes.codes.rows} == {"active"}
            assert shown[0] not in str(codes.codes.rows)  # lists never hold a code itself
            async with key_client(w.gw.url, w.a.people["member"].key) as member:
                await member.redeem_code(shown[0])
            codes.revoke_batch.fields["batch_id"].value = batch
            await codes.revoke_batch.send()
            assert sorted(r["state"] for r in codes.codes.rows) == ["redeemed", "revoked"]
            assert codes.batches.rows[0]["states"]["revoked"] == 1
            redeemed = next(r["id"] for r in codes.codes.rows if r["state"] == "redeemed")
            codes.revoke_code.fields["code_id"].value = redeemed
            assert await codes.revoke_code.send() is None
            assert codes.revoke_code.last_error is not None and codes.revoke_code.last_error[0] == "code_redeemed"

    run(scenario)


def test_exports_and_statements_run_as_worker_jobs_with_progress(admin_world: AdminWorld,
                                                                worker_factory: Callable[..., Any]) -> None:
    w = admin_world
    worker_factory(w.gw.settings)
    with DeepSpaceClient(base_url=w.gw.url, api_key=w.a.people["member"].key) as client:
        client.chat(MODEL, [{"role": "user", "content": "hello [sim:tokens=2]"}])

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = BillingPage(session.client, text=Text("en"), identity=session.identity)
            export = page.exports["usage"]
            export.progress.poll_interval_s = 0.05
            page.usage.filters["org_id"].value = w.a.id
            job = await export.form.send()
            assert job is not None and job["state"] == "done" and job["params"]["orgs"] == w.a.id
            assert export.progress.seen[-1] == ("done", 100.0) and export.progress.label.object == "Done"
            assert not export.form.done.visible  # the progress says how the job ended, not "saved"
            ((name, file_id),) = export.downloads.items()
            assert f"href='files/{file_id}' download>{name}</a>" in export.files.objects[0].object  # a link
            rows = list(csv.DictReader(io.StringIO((await session.client.file_content(file_id)).decode())))
            assert name.endswith(".csv") and [r["org_id"] for r in rows] == [w.a.id]
            statement, month = page.statements, f"{utcnow():%Y-%m}"
            statement.progress.poll_interval_s = 0.05
            statement.form.fields["month"].value = month
            assert await statement.form.send() is None  # a platform admin names the org
            assert statement.form.last_error == ("missing_field", "org_id")
            statement.form.fields["org_id"].value = w.a.id
            statement.form.fields["month"].value = "2026-13"
            assert await statement.form.send() is None and statement.form.last_error is not None
            assert statement.form.last_error[1] == "month"
            statement.form.fields["month"].value = month
            job = await statement.form.send()
            assert job is not None and job["state"] == "done" and job["params"]["org_id"] == w.a.id
            name = f"statement-{month}-{w.a.id}"
            assert sorted(statement.downloads) == [f"{name}.csv", f"{name}.md"]
            text = (await session.client.file_content(statement.downloads[f"{name}.csv"])).decode()
            closing = next(r for r in csv.reader(io.StringIO(text)) if r[0] == "closing_balance")
            wallet = await session.client.admin_wallet(w.a.id)
            assert closing[-1] == str(wallet["balance_micros"])  # org a's money (after its chat), not the admin's

    run(scenario)
