"""The app shell: a header naming who is signed in and their scope, the simulated-upstream
label, the language switch and logout; the navigation; the open page."""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import AsyncDeepSpaceClient, DeepSpaceClientError

from .i18n import LANGS, Text
from .pages import PAGES, Page
from .session import Identity

LANG_NAMES = {"en": "English", "zh": "中文"}


async def gateway_status(client: AsyncDeepSpaceClient) -> dict[str, Any]:
    """``GET /deepspace/api/health/ready``; a 503 still tells whether the upstream is simulated
    (through ``/health``, which always answers)."""
    try:
        return await client.ready()
    except DeepSpaceClientError:
        health = await client.health()
        return {"status": "not_ready", "checks": {}, "upstream_simulated": health.get("upstream") == "simulated"}


class AdminShell(Viewer):
    def __init__(self, client: AsyncDeepSpaceClient, identity: Identity, *, lang: str = "en",
                 logout_url: str = "/logout") -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.client, self.identity, self.logout_url = client, identity, logout_url
        self.text = Text(lang)
        self.status: dict[str, Any] = {}
        self.lang_switch = pn.widgets.RadioButtonGroup(options={LANG_NAMES[k]: k for k in LANGS}, value=self.text.lang,
                                                       color="light", css_classes=["ds-lang"])
        self.nav = pn.widgets.RadioButtonGroup(orientation="vertical", color="light", width=170,
                                               css_classes=["ds-nav"])
        self.header = pn.Row(sizing_mode="stretch_width", css_classes=["ds-header"])
        self.banner = pn.Column(sizing_mode="stretch_width")
        self.main = pn.Column(sizing_mode="stretch_width")
        self.pages: dict[str, Page] = {}
        self.current: Page | None = None
        self.lang_switch.param.watch(self._on_lang, "value")
        self.nav.param.watch(self._on_nav, "value")
        self.build()

    @property
    def scope_text(self) -> str:
        if self.identity.is_platform_admin:
            return self.text("scope_platform")
        return self.text("scope_org", org=self.identity.org_name or self.identity.org_id)

    def build(self) -> None:
        """(Re)build every label in the current language; pages are made anew."""
        t = self.text
        self.pages = {cls.key: cls(self.client, text=t, identity=self.identity) for cls in PAGES}
        for page in self.pages.values():
            page.navigate = self.go
        current = self.nav.value if self.nav.value in self.pages else PAGES[0].key
        self.nav.param.update(options={t(key): key for key in self.pages}, value=current)
        # names come from the Gateway: escaped, never read as markup
        who = pn.pane.HTML(f"<b>{escape(t('title'))}</b> · {escape(t('signed_in', who=self.identity.email))} · "
                           f"{escape(self.scope_text)}", css_classes=["ds-who"], sizing_mode="stretch_width")
        logout = pn.pane.HTML(f'<a href="{self.logout_url}" class="ds-logout">{t("logout")}</a>')
        self.header.objects = [who, self.lang_switch, logout]
        self._banner()
        self.open(current)

    def _banner(self) -> None:
        items = []
        if self.status.get("upstream_simulated"):
            items.append(pn.pane.Alert(self.text("simulated"), alert_type="warning", css_classes=["ds-simulated"]))
        if self.status and self.status.get("status") != "ready":
            bad = ", ".join(f"{k}: {v}" for k, v in (self.status.get("checks") or {}).items() if v != "ok")
            items.append(pn.pane.Alert(self.text("not_ready", checks=bad or "?"), alert_type="danger"))
        self.banner.objects = items

    def open(self, key: str) -> Page:
        page = self.current = self.pages[key]
        self.main.objects = [page]
        pn.state.execute(page.load)
        return page

    def go(self, key: str, tab: str | None = None) -> None:
        """Open page ``key`` at its part ``tab``: what a page's links (the Dashboard's) call."""
        self.nav.value = key
        if tab is not None and self.current is not None:
            self.current.focus(tab)

    async def load(self) -> None:
        """What the header needs from the Gateway (readiness, the simulated flag)."""
        self.status = await gateway_status(self.client)
        self._banner()

    def _on_lang(self, event: Any) -> None:
        self.text = Text(event.new)
        self.build()

    def _on_nav(self, event: Any) -> None:
        if event.new in self.pages and self.current is not self.pages[event.new]:
            self.open(event.new)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.header, self.banner, pn.Row(self.nav, self.main, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
