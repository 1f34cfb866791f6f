"""The Billing widget's "Redeem a code" control, through the client, against a live gateway."""

from __future__ import annotations

import asyncio

from deepspace_lab.billing import create_batch
from deepspace_lab.client import AsyncDeepSpaceClient
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.widgets import Workbench

from ..helpers import TEST_SECRET, Gateway, make_tenant
from .test_workbench import until


async def _codes(url: str, count: int) -> list[str]:
    engine = make_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            _, codes = await create_batch(session, secret_key=TEST_SECRET, count=count, amount_micros=2_500_000)
            await session.commit()
            return codes
    finally:
        await engine.dispose()


def test_redeem_a_code_from_the_billing_view(gateway: Gateway) -> None:
    member = make_tenant(gateway.settings, email="redeemer@example.org", scopes=("chat", "account"),
                         credit_micros=0)
    code = asyncio.run(_codes(gateway.settings.database_url, 1))[0]

    async def scenario() -> None:
        wb = Workbench(AsyncDeepSpaceClient(base_url=gateway.url, api_key=member.api_key))
        await wb.load()
        view, store = wb.billing_view, wb.billing_store
        view.code.value = code
        view.redeem.click()
        await until(lambda: bool(store.redeemed))
        await until(lambda: store.wallet.get("balance_micros") == 2_500_000 and bool(store.transactions))
        assert "2.5" in view.redeemed.value and view.code.value == ""
        assert [e["type"] for e in store.transactions] == ["credit"] and "credit" in view.transactions.value
        view.code.value = code  # spent: the error shows, the wallet stays
        view.redeem.click()
        await until(lambda: bool(store.error))
        assert store.error["code"] == "code_redeemed" and view.redeemed.value == ""
        assert "redeemed" in view.error.value
        assert store.wallet["balance_micros"] == 2_500_000

    asyncio.run(scenario())
