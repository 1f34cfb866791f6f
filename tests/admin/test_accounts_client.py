"""``deepspace_lab.client``'s admin_* methods of the accounts area against a live gateway
(what the dashboards of issue 10 will use), sync and async; typed errors with stable codes."""

from __future__ import annotations

import asyncio

import pytest

from deepspace_lab.client import AsyncDeepSpaceClient, DeepSpaceClient, NotFoundError, PermissionDeniedError

from .conftest import AdminWorld


@pytest.mark.parametrize("backend", ["sqlite"])  # the client's wire format; storage is covered by the route tests
def test_the_sync_client_drives_the_accounts_area(admin_world: AdminWorld) -> None:
    w = admin_world
    with DeepSpaceClient(base_url=w.gw.url, api_key=w.platform.key) as client:
        member = w.a.people["member"]
        assert [u["email"] for u in client.admin_users(q="member-a")["data"]] == [member.email]
        assert client.admin_users(platform_admin=True)["data"][0]["is_platform_admin"] is True
        assert client.admin_user(member.user_id)["memberships"][0]["org_id"] == w.a.id
        assert client.admin_disable_user(member.user_id)["status"] == "disabled"
        assert client.admin_enable_user(member.user_id)["status"] == "active"
        assert client.admin_set_member_role(w.a.id, member.user_id, "viewer")["role"] == "viewer"
        assert client.admin_org(w.a.id)["member_count"] == 4
        assert len(client.admin_orgs(limit=2)["data"]) == 2
        assert {k["org_id"] for k in client.admin_keys(org_id=w.b.id, revoked=False)["data"]} == {w.b.id}
        assert client.admin_revoke_key(w.b.people["viewer"].key_id)["revoked_at"]

        hook = client.admin_create_webhook(url="https://x.example.org", events=["usage.anomaly"], org_id=w.a.id)
        assert hook["secret"] and client.admin_webhook(hook["id"])["url"] == "https://x.example.org"
        assert client.admin_update_webhook(hook["id"], enabled=False)["enabled"] is False
        assert client.admin_rotate_webhook_secret(hook["id"])["secret"] != hook["secret"]
        assert [h["id"] for h in client.admin_webhooks(org_id=w.a.id)["data"]] == [hook["id"]]
        client.admin_delete_webhook(hook["id"])
        with pytest.raises(NotFoundError) as missing:
            client.admin_webhook(hook["id"])
        assert missing.value.code == "webhook_not_found"

        rule = client.admin_set_policy(kind="rate_limit", scope="org", scope_id=w.b.id, spec={"rpm": 5})["policy"]
        assert [p["id"] for p in client.admin_policies(org_id=w.b.id)["data"]] == [rule["id"]]
        assert client.admin_delete_policy(rule["id"])["deleted"]["id"] == rule["id"]
        budget = client.admin_set_budget(org_id=w.b.id, scope="project", scope_id=w.b.project_id, period="day",
                                         limit_micros=7)["budget"]
        assert [b["limit_micros"] for b in client.admin_budgets(org_id=w.b.id)["data"]] == [7]
        assert client.admin_delete_budget(budget["id"])["deleted"]["id"] == budget["id"]

    with DeepSpaceClient(base_url=w.gw.url, api_key=w.platform.read_key) as reader:
        with pytest.raises(PermissionDeniedError):
            reader.admin_disable_user(w.a.people["member"].user_id)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_async_client_for_an_org_admin(admin_world: AdminWorld) -> None:
    w = admin_world
    token = w.token(w.a.people["admin"])

    async def run() -> None:
        async with AsyncDeepSpaceClient(base_url=w.gw.url, access_token=token) as client:
            users = await client.admin_users()
            assert {u["email"] for u in users["data"]} == {p.email for p in w.a.people.values()}
            assert [o["id"] for o in (await client.admin_orgs())["data"]] == [w.a.id]
            hook = await client.admin_create_webhook(url="http://a.example.org", events=["budget.threshold"])
            assert hook["org_id"] == w.a.id
            assert (await client.admin_update_webhook(hook["id"], url="https://a.example.org"))["url"] == \
                "https://a.example.org"
            assert (await client.admin_rotate_webhook_secret(hook["id"]))["secret"] != hook["secret"]
            await client.admin_delete_webhook(hook["id"])
            assert (await client.admin_webhooks())["data"] == []
            assert (await client.admin_user(w.a.people["viewer"].user_id))["email"] == w.a.people["viewer"].email
            assert (await client.admin_disable_user(w.a.people["viewer"].user_id))["status"] == "disabled"
            assert (await client.admin_enable_user(w.a.people["viewer"].user_id))["status"] == "active"
            member = w.a.people["member"].user_id
            assert (await client.admin_set_member_role(w.a.id, member, "viewer"))["role"] == "viewer"
            assert (await client.admin_org(w.a.id))["id"] == w.a.id
            assert (await client.admin_policies())["data"] == []
            assert (await client.admin_budgets())["data"] == []
            with pytest.raises(NotFoundError):
                await client.admin_org(w.b.id)
            with pytest.raises(PermissionDeniedError):
                await client.admin_keys()
            with pytest.raises(PermissionDeniedError):
                await client.admin_revoke_key(w.a.people["member"].key_id)
            with pytest.raises(PermissionDeniedError):
                await client.admin_set_policy(kind="rate_limit", scope="org", scope_id=w.a.id, spec={"rpm": 1})
            with pytest.raises(PermissionDeniedError):
                await client.admin_delete_policy(1)
            with pytest.raises(PermissionDeniedError):
                await client.admin_set_budget(org_id=w.a.id, scope="org", period="day", limit_micros=1)
            with pytest.raises(PermissionDeniedError):
                await client.admin_delete_budget(1)

    asyncio.run(run())
