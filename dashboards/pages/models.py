"""Models: the catalog (add a model, enable or disable one) and each model's prices (schedule a
version with ``effective_at``, see the history with ``in_force`` and ``scheduled``), on the
Admin API (``/deepspace/admin/api/models[/{id}[/prices]]``; platform admins only — an org admin
is told so). Refusals show under their field with their code (``invalid_time``,
``price_version_exists``, ``model_exists``, …); amounts are typed in credits, sent exactly."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from deepspace_lab.client import DeepSpaceClientError, InvalidRequestError

from ..forms import ApiForm
from ..i18n import credits
from ..table import error_text
from ..values import parse_count, parse_credits
from .base import Page
from .kit import frame_table, platform_admin

MODEL_COLUMNS = ["name", "upstream_name", "enabled", "context_window", "owned_by", "description"]
PRICE_COLUMNS = ["effective_at", "input_micros_per_mtok", "output_micros_per_mtok", "free", "in_force", "scheduled",
                 "actor"]


class ModelsPage(Page):
    key = "models"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t = self.text
        self.models: list[dict[str, Any]] = []
        self.prices: list[dict[str, Any]] = []
        self._asked = 0  # the newest history asked for: an older answer arriving later is dropped
        self.catalog = frame_table("ds-catalog", MODEL_COLUMNS)
        self.choice = pn.widgets.Select(label=t("price_history_of"), options={}, width=320)
        self.toggle = pn.widgets.Button(label=t("disable"), disabled=True, css_classes=["ds-toggle-model"])
        self.history = frame_table("ds-prices", PRICE_COLUMNS)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.price_form = ApiForm(
            {"input_micros_per_mtok": pn.widgets.TextInput(label=t("price_input"), placeholder="1.5"),
             "output_micros_per_mtok": pn.widgets.TextInput(label=t("price_output"), placeholder="2"),
             "effective_at": pn.widgets.TextInput(label=t("effective_at"), placeholder="2026-12-31T00:00:00Z")},
            self.schedule_price, text=t, required=("input_micros_per_mtok", "output_micros_per_mtok"),
            submit_label=t("schedule_price"))
        self.add_form = ApiForm(
            {"name": pn.widgets.TextInput(label=t("model_name")),
             "upstream_name": pn.widgets.TextInput(label=t("upstream_name")),
             "context_window": pn.widgets.TextInput(label=t("context_window"), placeholder="8192")},
            self.add_model, text=t, required=("name",), submit_label=t("add_model"))
        self.choice.param.watch(self._on_choice, "value")
        self.toggle.on_click(self._on_toggle)

    @property
    def allowed(self) -> bool:
        return platform_admin(self)

    @property
    def chosen(self) -> dict[str, Any] | None:
        return next((m for m in self.models if m["id"] == self.choice.value), None)

    def _fail(self, exc: DeepSpaceClientError) -> None:
        self.alert.object, self.alert.visible = error_text(exc), True

    async def load(self) -> None:
        if not self.allowed:
            return
        try:
            self.models = list((await self.client.admin_models())["data"])
        except DeepSpaceClientError as exc:
            self._fail(exc)
            return
        self.catalog.value = pd.DataFrame(self.models, columns=MODEL_COLUMNS)
        keep = self.choice.value
        self.choice.options = {m["name"]: m["id"] for m in self.models}  # picks the first: its history loads
        if keep in self.choice.options.values():
            self.choice.value = keep
        self._refresh_toggle()

    def _refresh_toggle(self) -> None:
        model = self.chosen
        self.toggle.disabled = model is None
        self.toggle.label = self.text("enable" if model is not None and not model["enabled"] else "disable")

    async def show_prices(self, model_id: str) -> None:
        self._asked = asked = self._asked + 1
        try:
            answer = await self.client.admin_prices(model_id)
        except DeepSpaceClientError as exc:
            self._fail(exc)
            return
        if asked != self._asked:  # a newer read (another model, or after a save) is in flight
            return
        self.prices = list(answer["data"])
        frame = pd.DataFrame(self.prices, columns=PRICE_COLUMNS)
        for name in ("input_micros_per_mtok", "output_micros_per_mtok"):
            frame[name] = frame[name].map(credits)
        self.history.value = frame

    async def set_enabled(self, enabled: bool) -> None:
        model = self.chosen
        if model is None:
            return
        try:
            await self.client.admin_update_model(model["id"], enabled=enabled)
        except DeepSpaceClientError as exc:
            self._fail(exc)
            return
        await self.load()

    async def schedule_price(self, values: dict[str, Any]) -> dict[str, Any]:
        """A new price version of the chosen model (now, or at ``effective_at``); the history reloads."""
        model = self.chosen
        if model is None:  # the catalog has not loaded, or is empty: nothing to price
            raise InvalidRequestError("choose a model first", code="model_required", param=None)
        prices = {name: parse_credits(values[name], param=name)
                  for name in ("input_micros_per_mtok", "output_micros_per_mtok")}
        answer = dict(await self.client.admin_set_price(
            model["id"], input_micros_per_mtok=prices["input_micros_per_mtok"],
            output_micros_per_mtok=prices["output_micros_per_mtok"],
            effective_at=(values["effective_at"] or "").strip() or None))
        await self.show_prices(model["id"])
        return answer

    async def add_model(self, values: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"upstream_name": values["upstream_name"].strip() or None}
        if (values["context_window"] or "").strip():
            fields["context_window"] = parse_count(values["context_window"], param="context_window")
        answer = dict(await self.client.admin_add_model(values["name"].strip(),
                                                        **{k: v for k, v in fields.items() if v is not None}))
        await self.load()
        return answer

    async def _on_choice(self, event: Any) -> None:
        self._refresh_toggle()
        if event.new:
            await self.show_prices(event.new)

    async def _on_toggle(self, _event: Any = None) -> None:
        model = self.chosen
        if model is not None:
            await self.set_enabled(not model["enabled"])

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        if not self.allowed:
            return pn.pane.Alert(t("platform_admins_page"), alert_type="info")
        return pn.Column(self.alert, pn.pane.Markdown(f"### {t('catalog')}"), self.catalog,
                         pn.Card(self.add_form, title=t("add_model"), collapsed=True, sizing_mode="stretch_width"),
                         pn.pane.Markdown(f"### {t('price_history')}"), pn.pane.Markdown(t("price_units")),
                         pn.Row(self.choice, self.toggle), self.history,
                         pn.pane.Markdown(f"#### {t('schedule_price')}"), pn.pane.Markdown(t("schedule_intro")),
                         self.price_form, sizing_mode="stretch_width")
