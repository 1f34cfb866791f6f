"""Models: the catalog and each model's price history, from the Admin API
(``GET /deepspace/admin/api/models`` and ``…/models/{id}/prices``; platform admins only — an org
admin is told so). Adding models and scheduling a price come next (ApiForms on the same routes)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from deepspace_lab.client import DeepSpaceClientError

from ..i18n import credits
from ..table import error_text
from .base import Page, placeholder

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
        self.catalog = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, pagination=None,
                                            sizing_mode="stretch_width", css_classes=["ds-catalog"])
        self.choice = pn.widgets.Select(label=t("price_history_of"), options={}, width=320)
        self.history = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, pagination=None,
                                            sizing_mode="stretch_width", css_classes=["ds-prices"])
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.choice.param.watch(self._on_choice, "value")

    @property
    def allowed(self) -> bool:
        return self.identity is None or self.identity.is_platform_admin

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
        self.choice.options = {m["name"]: m["id"] for m in self.models}  # picks the first: its history loads

    async def show_prices(self, model_id: str) -> None:
        try:
            answer = await self.client.admin_prices(model_id)
        except DeepSpaceClientError as exc:
            self._fail(exc)
            return
        self.prices = list(answer["data"])
        frame = pd.DataFrame(self.prices, columns=PRICE_COLUMNS)
        for name in ("input_micros_per_mtok", "output_micros_per_mtok"):
            frame[name] = frame[name].map(credits)
        self.history.value = frame

    async def _on_choice(self, event: Any) -> None:
        if event.new:
            await self.show_prices(event.new)

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        if not self.allowed:
            return pn.pane.Alert(t("platform_admins_page"), alert_type="info")
        return pn.Column(self.alert, pn.pane.Markdown(f"### {t('catalog')}"), self.catalog,
                         pn.pane.Markdown(f"### {t('price_history')}"), pn.pane.Markdown(t("price_units")),
                         self.choice, self.history, placeholder(t, "what_models"), sizing_mode="stretch_width")
