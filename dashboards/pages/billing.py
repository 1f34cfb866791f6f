"""Billing: wallets and transactions (ledger entries), each a table paged on the server through
the Admin API (``GET /deepspace/admin/api/wallets`` and ``…/transactions``; an org admin sees
their own org's only). Crediting or adjusting a wallet, credit codes and statements come next
(an ApiForm, tables and a JobProgress on the Admin API's money routes)."""

from __future__ import annotations

from typing import Any

import panel as pn

from ..i18n import credits
from ..table import PagedTable
from .base import Page, placeholder

WALLET_COLUMNS = ["org_id", "org_name", "balance_micros", "frozen_micros", "available_micros",
                  "overdraft_limit_micros"]
ENTRY_COLUMNS = ["created_at", "org_id", "type", "amount_micros", "balance_after_micros", "reason", "actor",
                 "trace_id", "ref"]
MONEY = ("balance_micros", "frozen_micros", "available_micros", "overdraft_limit_micros", "amount_micros",
         "balance_after_micros")


class BillingPage(Page):
    key = "billing"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t, money = self.text, {name: credits for name in MONEY}
        titles = {name: t("in_credits", name=name.removesuffix("_micros")) for name in MONEY}
        org_filter = {} if self.identity is not None and self.identity.scope else {
            "org_id": pn.widgets.TextInput(label=t("filter_org"), width=220)}
        self.wallets = PagedTable(lambda p: self.client.admin_wallets(**p), text=t, columns=WALLET_COLUMNS,
                                  formatters=money, titles=titles,
                                  filters=dict(org_filter))
        self.transactions = PagedTable(
            lambda p: self.client.admin_transactions(**p), text=t, columns=ENTRY_COLUMNS, formatters=money,
            titles=titles,
            filters={**{k: pn.widgets.TextInput(label=t("filter_org"), width=220) for k in org_filter},
                     "type": pn.widgets.Select(label=t("filter_type"), width=140, options=[
                         "", "credit", "debit", "hold", "capture", "release", "refund"]),
                     "trace_id": pn.widgets.TextInput(label=t("filter_trace"), width=260)})

    async def load(self) -> None:
        await self.wallets.load()
        await self.transactions.load()

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        return pn.Tabs((t("wallets"), self.wallets), (t("transactions"), self.transactions),
                       (t("more_billing"), placeholder(t, "what_billing")), sizing_mode="stretch_width")
