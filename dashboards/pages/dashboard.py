"""Dashboard: usage and cost trends (by day, model and org) from the Admin API's overview — sums
of the roll-ups, never rows —, the top spenders, and the anomalies (spend and error-rate spikes,
holds stuck open, reconciliation drift, low balances), each with a link to the page where to
act. An org admin sees their own org's (the overview route keeps them to it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from html import escape
from typing import Any

import pandas as pd
import panel as pn

from deepspace_lab.client import DeepSpaceClientError

from ..charts import bar_chart, line_chart
from ..i18n import Text, credits
from ..table import error_text
from .base import Page
from .kit import frame_table, platform_admin

#: today's spend (or error rate) at least this many times the 7 days before is a spike
SPIKE_FACTOR = 2.0
#: fewer errors than this today is never an error-rate spike
MIN_SPIKE_ERRORS = 5
#: with no error rate in the 7 days before to compare with, this rate today is a spike
HIGH_ERROR_RATE = 0.25
WINDOWS = (7, 30, 90)


@dataclass(frozen=True)
class Anomaly:
    """``kind`` (spend_spike, error_spike, stuck_holds, drift, low_balance), what to tell the
    admin, and where to act: a page (and its tab)."""

    kind: str
    message: str
    page: str
    tab: str | None = None


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def spend_today_and_baseline(view: dict[str, Any]) -> tuple[int, float]:
    """Cost of the overview's last day, and the mean cost of the 7 days before it (micro-credits)."""
    last = date.fromisoformat(str(view["until"])[:10])
    by_day = {row["key"]: int(row["cost_micros"]) for row in view["trends"]["by_day"]}
    before = [by_day.get((last - timedelta(days=i)).isoformat(), 0) for i in range(1, 8)]
    return by_day.get(last.isoformat(), 0), sum(before) / 7


def find_anomalies(view: dict[str, Any], text: Text) -> list[Anomaly]:
    """The overview's anomaly numbers, judged: only what needs an admin is returned."""
    found: list[Anomaly] = []
    numbers = view["anomalies"]
    today, baseline = spend_today_and_baseline(view)
    if today > 0 and baseline > 0 and today >= SPIKE_FACTOR * baseline:
        found.append(Anomaly("spend_spike", text("anomaly_spend_spike", today=credits(today),
                                                 baseline=credits(round(baseline))), "billing", "usage"))
    rate = numbers["error_rate"]
    now, before, ratio = rate["today"], rate["baseline_7d"], rate["ratio"]
    spiking = ratio >= SPIKE_FACTOR if ratio is not None else (now["error_rate"] or 0) >= HIGH_ERROR_RATE
    if now["errors"] >= MIN_SPIKE_ERRORS and spiking:
        found.append(Anomaly("error_spike", text("anomaly_error_spike", today=_percent(now["error_rate"]),
                                                 errors=now["errors"], baseline=_percent(before["error_rate"])),
                             "audit", "log"))
    holds = numbers["holds_past_lease"]
    if holds["count"]:
        found.append(Anomaly("stuck_holds", text("anomaly_stuck_holds", count=holds["count"],
                                                 since=holds["oldest_lease_expires_at"]), "billing", "transactions"))
    last_check = numbers.get("reconciliation") or {}
    result = last_check.get("result") or {}
    if result and not result.get("ok", True):
        found.append(Anomaly("drift", text("anomaly_drift", count=len(result.get("problems") or ()),
                                           at=last_check.get("finished_at")), "billing", "wallets"))
    low = numbers["low_balances"]
    if low["count"]:
        names = ", ".join(f"{r['org_name']} ({credits(r['balance_micros'])})" for r in low["lowest"][:5])
        found.append(Anomaly("low_balance", text("anomaly_low_balance", count=low["count"], names=names,
                                                 threshold=credits(low["threshold_micros"])), "billing", "wallets"))
    return found


def totals(view: dict[str, Any]) -> dict[str, int]:
    """The window's requests, tokens, cost and errors (sums of the by-day trend)."""
    rows = view["trends"]["by_day"]
    return {name: sum(int(r[name]) for r in rows) for name in
            ("requests", "prompt_tokens", "completion_tokens", "cost_micros", "errors")}


def _chart_rows(rows: list[dict[str, Any]], key: str = "key") -> list[dict[str, Any]]:
    # credits as a float for drawing only; every figure shown as text stays exact
    return [{"key": str(r.get(key) or r["key"]), "requests": r["requests"], "credits": r["cost_micros"] / 1e6}
            for r in rows]


def day_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The by-day trend with every day of the window, days without requests as zeros (a trend
    line needs its empty days)."""
    by_day = {row["key"]: row for row in view["trends"]["by_day"]}
    first, last = (date.fromisoformat(str(view[k])[:10]) for k in ("since", "until"))
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return [by_day.get(day) or {"key": day, "requests": 0, "cost_micros": 0} for day in days]


class DashboardPage(Page):
    key = "dashboard"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t = self.text
        self.view: dict[str, Any] | None = None
        self.anomalies: list[Anomaly] = []
        self.window = pn.widgets.RadioButtonGroup(options={t("last_days", days=d): d for d in WINDOWS}, value=30,
                                                  button_type="light")
        self.figures = pn.Row(css_classes=["ds-figures"], sizing_mode="stretch_width")
        self.alerts = pn.Column(css_classes=["ds-anomalies"], sizing_mode="stretch_width")
        self.charts = pn.Column(sizing_mode="stretch_width")
        self.spenders = frame_table("ds-spenders", [t("org"), t("requests"), t("tokens"), t("cost_credits")])
        self.note = pn.pane.Markdown("")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.window.param.watch(self._on_window, "value")

    async def load(self) -> None:
        try:
            self.view = await self.client.admin_overview(days=self.window.value)
        except DeepSpaceClientError as exc:
            self.alert.object, self.alert.visible = error_text(exc), True
            return
        self.alert.visible = False
        self.show_overview(self.view)

    def show_overview(self, view: dict[str, Any]) -> None:
        t = self.text
        sums = totals(view)
        figures = [("requests", f"{sums['requests']:,}"),
                   ("tokens", f"{sums['prompt_tokens'] + sums['completion_tokens']:,}"),
                   ("cost_credits", credits(sums["cost_micros"])), ("errors", f"{sums['errors']:,}"),
                   ("error_rate_today", _percent(view["anomalies"]["error_rate"]["today"]["error_rate"]))]
        self.figures.objects = [pn.pane.HTML(f'<div class="ds-figure"><div>{escape(t(name))}</div>'
                                             f'<b style="font-size:1.6em">{escape(value)}</b></div>',
                                             margin=(5, 20)) for name, value in figures]
        self.anomalies = find_anomalies(view, t)
        self.alerts.objects = [self._anomaly_row(a) for a in self.anomalies] or [
            pn.pane.Alert(t("no_anomalies"), alert_type="success")]
        trends = view["trends"]
        days = _chart_rows(day_rows(view))
        by_day = [line_chart(days, x="key", y="credits", title=t("cost_by_day"), y_label=t("credits")),
                  line_chart(days, x="key", y="requests", title=t("requests_by_day"))]
        for fig in by_day:
            fig.xaxis.major_label_orientation = 0.8  # a month of days side by side
        charts: list[Any] = [*by_day,
                             bar_chart(_chart_rows(trends["by_model"]), x="key", y="credits",
                                       title=t("cost_by_model"), y_label=t("credits"))]
        if platform_admin(self):
            charts.append(bar_chart(_chart_rows(trends["by_org"], key="org_name"), x="key", y="credits",
                                    title=t("cost_by_org"), y_label=t("credits")))
        self.charts.objects = [pn.pane.Bokeh(c, sizing_mode="stretch_width") for c in charts]
        self.spenders.value = pd.DataFrame(
            [{t("org"): r.get("org_name") or r["key"], t("requests"): r["requests"],
              t("tokens"): r["prompt_tokens"] + r["completion_tokens"], t("cost_credits"): credits(r["cost_micros"])}
             for r in view["top_spenders"]], columns=[t("org"), t("requests"), t("tokens"), t("cost_credits")])
        self.note.object = t("rolled_until", until=(view.get("rolled_until") or {}).get("hour") or "—")

    def _anomaly_row(self, anomaly: Anomaly) -> pn.viewable.Viewable:
        t = self.text
        go = pn.widgets.Button(label=t("act_on", page=t(anomaly.page)), button_type="primary", width=200)
        go.on_click(lambda _event: self.navigate(anomaly.page, anomaly.tab) if self.navigate else None)
        alert = pn.pane.Alert(f"**{t('anomaly_' + anomaly.kind + '_title')}** — {anomaly.message}",
                              alert_type="warning", sizing_mode="stretch_width")
        return pn.Row(alert, go, sizing_mode="stretch_width", css_classes=[f"ds-anomaly-{anomaly.kind}"])

    async def _on_window(self, _event: Any) -> None:
        await self.load()

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        return pn.Column(self.window, self.alert, self.figures, pn.pane.Markdown(f"### {t('anomalies')}"), self.alerts,
                         pn.pane.Markdown(f"### {t('trends')}"), self.charts,
                         pn.pane.Markdown(f"### {t('top_spenders')}"), self.spenders, self.note,
                         sizing_mode="stretch_width")
