"""Billing: wallets (credit or debit with a reason), ledger entries, usage records, credit codes
and statements, on the Admin API (``/deepspace/admin/api/wallets``, ``…/transactions``,
``…/usage``, ``…/credit-code-batches``). Tables page on the server with filters; exports and
statements are Worker jobs shown with their progress. An org admin sees their own org's
wallet, entries, usage and statements; moving money and credit codes are for platform admins.

A wallet operation carries an ``Idempotency-Key`` made when its form is filled in: clicking
twice (or a retry after a lost answer) sends the same key and the Gateway replays the first
entry, so money moves once. Any change to the form makes it a new operation with a new key."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import panel as pn

from ..forms import ApiForm
from ..i18n import credits
from ..runner import JobRunner
from ..table import PagedTable
from ..values import parse_credits
from .base import Page
from .codes import CodesPanel
from .kit import export_runner, money, org_filters, platform_admin

WALLET_COLUMNS = ["org_id", "org_name", "balance_micros", "frozen_micros", "available_micros",
                  "overdraft_limit_micros"]
ENTRY_COLUMNS = ["created_at", "org_id", "type", "amount_micros", "balance_after_micros", "reason", "actor",
                 "trace_id", "ref"]
USAGE_COLUMNS = ["created_at", "org_id", "model", "status", "measured", "prompt_tokens", "completion_tokens",
                 "cost_micros", "request_id", "trace_id"]
MONEY = ("balance_micros", "frozen_micros", "available_micros", "overdraft_limit_micros", "amount_micros",
         "balance_after_micros", "cost_micros")
TABS = ("wallets", "transactions", "usage", "codes", "statements")


def last_month(now: datetime | None = None) -> str:
    first = (now or datetime.now(UTC)).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


class BillingPage(Page):
    key = "billing"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t = self.text
        self.platform = platform_admin(self)

        self.wallets = PagedTable(lambda p: self.client.admin_wallets(**p), text=t, columns=WALLET_COLUMNS,
                                  filters=org_filters(self), **money(MONEY, t))
        self.transactions = PagedTable(
            lambda p: self.client.admin_transactions(**p), text=t, columns=ENTRY_COLUMNS, **money(MONEY, t),
            filters={**org_filters(self),
                     "type": pn.widgets.Select(label=t("filter_type"), width=140, options=[
                         "", "credit", "debit", "hold", "capture", "release", "refund"]),
                     "trace_id": pn.widgets.TextInput(label=t("filter_trace"), width=260)})
        self.usage = PagedTable(
            lambda p: self.client.admin_usage(**p), text=t, columns=USAGE_COLUMNS, **money(MONEY, t),
            filters={**org_filters(self), "model": pn.widgets.TextInput(label=t("filter_model"), width=200),
                     "status": pn.widgets.Select(label=t("filter_status"), width=120,
                                                 options=["", "pending", "captured", "released", "expired"]),
                     "since": pn.widgets.TextInput(label=t("filter_since"), width=180, placeholder="2026-12-01"),
                     "until": pn.widgets.TextInput(label=t("filter_until"), width=180)})
        self.exports = {dataset: export_runner(self, dataset, table)
                        for dataset, table in (("transactions", self.transactions), ("usage", self.usage))}
        self.verb = pn.widgets.RadioButtonGroup(options={t("credit"): "credit", t("debit"): "debit"}, value="credit",
                                                button_type="light")
        self.adjust = ApiForm({"org_id": pn.widgets.TextInput(label=t("filter_org"), css_classes=["ds-adjust-org"]),
                               "amount_micros": pn.widgets.TextInput(label=t("amount_credits"), placeholder="10"),
                               "reason": pn.widgets.TextInput(label=t("reason"), css_classes=["ds-adjust-reason"])},
                              self.move_money, text=t, required=("org_id", "amount_micros", "reason"),
                              submit_label=t("apply"))
        self.idempotency_key = self._new_key()
        for widget in (self.verb, *self.adjust.fields.values()):
            widget.param.watch(self._on_form_change, "value")
        self.last_operation: dict[str, Any] | None = None
        self.outcome = pn.pane.Markdown("", css_classes=["ds-money-outcome"])
        self.codes = CodesPanel(self.client, text=t) if self.platform else None
        self.statements = JobRunner(
            {"month": pn.widgets.TextInput(label=t("month"), value=last_month()), **org_filters(self)},
            start=lambda v: self.client.admin_statement(v["month"].strip(),
                                                        org_id=(v.get("org_id") or "").strip() or None),
            fetch_job=self.client.job, text=t, label=t("make_statement"))
        self.tabs = pn.Tabs(*self._tabs(), sizing_mode="stretch_width")

    @staticmethod
    def _new_key() -> str:
        return "console-" + secrets.token_hex(12)

    def _on_form_change(self, _event: Any) -> None:
        self.idempotency_key = self._new_key()  # another operation: a click now moves money again

    async def move_money(self, values: dict[str, Any]) -> dict[str, Any]:
        """Credit or debit one org's wallet; the same key (same form, clicked again) replays."""
        amount = parse_credits(values["amount_micros"], param="amount_micros")
        call = self.client.admin_credit if self.verb.value == "credit" else self.client.admin_debit
        answer = dict(await call(values["org_id"].strip(), amount_micros=amount, reason=values["reason"].strip(),
                                 idempotency_key=self.idempotency_key))
        self.last_operation = answer
        t, entry, wallet = self.text, answer["entry"], answer["wallet"]
        self.outcome.object = t("money_replayed" if answer["replayed"] else "money_moved", type=entry["type"],
                                amount=credits(entry["amount_micros"]), balance=credits(wallet["balance_micros"]))
        await self.wallets.load()
        await self.transactions.load()
        return answer

    def _tabs(self) -> list[tuple[str, Any]]:
        t = self.text
        wallets: list[Any] = [self.wallets]
        if self.platform:
            wallets += [pn.pane.Markdown(f"#### {t('adjust_wallet')}"), pn.pane.Markdown(t("adjust_intro")),
                        self.verb, self.adjust, self.outcome]
        tabs = [("wallets", pn.Column(*wallets, sizing_mode="stretch_width")),
                ("transactions", pn.Column(self.transactions, self.exports["transactions"])),
                ("usage", pn.Column(self.usage, self.exports["usage"])),
                ("codes", self.codes),
                ("statements", pn.Column(pn.pane.Markdown(t("statements_intro")), self.statements))]
        labels = {"wallets": t("wallets"), "transactions": t("transactions"), "usage": t("usage_records"),
                  "codes": t("credit_codes"), "statements": t("statements")}
        return [(labels[key], view) for key, view in tabs if view is not None]

    @property
    def tab_keys(self) -> list[str]:
        return [key for key in TABS if key != "codes" or self.codes is not None]

    def focus(self, tab: str) -> None:
        if tab in self.tab_keys:
            self.tabs.active = self.tab_keys.index(tab)

    async def load(self) -> None:
        await self.wallets.load()
        await self.transactions.load()
        await self.usage.load()
        if self.codes is not None:
            await self.codes.load()

    def body(self) -> pn.viewable.Viewable:
        return self.tabs
