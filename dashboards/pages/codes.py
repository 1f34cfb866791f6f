"""Credit codes on the Billing page (platform admins): create a batch — its codes are shown
once, in this answer only, as the Gateway keeps only their HMAC —, list batches and a batch's
codes (paged on the server), revoke a batch's unredeemed codes or one code."""

from __future__ import annotations

from typing import Any

import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import AsyncDeepSpaceClient

from ..forms import ApiForm
from ..i18n import Text, credits
from ..table import PagedTable
from ..values import parse_count, parse_credits

BATCH_COLUMNS = ["id", "amount_micros", "count", "states", "org_id", "note", "expires_at", "revoked_at",
                 "created_by", "created_at"]
CODE_COLUMNS = ["id", "prefix", "state", "redeemed_org_id", "redeemed_by", "redeemed_at", "revoked_at"]
NO_PAGE: dict[str, Any] = {"data": [], "next_cursor": None}


def _states(value: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((value or {}).items()))


class CodesPanel(Viewer):
    def __init__(self, client: AsyncDeepSpaceClient, *, text: Text) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.client, self.text = client, text
        t = text
        self.create = ApiForm({"count": pn.widgets.TextInput(label=t("code_count"), value="1"),
                               "amount_micros": pn.widgets.TextInput(label=t("amount_credits")),
                               "expires_at": pn.widgets.TextInput(label=t("expires_at"), placeholder="2027-01-31"),
                               "org_id": pn.widgets.TextInput(label=t("code_org")),
                               "note": pn.widgets.TextInput(label=t("note"))},
                              self.create_batch, text=t, required=("count", "amount_micros"),
                              submit_label=t("create_codes"))
        self.new_codes = pn.widgets.TextAreaInput(label=t("codes_once"), disabled=True, visible=False, height=160,
                                                  sizing_mode="stretch_width", css_classes=["ds-new-codes"])
        self.batches = PagedTable(lambda p: self.client.admin_code_batches(**p), text=t, columns=BATCH_COLUMNS,
                                  formatters={"amount_micros": credits, "states": _states},
                                  titles={"amount_micros": t("in_credits", name="amount")}, page_size=10)
        self.batch = pn.widgets.TextInput(label=t("batch_id"), width=260)
        self.codes = PagedTable(self._codes_page, text=t, columns=CODE_COLUMNS, page_size=25,
                                filters={"batch_id": self.batch,
                                         "state": pn.widgets.Select(label=t("filter_state"), width=120, options=[
                                             "", "active", "redeemed", "revoked", "expired"])})
        self.revoke_batch = ApiForm({"batch_id": pn.widgets.TextInput(label=t("batch_id"))},
                                    lambda v: self._revoke(self.client.admin_revoke_batch, v["batch_id"]), text=t,
                                    required=("batch_id",), submit_label=t("revoke_batch"))
        self.revoke_code = ApiForm({"code_id": pn.widgets.TextInput(label=t("code_id"))},
                                   lambda v: self._revoke(self.client.admin_revoke_code, v["code_id"]), text=t,
                                   required=("code_id",), submit_label=t("revoke_code"))

    async def _codes_page(self, params: dict[str, Any]) -> Any:
        batch = params.pop("batch_id", None)
        return await self.client.admin_codes(batch.strip(), **params) if batch else NO_PAGE

    async def create_batch(self, values: dict[str, Any]) -> dict[str, Any]:
        fields = {name: (values[name] or "").strip() or None for name in ("expires_at", "org_id", "note")}
        answer = dict(await self.client.admin_create_codes(
            count=parse_count(values["count"], param="count"),
            amount_micros=parse_credits(values["amount_micros"], param="amount_micros"), **fields))
        self.new_codes.value, self.new_codes.visible = "\n".join(answer["codes"]), True
        self.batch.value = answer["batch"]["id"]  # its codes (prefixes and states) below
        await self.batches.load()
        return answer

    async def _revoke(self, call: Any, ident: str) -> Any:
        answer = await call(ident.strip())
        await self.batches.load()
        await self.codes.load()
        return answer

    async def load(self) -> None:
        await self.batches.load()
        await self.codes.load()

    def __panel__(self) -> pn.viewable.Viewable:
        t = self.text
        return pn.Column(pn.pane.Markdown(f"#### {t('create_codes')}"), self.create, self.new_codes,
                         pn.pane.Markdown(f"#### {t('code_batches')}"), self.batches,
                         pn.pane.Markdown(f"#### {t('codes_of_batch')}"), self.codes,
                         pn.Row(self.revoke_batch, self.revoke_code), sizing_mode="stretch_width")
