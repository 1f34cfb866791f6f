"""The client's money calls (what the dashboards will use) against a live gateway: sync for an
operator's script, async for the Billing widget's redeem."""

from __future__ import annotations

import asyncio

import pytest

from deepspace_lab.client import AsyncDeepSpaceClient, ConflictError, DeepSpaceClient, PermissionDeniedError

from .conftest import AdminWorld


def test_the_client_drives_the_money_area(admin_world: AdminWorld) -> None:
    w = admin_world
    with DeepSpaceClient(base_url=w.gw.url, api_key=w.platform.key) as admin:
        model = admin.admin_add_model("client-made", upstream_name="deepspace-simulated-chat")
        assert admin.admin_update_model(model["id"], enabled=False)["enabled"] is False
        assert admin.admin_model(model["id"])["enabled"] is False
        admin.admin_set_price(model["id"], input_micros_per_mtok=10, output_micros_per_mtok=20)
        assert [p["in_force"] for p in admin.admin_prices(model["id"])["data"]] == [True]
        assert any(m["name"] == "client-made" for m in admin.admin_models()["data"])

        first = admin.admin_credit(w.a.id, amount_micros=42, reason="support ticket", idempotency_key="t-99")
        again = admin.admin_credit(w.a.id, amount_micros=42, reason="support ticket", idempotency_key="t-99")
        assert (first["replayed"], again["replayed"]) == (False, True)
        admin.admin_debit(w.a.id, amount_micros=2, reason="fix", idempotency_key="t-100")
        admin.admin_set_overdraft(w.a.id, limit_micros=5, reason="trial")
        assert admin.admin_wallet(w.a.id)["overdraft_limit_micros"] == 5
        assert w.a.id in {x["org_id"] for x in admin.admin_wallets(limit=200)["data"]}
        assert [e["ref"] for e in admin.admin_transactions(org_id=w.a.id, limit=2)["data"]] == ["t-100", "t-99"]

        made = admin.admin_create_codes(count=2, amount_micros=7, note="client")
        batch_id = made["batch"]["id"]
        assert admin.admin_code_batch(batch_id)["count"] == 2
        assert admin.admin_code_batches(limit=1)["data"][0]["id"] == batch_id
        codes = admin.admin_codes(batch_id)["data"]
        assert admin.admin_revoke_code(codes[0]["id"])["state"] == "revoked"
        assert admin.admin_revoke_batch(batch_id)["states"]["revoked"] == 2
        fresh = admin.admin_create_codes(count=1, amount_micros=7)["codes"][0]

    async def member_redeems() -> None:
        async with AsyncDeepSpaceClient(base_url=w.gw.url, api_key=w.a.people["member"].key) as member:
            assert (await member.redeem_code(fresh))["amount_micros"] == 7
            with pytest.raises(ConflictError) as refused:
                await member.redeem_code(fresh)
            assert refused.value.code == "code_redeemed"
            with pytest.raises(PermissionDeniedError):
                await member.admin_wallets()

    asyncio.run(member_redeems())
