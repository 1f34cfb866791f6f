"""The Users, Risk & Policy and System pages against a real gateway (and, for webhooks, a Worker
and a local receiver): what each shows is the Admin API's, edits go through ApiForms whose
refusals show the API's codes, and each change's effect is visible — a denied address is
refused, a disabled user's key stops working, a webhook test arrives signed and is logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from deepspace_lab.dashboards import AdminShell, Text
from deepspace_lab.dashboards.pages import RiskPage, SystemPage, UsersPage
from deepspace_lab.webhooks.deliveries import verify_signature

from ..admin.conftest import AdminWorld
from ..helpers import Gateway
from ..webhooks.receiver import Receiver, gateway_with_worker, receiver  # noqa: F401  (the fixture)
from .conftest import run, signed_in
from .test_components import until


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway], worker_factory: Callable[..., Any]) -> Gateway:
    return gateway_with_worker(gateway_factory, worker_factory, webhook_max_attempts=2)


def _me(w: AdminWorld, key: str) -> int:
    return httpx.get(w.gw.url + "/deepspace/api/me", headers={"Authorization": f"Bearer {key}"}).status_code


def test_risk_policies_and_caps_with_validation_and_their_effect(admin_world: AdminWorld) -> None:
    w = admin_world
    victim = w.b.people["member"]

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = RiskPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            form = page.policy_form
            form.fields["kind"].value = "ip_rule"
            form.fields["scope"].value = "org"
            form.fields["scope_id"].value = w.b.id
            form.fields["cidr"].value = "not-an-address"
            assert await form.send() is None and form.last_error == ("invalid_cidr", "cidr")
            assert form.field_errors["cidr"].visible and "is not an IPv4" in form.field_errors["cidr"].object
            form.fields["cidr"].value = "127.0.0.1"
            assert _me(w, victim.key) == 200
            answer = await form.send()
            assert answer["policy"]["subject"] == "127.0.0.1/32" and form.done.visible
            assert _me(w, victim.key) == 403  # the effect: org B's requests from 127.0.0.1 are refused
            rule = next(r for r in page.policies.rows if r["kind"] == "ip_rule")  # the table reloaded
            assert (rule["scope_id"], rule["spec"], rule["in_force"]) == (w.b.id, {"action": "deny"}, True)
            page.delete_policy.fields["policy_id"].value = str(rule["id"])
            await page.delete_policy.send()
            assert _me(w, victim.key) == 200
            form.fields["kind"].value = "rate_limit"  # then: a caller's use of it, now
            form.fields["rpm"].value = 5
            await form.send()
            for _ in range(2):
                chat = httpx.post(w.gw.url + "/deepspace/v1/chat/completions", headers={
                    "Authorization": f"Bearer {victim.key}"}, json={"model": "deepspace-simulated-chat",
                                                                    "messages": [{"role": "user", "content": "hi"}]})
                assert chat.status_code == 200
            page.usage_form.fields["org_id"].value = w.b.id
            page.usage_form.fields["api_key_id"].value = victim.key_id
            answer = await page.usage_form.send()
            assert [(r["scope"], r["limit"], r["max"], r["used"]) for r in answer["data"]] == [
                ("org", "requests_per_minute", 5, 2)]
            assert page.usage_table.value.iloc[0]["used"] == 2
            page.usage_form.fields["api_key_id"].value = w.a.people["member"].key_id  # another org's key
            assert await page.usage_form.send() is None and page.usage_form.last_error[0] == "api_key_not_found"
            form.fields["kind"].value = "model_policy"
            assert not form.fields["cidr"].visible and form.fields["models"].visible
            form.fields["models"].value = "no-such-model"
            assert await form.send() is None and form.last_error[0] == "unknown_model"

            budget = page.budget_form
            budget.fields["org_id"].value = w.a.id
            budget.fields["limit_micros"].value = 5_000_000
            assert (await budget.send())["budget"]["limit_micros"] == 5_000_000
            [cap] = [b for b in page.budgets.rows if b["org_id"] == w.a.id]
            assert (cap["spent_micros"], cap["remaining_micros"]) == (0, 5_000_000)
            assert page.budgets.table.value.iloc[0]["limit (credits)"] == "5"
            budget.fields["org_id"].value = "org_nothere"
            assert await budget.send() is None and budget.last_error[0] == "org_not_found"

        async with signed_in(w.gw.url, w.b.people["admin"].email) as session:
            page = RiskPage(session.client, text=Text("zh"), identity=session.identity)
            await page.load()
            assert "org_id" not in page.policies.filters and not page.policies.alert.visible
            assert {b["org_id"] for b in page.budgets.rows} <= {w.b.id}
            assert "平台管理员" in page.body().objects[0].objects[-1].object  # read-only note, in Chinese

    run(scenario)


def test_system_keys_and_a_webhook_made_tested_and_logged(admin_world: AdminWorld,
                                                          receiver: Receiver) -> None:  # noqa: F811
    w = admin_world
    victim = w.a.people["viewer"]

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = SystemPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            assert victim.key_id in {k["id"] for k in page.keys.rows} and "key_hash" not in str(page.keys.rows)
            page.revoke.fields["key_id"].value = victim.key_id
            assert (await page.revoke.send())["revoked_at"] and _me(w, victim.key) == 401
            assert await page.send_test() is None and page.alert.visible  # no webhook chosen yet
            page.redeliver.fields["delivery_id"].value = "1"  # nor for a redelivery: refused here, nothing sent
            assert await page.redeliver.send() is None and page.redeliver.last_error == ("webhook_required", None)
            assert "Enter a webhook id first" in page.redeliver.form_error.object

            create = page.create
            create.fields["url"].value = "ftp://nowhere"
            assert await create.send() is None and create.last_error == ("invalid_url", "url")
            create.fields["url"].value = receiver.url
            create.fields["org_id"].value = w.a.id
            made = await create.send()
            assert page.secret.visible and made["secret"] in page.secret.object  # shown this once
            assert page.hook_id.value == made["id"] and made["id"] in {h["id"] for h in page.hooks.rows}
            attempt = await page.send_test()
            assert attempt is not None and (attempt["status"], attempt["response_code"]) == ("succeeded", 200)
            [got] = receiver.wait_for(1)
            assert verify_signature(made["secret"], body=got.body, timestamp=got.headers["x-deepspace-timestamp"],
                                    signature_header=got.headers["x-deepspace-signature"])
            assert json.loads(got.body)["type"] == "ping" and page.deliveries.rows[0]["id"] == attempt["id"]
            assert "succeeded" in page.follow_status.object
            page.redeliver.fields["delivery_id"].value = attempt["id"]
            again = await page.redeliver.send()
            assert again["event_id"] == attempt["event_id"] and len(receiver.wait_for(2)) == 2
            assert [d["trigger"] for d in page.deliveries.rows] == ["redeliver", "test"]

        async with signed_in(w.gw.url, w.b.people["admin"].email) as session:
            page = SystemPage(session.client, text=Text("zh"), identity=session.identity)
            await page.load()
            assert page.hooks.rows == [] and "org_id" not in page.create.fields
            assert page.body().objects[0].object.startswith("所有组织的 API 密钥")
            page.hook_id.value = made["id"]  # org A's hook: not found for org B's admin (the change reloads)
            await until(lambda: page.deliveries.alert.visible)
            assert "webhook_not_found" in page.deliveries.alert.object

    run(scenario)


def test_users_search_disable_enable_roles_orgs_and_the_matrix_after_switching_language(
        admin_world: AdminWorld) -> None:
    w = admin_world
    target = w.a.people["member"]

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            shell = AdminShell(session.client, session.identity, lang="en")
            shell.nav.value = "users"
            page = shell.current
            assert isinstance(page, UsersPage)
            await page.load()
            page.users.filters["q"].value = "member-a"  # the change reloads (the newest answer wins)
            await until(lambda: [u["email"] for u in page.users.rows] == [target.email])
            page.status_form.fields["user_id"].value = target.user_id
            await page.status_form.send()
            assert _me(w, target.key) == 401 and page.users.rows[0]["status"] == "disabled"
            page.status_form.fields["verb"].value = "enable"
            await page.status_form.send()
            assert _me(w, target.key) == 200
            page.role_form.fields["org_id"].value = w.a.id
            page.role_form.fields["user_id"].value = target.user_id
            page.role_form.fields["role"].value = "admin"
            assert (await page.role_form.send()) is not None
            page.role_form.fields["user_id"].value = w.a.people["owner"].user_id
            page.role_form.fields["role"].value = "member"
            assert await page.role_form.send() is None and page.role_form.last_error[0] == "last_owner"
            await page.show_org(w.a.id)
            assert set(page.members.value["email"]) == {p.email for p in w.a.people.values()}
            assert list(page.projects.value["name"]) == ["main"]
            assert {o["id"] for o in page.orgs.rows} >= {w.a.id, w.b.id}

            # the bug: after switching to Chinese the matrix re-rendered its header with no rows (a
            # Tabulator first shown empty whose value later brought the columns). Its table is now
            # made with its rows once they are known: before that the page shows no table at all
            unloaded = UsersPage(session.client, text=Text("zh"), identity=session.identity)
            assert unloaded.matrix_table is None and unloaded.matrix_box.objects == []
            shell.lang_switch.value = "zh"
            zh = shell.current
            assert isinstance(zh, UsersPage) and zh is not page
            await zh.load()
            assert zh.matrix_table is not None and zh.matrix_box.objects == [zh.matrix_table]
            frame = zh.matrix_table.value
            assert list(frame.columns)[0] == "操作" and len(frame) == len(page.matrix_table.value) > 10

        async with signed_in(w.gw.url, w.b.people["admin"].email) as session:
            page = UsersPage(session.client, text=Text("en"), identity=session.identity)
            await page.load()
            assert {u["email"] for u in page.users.rows} == {p.email for p in w.b.people.values()}
            assert [o["id"] for o in page.orgs.rows] == [w.b.id] and page.org_id.value == w.b.id
            assert set(page.members.value["email"]) == {p.email for p in w.b.people.values()}
            page.status_form.fields["user_id"].value = target.user_id  # org A's member: not found
            assert await page.status_form.send() is None and page.status_form.last_error[0].endswith("not_found")

    run(scenario)
