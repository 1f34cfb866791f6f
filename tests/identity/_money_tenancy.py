"""Tenancy cases of the money area (merged into ``test_tenancy``): an org's admin, signed in,
sees and changes only their own org's wallet and ledger entries; a redeemed code lands in the
redeemer's own org. The platform-only routes are exempt: no org admin reaches them at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from deepspace_lab.billing import create_batch
from deepspace_lab.db import make_async_engine, make_sessionmaker

from ..helpers import TEST_SECRET
from .conftest import World

ADMIN = "/deepspace/admin/api"


def _b_admin(world: World) -> str:
    return str(world.login(world.b.people["admin"].email)["access_token"])


def wallets_list_only_own(world: World) -> None:
    token = _b_admin(world)
    listed = world.call("GET", ADMIN + "/wallets", token=token).json()["data"]
    assert [w["org_id"] for w in listed] == [world.b.id]
    assert world.call("GET", ADMIN + "/wallets", token=token, params={"org_id": world.a.id}).status_code == 404


def wallet_foreign(world: World) -> None:
    assert world.call("GET", f"{ADMIN}/wallets/{world.a.id}", token=_b_admin(world)).status_code == 404


def transactions_only_own(world: World) -> None:
    token = _b_admin(world)
    entries = world.call("GET", ADMIN + "/transactions", token=token).json()["data"]
    assert entries and {e["org_id"] for e in entries} == {world.b.id}
    assert world.call("GET", ADMIN + "/transactions", token=token, params={"org_id": world.a.id}).status_code == 404


def redeem_lands_in_own_org(world: World) -> None:
    async def make_code() -> str:
        engine = make_async_engine(world.gw.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                _, codes = await create_batch(session, secret_key=TEST_SECRET, count=1, amount_micros=3)
                await session.commit()
                return codes[0]
        finally:
            await engine.dispose()

    def balance(key: str) -> int:
        return int(world.call("GET", "/wallet", key=key).json()["balance_micros"])

    a_before, b_before = balance(world.a.people["owner"].key), balance(world.b.people["owner"].key)
    assert world.call("POST", "/wallet/redeem", key=world.b.people["owner"].key,
                      json={"code": asyncio.run(make_code())}).status_code == 200
    assert (balance(world.a.people["owner"].key), balance(world.b.people["owner"].key)) == (a_before, b_before + 3)


MONEY_CASES: dict[tuple[str, str], Callable[[World], None]] = {
    (f"{ADMIN}/wallets", "get"): wallets_list_only_own,
    (f"{ADMIN}/wallets/{{org_id}}", "get"): wallet_foreign,
    (f"{ADMIN}/transactions", "get"): transactions_only_own,
    ("/deepspace/api/wallet/redeem", "post"): redeem_lands_in_own_org,
}
_PLATFORM_ONLY = "platform admins only, across every org; org admins get 403 (tests/admin/test_access.py)"
MONEY_EXEMPT = {(path, method): _PLATFORM_ONLY for path, method in (
    (f"{ADMIN}/models", "get"), (f"{ADMIN}/models", "post"), (f"{ADMIN}/models/{{model_id}}", "get"),
    (f"{ADMIN}/models/{{model_id}}", "patch"), (f"{ADMIN}/models/{{model_id}}/prices", "get"),
    (f"{ADMIN}/models/{{model_id}}/prices", "post"), (f"{ADMIN}/wallets/{{org_id}}/credit", "post"),
    (f"{ADMIN}/wallets/{{org_id}}/debit", "post"), (f"{ADMIN}/wallets/{{org_id}}/overdraft", "put"),
    (f"{ADMIN}/credit-code-batches", "get"), (f"{ADMIN}/credit-code-batches", "post"),
    (f"{ADMIN}/credit-code-batches/{{batch_id}}", "get"), (f"{ADMIN}/credit-code-batches/{{batch_id}}/codes", "get"),
    (f"{ADMIN}/credit-code-batches/{{batch_id}}/revoke", "post"), (f"{ADMIN}/credit-codes/{{code_id}}/revoke", "post"),
)}
