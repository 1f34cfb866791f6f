"""Audit: trace lookup drawn as a timeline — one request (its audit row, usage record, hold,
ledger entries, messages, jobs), or a whole workflow run with its steps and every model call
they made, since a run is one trace — and request-log search over the audit rows with filters,
paged on the server (``/deepspace/admin/api/traces/{id}`` and ``…/audit``). Clicking a row of
the log looks up its trace; the log exports through the Worker's export job."""

from __future__ import annotations

from functools import partial
from typing import Any

import panel as pn

from ..forms import ApiForm
from ..table import PagedTable
from ..timeline import timeline_chart, timeline_html, timeline_rows
from ..values import check_trace_id
from .base import Page
from .kit import export_runner, org_filters

LOG_COLUMNS = ["created_at", "org_id", "kind", "method", "path", "status_code", "error_code", "model", "latency_ms",
               "client_ip", "actor", "trace_id"]
TABS = ("trace", "log")


class AuditPage(Page):
    key = "audit"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t = self.text
        self.items: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.trace_id = pn.widgets.TextInput(label=t("filter_trace"), width=340, css_classes=["ds-trace-id"])
        self.lookup = ApiForm({"trace_id": self.trace_id}, self.look_up, text=t, required=("trace_id",),
                              submit_label=t("look_up"), done_key=None)  # the timeline is the answer
        self.timeline = pn.Column(sizing_mode="stretch_width", css_classes=["ds-timeline"])
        filters: dict[str, pn.widgets.Widget] = {
            **org_filters(self), "status_code": pn.widgets.TextInput(label=t("filter_status_code"), width=110),
            "error_code": pn.widgets.TextInput(label=t("filter_error_code"), width=160),
            "path": pn.widgets.TextInput(label=t("filter_path"), width=220, placeholder="/deepspace/v1"),
            "model": pn.widgets.TextInput(label=t("filter_model"), width=180),
            "since": pn.widgets.TextInput(label=t("filter_since"), width=160, placeholder="2026-12-01"),
            "until": pn.widgets.TextInput(label=t("filter_until"), width=160)}
        self.log = PagedTable(lambda p: self.client.admin_audit(**p), text=t, columns=LOG_COLUMNS, filters=filters)
        self.log.table.on_click(self._on_row_click)

        self.export = export_runner(self, "audit", self.log)
        self.tabs = pn.Tabs((t("trace_lookup"), pn.Column(pn.pane.Markdown(t("trace_intro")), self.lookup,
                                                          self.timeline, sizing_mode="stretch_width")),
                            (t("request_log"), pn.Column(self.log, self.export, sizing_mode="stretch_width")),
                            sizing_mode="stretch_width")

    async def look_up(self, values: dict[str, Any]) -> dict[str, Any]:
        """The trace's items, drawn; refusals (``invalid_trace_id``, ``trace_not_found``) show
        under the field."""
        trace_id = check_trace_id(values["trace_id"])
        answer = dict(await self.client.admin_trace(trace_id))
        self.items = list(answer["items"])
        self.rows = timeline_rows(self.items)
        t = self.text
        self.timeline.objects = [
            pn.pane.Markdown(t("trace_items", count=len(self.items), trace=trace_id)),
            pn.pane.Bokeh(timeline_chart(self.rows, title=t("timeline")), sizing_mode="stretch_width"),
            pn.pane.HTML(timeline_html(self.rows), sizing_mode="stretch_width")]
        return answer

    async def open_trace(self, trace_id: str) -> None:
        self.trace_id.value = trace_id
        self.focus("trace")
        await self.lookup.send()

    def _on_row_click(self, event: Any) -> None:
        if 0 <= event.row < len(self.log.rows) and self.log.rows[event.row].get("trace_id"):
            pn.state.execute(partial(self.open_trace, str(self.log.rows[event.row]["trace_id"])))

    def focus(self, tab: str) -> None:
        if tab in TABS:
            self.tabs.active = TABS.index(tab)

    async def load(self) -> None:
        await self.log.load()

    def body(self) -> pn.viewable.Viewable:
        return self.tabs
