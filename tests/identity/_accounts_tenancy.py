"""Tenancy cases of the accounts area (merged into ``test_tenancy``): org B's admin, signed in,
neither sees nor changes org A's users, members, org, webhooks, policies or budgets; the
platform-only routes (keys across orgs, policy and budget changes) refuse org admins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from deepspace_lab.billing import set_budget
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.policy.service import set_policy
from deepspace_lab.webhooks import create_webhook

from ..helpers import TEST_SECRET
from .conftest import World

T = TypeVar("T")
ADM = "/deepspace/admin/api"


def _b_admin(world: World) -> dict[str, str]:
    return {"token": str(world.login(world.b.people["admin"].email)["access_token"])}


def _as_a_owner(world: World, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work(session)`` on the world's database (org A's things an admin would have made)."""
    async def run() -> T:
        engine = make_async_engine(world.gw.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def admin_users_only_own_org(world: World) -> None:
    b = _b_admin(world)
    emails = {u["email"] for u in world.call("GET", ADM + "/users", **b).json()["data"]}
    assert emails == {p.email for p in world.b.people.values()}
    assert world.call("GET", ADM + "/users", **b, params={"org_id": world.a.id}).status_code == 404
    assert world.call("GET", f"{ADM}/users/{world.a.people['member'].user_id}", **b).status_code == 404


def admin_user_status_foreign(world: World) -> None:
    b, victim = _b_admin(world), world.a.people["member"]
    for verb in ("disable", "enable"):
        assert world.call("POST", f"{ADM}/users/{victim.user_id}/{verb}", **b).status_code == 404
    assert world.call("GET", "/me", key=victim.key).status_code == 200


def admin_member_role_foreign(world: World) -> None:
    target = world.a.people["member"].user_id
    response = world.call("PATCH", f"{ADM}/orgs/{world.a.id}/members/{target}", **_b_admin(world),
                          json={"role": "admin"})
    assert response.status_code == 404
    roles = {m["user_id"]: m["role"] for m in world.call("GET", "/members", key=world.a.people["owner"].key)
             .json()["data"]}
    assert roles[target] == "member"


def admin_orgs_only_own(world: World) -> None:
    b = _b_admin(world)
    assert [o["id"] for o in world.call("GET", ADM + "/orgs", **b).json()["data"]] == [world.b.id]
    assert world.call("GET", f"{ADM}/orgs/{world.a.id}", **b).status_code == 404


def admin_webhooks_foreign(world: World) -> None:
    hook, _ = _as_a_owner(world, lambda s: create_webhook(
        s, secret_key=TEST_SECRET, org_id=world.a.id, url="https://a.example.org", events=["usage.anomaly"],
        actor="test"))
    b = _b_admin(world)
    assert world.call("GET", ADM + "/webhooks", **b).json()["data"] == []
    assert world.call("GET", ADM + "/webhooks", **b, params={"org_id": world.a.id}).status_code == 404
    assert world.call("POST", ADM + "/webhooks", **b, json={"url": "https://b.example.org", "org_id": world.a.id,
                                                            "events": ["usage.anomaly"]}).status_code == 404
    assert world.call("GET", f"{ADM}/webhooks/{hook.id}", **b).status_code == 404
    assert world.call("PATCH", f"{ADM}/webhooks/{hook.id}", **b, json={"enabled": False}).status_code == 404
    assert world.call("POST", f"{ADM}/webhooks/{hook.id}/rotate-secret", **b).status_code == 404
    assert world.call("DELETE", f"{ADM}/webhooks/{hook.id}", **b).status_code == 404
    mine = world.call("GET", f"{ADM}/webhooks/{hook.id}", token=world.login(world.a.people["admin"].email)[
        "access_token"]).json()
    assert mine["enabled"] is True


def admin_risk_reads_only_own(world: World) -> None:
    async def limit_a(session: AsyncSession) -> None:
        await set_policy(session, kind="rate_limit", scope="org", scope_id=world.a.id, spec={"rpm": 7}, actor="test")
        await set_budget(session, org_id=world.a.id, scope="org", scope_id=world.a.id, period="day", limit_micros=5)

    _as_a_owner(world, limit_a)
    b = _b_admin(world)
    for path in ("/policies", "/budgets"):
        assert world.call("GET", ADM + path, **b).json()["data"] == []
        assert world.call("GET", ADM + path, **b, params={"org_id": world.a.id}).status_code == 404


def admin_platform_routes_refuse_org_admins(world: World) -> None:
    """Keys across orgs and risk changes are the platform admins': an org's admin gets 403."""
    b, victim = _b_admin(world), world.a.people["member"]
    assert world.call("GET", ADM + "/keys", **b).status_code == 403
    assert world.call("DELETE", f"{ADM}/keys/{victim.key_id}", **b).status_code == 403
    assert world.call("POST", ADM + "/policies", **b, json={"kind": "ip_rule", "scope": "org", "scope_id": world.a.id,
                                                            "cidr": "127.0.0.1", "spec": {"action": "deny"}}
                      ).status_code == 403
    assert world.call("DELETE", f"{ADM}/policies/1", **b).status_code == 403
    assert world.call("PUT", ADM + "/budgets", **b, json={"org_id": world.a.id, "scope": "org", "period": "day",
                                                          "limit_micros": 0}).status_code == 403
    assert world.call("DELETE", f"{ADM}/budgets/1", **b).status_code == 403
    assert world.call("GET", "/me", key=victim.key).status_code == 200


def admin_webhook_deliveries_foreign(world: World) -> None:
    """Org B's admin can neither read the delivery log of org A's hook nor send to it; org A's can."""
    hook, _ = _as_a_owner(world, lambda s: create_webhook(
        s, secret_key=TEST_SECRET, org_id=world.a.id, url="http://127.0.0.1:9/a", events=["usage.anomaly"],
        actor="test"))
    b = _b_admin(world)
    assert world.call("GET", f"{ADM}/webhooks/{hook.id}/deliveries", **b).status_code == 404
    assert world.call("POST", f"{ADM}/webhooks/{hook.id}/test", **b).status_code == 404
    assert world.call("POST", f"{ADM}/webhooks/{hook.id}/deliveries/dlv_nothere/redeliver", **b).status_code == 404
    a = {"token": str(world.login(world.a.people["admin"].email)["access_token"])}
    assert world.call("GET", f"{ADM}/webhooks/{hook.id}/deliveries", **a).json() == {"data": [], "next_cursor": None}
    missing = world.call("POST", f"{ADM}/webhooks/{hook.id}/deliveries/dlv_nothere/redeliver", **a)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "delivery_not_found")


def admin_rate_usage_foreign(world: World) -> None:
    """Org B's admin reads the limits in use of org B only: org A, its project or its key are 404."""
    b = _b_admin(world)
    for params in ({"org_id": world.a.id}, {"org_id": world.b.id, "project_id": world.a.project_id},
                   {"org_id": world.b.id, "api_key_id": world.a.people["member"].key_id}):
        assert world.call("GET", ADM + "/limits", **b, params=params).status_code == 404
    mine = world.call("GET", ADM + "/limits", **b, params={"org_id": world.b.id})
    assert mine.status_code == 200 and mine.json()["org_id"] == world.b.id


ACCOUNTS_CASES: dict[tuple[str, str], Callable[[World], None]] = {
    (f"{ADM}/users", "get"): admin_users_only_own_org,
    (f"{ADM}/users/{{user_id}}", "get"): admin_users_only_own_org,
    (f"{ADM}/users/{{user_id}}/disable", "post"): admin_user_status_foreign,
    (f"{ADM}/users/{{user_id}}/enable", "post"): admin_user_status_foreign,
    (f"{ADM}/orgs/{{org_id}}/members/{{user_id}}", "patch"): admin_member_role_foreign,
    (f"{ADM}/orgs", "get"): admin_orgs_only_own,
    (f"{ADM}/orgs/{{org_id}}", "get"): admin_orgs_only_own,
    (f"{ADM}/webhooks", "get"): admin_webhooks_foreign,
    (f"{ADM}/webhooks", "post"): admin_webhooks_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}", "get"): admin_webhooks_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}", "patch"): admin_webhooks_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}", "delete"): admin_webhooks_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}/rotate-secret", "post"): admin_webhooks_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}/deliveries", "get"): admin_webhook_deliveries_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}/test", "post"): admin_webhook_deliveries_foreign,
    (f"{ADM}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver", "post"):
        admin_webhook_deliveries_foreign,
    (f"{ADM}/limits", "get"): admin_rate_usage_foreign,
    (f"{ADM}/policies", "get"): admin_risk_reads_only_own,
    (f"{ADM}/budgets", "get"): admin_risk_reads_only_own,
    (f"{ADM}/keys", "get"): admin_platform_routes_refuse_org_admins,
    (f"{ADM}/keys/{{key_id}}", "delete"): admin_platform_routes_refuse_org_admins,
    (f"{ADM}/policies", "post"): admin_platform_routes_refuse_org_admins,
    (f"{ADM}/policies/{{policy_id}}", "delete"): admin_platform_routes_refuse_org_admins,
    (f"{ADM}/budgets", "put"): admin_platform_routes_refuse_org_admins,
    (f"{ADM}/budgets/{{budget_id}}", "delete"): admin_platform_routes_refuse_org_admins,
}
