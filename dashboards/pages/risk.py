"""Risk & Policy: the policies in force (rate limits, IP allow/deny rules, model policies; with
their history on request) and the budget caps with this period's spend, reservations and what
remains — the effect of a cap, read from the same counters the Gateway's holds use — and the
rate limits a caller (org, project, key) is under with their use now (``GET …/limits``). Platform
admins change them through ApiForms (refusals shown by the API's codes under their field); an
org admin reads their org's. A change is in force from the next request in every process."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from ..table import PagedTable
from .base import Page
from .kit import action, compact_json, frame_table, money, org_filters, own_org, platform_admin

POLICY_COLUMNS = ["id", "kind", "scope", "scope_id", "subject", "spec", "in_force", "actor", "created_at", "ended_at"]
BUDGET_COLUMNS = ["id", "org_id", "scope", "scope_id", "period", "limit_micros", "spent_micros", "reserved_micros",
                  "remaining_micros", "period_start"]
BUDGET_MONEY = ("limit_micros", "spent_micros", "reserved_micros", "remaining_micros")
USAGE_COLUMNS = ["scope", "scope_id", "limit", "max", "used", "window_s"]
KINDS = ("ip_rule", "rate_limit", "model_policy")
SCOPES = ("global", "org", "project", "key")


def policy_body(values: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /policies`` body from the form: the spec is built for the chosen kind (the
    API checks it; a bad value comes back as its code, under its field)."""
    kind = values["kind"]
    if kind == "ip_rule":
        spec: dict[str, Any] = {"action": values["action"]}
    elif kind == "rate_limit":
        spec = {name: int(values[name] or 0) for name in ("rpm", "tpm", "concurrency")}
    else:
        spec = {"allow": [m.strip() for m in (values["models"] or "").split(",") if m.strip()]}
    body = {"kind": kind, "scope": values["scope"], "scope_id": (values["scope_id"] or "").strip() or None,
            "spec": spec}
    if kind == "ip_rule":
        body["cidr"] = (values["cidr"] or "").strip()
    return body


class RiskPage(Page):
    key = "risk"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t, c = self.text, self.client
        self.policies = PagedTable(lambda p: c.admin_policies(**p), text=t, columns=POLICY_COLUMNS,
                                   formatters={"spec": compact_json}, filters={
            **org_filters(self), "kind": pn.widgets.Select(label=t("filter_kind"), width=150, options=["", *KINDS]),
            "history": pn.widgets.Select(label=t("policy_history"), width=150,
                                         options={t("in_force_only"): "", t("with_history"): "true"})})
        self.budgets = PagedTable(lambda p: c.admin_budgets(**p), text=t, columns=BUDGET_COLUMNS,
                                  filters=org_filters(self), **money(BUDGET_MONEY, t))
        self.policy_form = action({
            "kind": pn.widgets.Select(label=t("policy_kind"), options=list(KINDS), width=160),
            "scope": pn.widgets.Select(label=t("policy_scope"), options=list(SCOPES), width=160),
            "scope_id": pn.widgets.TextInput(label=t("scope_id"), width=300),
            "cidr": pn.widgets.TextInput(label=t("cidr"), width=220, placeholder="203.0.113.0/24"),
            "action": pn.widgets.Select(label=t("ip_action"), options=["deny", "allow"], width=120),
            "rpm": pn.widgets.IntInput(label="rpm", value=0, start=0, width=110),
            "tpm": pn.widgets.IntInput(label="tpm", value=0, start=0, width=110),
            "concurrency": pn.widgets.IntInput(label=t("concurrency"), value=0, start=0, width=110),
            "models": pn.widgets.TextInput(label=t("allowed_models"), width=300),
        }, lambda v: c.admin_set_policy(**policy_body(v)), text=t, label=t("set_policy"), required=("kind", "scope"),
            refresh=self.policies, css="ds-set-policy")
        self.delete_policy = action({"policy_id": pn.widgets.TextInput(label=t("policy_id"), width=160)},
                                    lambda v: c.admin_delete_policy(v["policy_id"].strip()),
                                    text=t, label=t("delete_policy"), required=("policy_id",), refresh=self.policies)
        self.budget_form = action({
            "org_id": pn.widgets.TextInput(label=t("filter_org"), width=260),
            "scope": pn.widgets.Select(label=t("policy_scope"), options=["org", "project", "key"], width=140),
            "scope_id": pn.widgets.TextInput(label=t("scope_id"), width=260),
            "period": pn.widgets.Select(label=t("period"), options=["day", "month"], width=120),
            "limit_micros": pn.widgets.IntInput(label=t("limit_micros"), value=0, start=0, width=200),
        }, lambda v: c.admin_set_budget(org_id=v["org_id"].strip(), scope=v["scope"], period=v["period"],
                                        limit_micros=int(v["limit_micros"]), scope_id=v["scope_id"].strip() or None),
            text=t, label=t("set_budget"), required=("org_id",), refresh=self.budgets, css="ds-set-budget")
        own = own_org(self)
        self.usage_table = frame_table("ds-rate-usage", USAGE_COLUMNS)
        self.usage_form = action({"org_id": pn.widgets.TextInput(label=t("filter_org"), width=260, value=own),
                                  "project_id": pn.widgets.TextInput(label=t("project_id"), width=260),
                                  "api_key_id": pn.widgets.TextInput(label=t("key_id"), width=260)},
                                 self._usage, text=t, label=t("show_usage"), required=("org_id",), css="ds-usage")
        self._form_fields()
        self.policy_form.fields["kind"].param.watch(lambda _e: self._form_fields(), "value")

    async def _usage(self, values: dict[str, Any]) -> Any:
        """The limits a caller of that org / project / key is under, and their use now."""
        answer = await self.client.admin_rate_usage(values["org_id"].strip(),
                                                    project_id=values["project_id"].strip() or None,
                                                    api_key_id=values["api_key_id"].strip() or None)
        self.usage_table.value = pd.DataFrame(answer["data"], columns=USAGE_COLUMNS)
        return answer

    def _form_fields(self) -> None:
        """Show the fields the chosen kind takes."""
        kind, f = self.policy_form.fields["kind"].value, self.policy_form.fields
        for name in ("cidr", "action"):
            f[name].visible = kind == "ip_rule"
        for name in ("rpm", "tpm", "concurrency"):
            f[name].visible = kind == "rate_limit"
        f["models"].visible = kind == "model_policy"

    async def load(self) -> None:
        await self.policies.load()
        await self.budgets.load()

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        editing = platform_admin(self)
        policies = pn.Column(pn.pane.Markdown(t("policies_intro")), self.policies,
                             pn.pane.Markdown(f"### {t('usage_now')}"), self.usage_form, self.usage_table,
                             sizing_mode="stretch_width")
        budgets = pn.Column(pn.pane.Markdown(t("budgets_intro")), self.budgets, sizing_mode="stretch_width")
        if editing:
            policies.extend([pn.pane.Markdown(f"### {t('set_policy')}"), self.policy_form, self.delete_policy])
            budgets.extend([pn.pane.Markdown(f"### {t('set_budget')}"), self.budget_form])
        else:
            note = pn.pane.Alert(t("risk_read_only"), alert_type="info")
            policies.append(note)
            budgets.append(note.clone())
        return pn.Tabs((t("policies"), policies), (t("budgets"), budgets), sizing_mode="stretch_width")
