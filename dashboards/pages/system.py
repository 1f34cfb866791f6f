"""System: API keys across orgs (list with filters, revoke — platform admins) and webhooks
(list, create — the signing secret is shown once —, send a test event and read the delivery
log, redeliver). Tests and redeliveries are queued for the Worker; the page follows the log
until the event's delivery ends (succeeded or failed)."""

from __future__ import annotations

import asyncio
from typing import Any

import panel as pn

from deepspace_lab.client import DeepSpaceClientError, InvalidRequestError

from ..table import PagedTable, error_text
from .base import Page
from .kit import action, listed, org_filters, platform_admin

KEY_COLUMNS = ["created_at", "id", "prefix", "name", "org_id", "project_id", "user_email", "scopes", "expires_at",
               "revoked_at"]
HOOK_COLUMNS = ["created_at", "id", "org_id", "url", "events", "enabled"]
DELIVERY_COLUMNS = ["created_at", "id", "event", "trigger", "attempt", "status", "response_code", "latency_ms",
                    "error", "event_id"]
EVENTS = ["budget.threshold", "wallet.low_balance", "usage.anomaly"]
#: how long the page follows a test delivery (the Worker retries with backoff)
FOLLOW_S, FOLLOW_EVERY_S = 60.0, 0.5


class SystemPage(Page):
    key = "system"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t, c = self.text, self.client
        self.keys = PagedTable(lambda p: c.admin_keys(**p), text=t, columns=KEY_COLUMNS,
                               formatters={"scopes": listed}, filters={
            **org_filters(self), "revoked": pn.widgets.Select(label=t("filter_revoked"), width=120,
                                                              options={"": "", t("live"): "false",
                                                                       t("revoked"): "true"})})
        self.revoke = action({"key_id": pn.widgets.TextInput(label=t("key_id"), width=300)},
                             lambda v: c.admin_revoke_key(v["key_id"].strip()), text=t, label=t("revoke"),
                             required=("key_id",), refresh=self.keys, css="ds-revoke")
        self.hooks = PagedTable(lambda p: c.admin_webhooks(**p), text=t, columns=HOOK_COLUMNS,
                                formatters={"events": listed}, filters=org_filters(self))
        fields: dict[str, pn.widgets.Widget] = {
            "url": pn.widgets.TextInput(label=t("webhook_url"), width=420, placeholder="https://…"),
            "events": pn.widgets.MultiChoice(label=t("webhook_events"), options=EVENTS, value=list(EVENTS),
                                             width=420)}
        if platform_admin(self):
            fields["org_id"] = pn.widgets.TextInput(label=t("webhook_org"), width=300)
        self.create = action(fields, self._create, text=t, label=t("create_webhook"), required=("url", "events"),
                             refresh=self.hooks, css="ds-create-webhook")
        self.secret = pn.pane.Alert("", alert_type="warning", visible=False, css_classes=["ds-secret"])
        self.hook_id = pn.widgets.TextInput(label=t("webhook_id"), width=300, css_classes=["ds-hook-id"])
        self.deliveries = PagedTable(self._deliveries, text=t, columns=DELIVERY_COLUMNS,
                                     filters={"webhook_id": self.hook_id})
        self.test_button = pn.widgets.Button(label=t("send_test"), css_classes=["ds-test-webhook"])
        self.redeliver = action({"delivery_id": pn.widgets.TextInput(label=t("delivery_id"), width=300)},
                                self._redeliver, text=t, label=t("redeliver"), required=("delivery_id",))
        self.progress = pn.indicators.Progress(value=-1, active=False, visible=False, width=300)
        self.follow_status = pn.pane.Str("", css_classes=["ds-delivery-status"])
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.test_button.on_click(self._on_test)

    async def load(self) -> None:
        if platform_admin(self):
            await self.keys.load()
        await self.hooks.load()

    async def _create(self, values: dict[str, Any]) -> Any:
        org = (values.get("org_id") or "").strip() or None
        made = await self.client.admin_create_webhook(url=values["url"].strip(), events=list(values["events"]),
                                                      org_id=org)
        self.secret.object = self.text("secret_once", secret=made["secret"], id=made["id"])
        self.secret.visible = True
        self.hook_id.value = made["id"]  # its (empty) delivery log, ready for a test
        return made

    async def _deliveries(self, params: dict[str, Any]) -> Any:
        hook = (params.pop("webhook_id", None) or "").strip()
        if not hook:
            return {"data": [], "next_cursor": None}
        return await self.client.admin_webhook_deliveries(hook, **params)

    async def _redeliver(self, values: dict[str, Any]) -> Any:
        hook = (self.hook_id.value or "").strip()
        if not hook:  # the request would name no webhook (.../webhooks//deliveries/...: unknown_url)
            raise InvalidRequestError("enter a webhook id first", code="webhook_required", param=None)
        queued = await self.client.admin_redeliver_webhook(hook, values["delivery_id"].strip())
        await self.follow(queued)
        return queued

    async def send_test(self) -> dict[str, Any] | None:
        """Queue a ping to the chosen hook and follow its delivery in the log."""
        self.alert.visible = False
        hook = (self.hook_id.value or "").strip()
        if not hook:
            self.alert.object, self.alert.visible = self.text("choose_webhook"), True
            return None
        try:
            queued = await self.client.admin_test_webhook(hook)
        except DeepSpaceClientError as exc:
            self.alert.object, self.alert.visible = error_text(exc), True
            return None
        return await self.follow(queued)

    async def follow(self, queued: dict[str, Any]) -> dict[str, Any] | None:
        """Reload the log until the queued job's newest attempt is final; returns that attempt."""
        self.progress.visible, self.progress.active = True, True
        self.follow_status.object = self.text("delivering", event=queued["event"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FOLLOW_S
        try:
            while loop.time() < deadline:
                await self.deliveries.load()
                mine = [d for d in self.deliveries.rows if d["job_id"] == queued["job_id"]]
                if mine:
                    newest = mine[0]
                    self.follow_status.object = self.text("delivery_state", status=newest["status"],
                                                          attempt=newest["attempt"],
                                                          code=newest["response_code"] or "—")
                    if newest["status"] in ("succeeded", "failed"):
                        return dict(newest)
                await asyncio.sleep(FOLLOW_EVERY_S)  # polling the Gateway for the Worker's progress
            return None
        finally:
            self.progress.visible, self.progress.active = False, False

    async def _on_test(self, _event: Any = None) -> None:
        await self.send_test()

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        keys: pn.viewable.Viewable = (pn.Column(self.keys, self.revoke, sizing_mode="stretch_width")
                                      if platform_admin(self) else pn.pane.Alert(t("keys_platform_only"),
                                                                                 alert_type="info"))
        hooks = pn.Column(self.hooks, pn.pane.Markdown(f"### {t('create_webhook')}"), self.create, self.secret,
                          pn.pane.Markdown(f"### {t('delivery_log')}"), pn.pane.Markdown(t("signature_help")),
                          pn.Row(self.test_button, self.progress, self.follow_status), self.alert, self.deliveries,
                          self.redeliver, sizing_mode="stretch_width")
        return pn.Tabs((t("api_keys"), keys), (t("webhooks"), hooks), active=1 if not platform_admin(self) else 0,
                       sizing_mode="stretch_width")
