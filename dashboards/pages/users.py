"""Users: the user list (search, status, paged on the server; disable / enable; a member's role
in an org), organizations (paged, with one org's projects and members), and the roles &
permissions matrix, read from ``GET /deepspace/admin/api/permissions``. An org admin sees and
acts on their own org's users only (the Admin API decides; its refusals show by code)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from deepspace_lab.client import DeepSpaceClientError

from ..table import PagedTable, error_text
from .base import Page
from .kit import action, frame_table, money, org_filters, own_org

YES = "✓"
USER_COLUMNS = ["created_at", "id", "email", "name", "status", "is_platform_admin", "locked_until"]
ORG_COLUMNS = ["created_at", "id", "name", "slug", "member_count", "project_count", "balance_micros", "frozen_micros"]
PROJECT_COLUMNS = ["id", "name", "created_at"]
MEMBER_COLUMNS = ["user_id", "email", "name", "role", "status"]
ROLES = ["viewer", "member", "admin", "owner"]


def matrix_frame(matrix: dict[str, Any], text: Any) -> pd.DataFrame:
    """One row per action: a ✓ under each role allowed, the key scope it needs, and a note for
    the platform-only and own-org-only admin actions."""
    roles = list(matrix["roles"])
    rows = []
    for entry in matrix["actions"]:
        row = {text("action"): entry["action"]}
        row.update({role: YES if role in entry["roles"] else "" for role in roles})
        row[text("key_scope")] = entry["key_scope"]
        row[text("note")] = (text("platform_only") if entry.get("platform_admins_only")
                             else text("own_org_only") if entry.get("own_org_only") else "")
        rows.append(row)
    return pd.DataFrame(rows, columns=[text("action"), *roles, text("key_scope"), text("note")])


class UsersPage(Page):
    key = "users"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t, c = self.text, self.client
        self.matrix: dict[str, Any] | None = None
        # The matrix's table is made once its rows are known (see load): a Tabulator first shown
        # empty and then given a frame with new columns re-rendered, now and then, its header alone.
        self.matrix_table: pn.widgets.Tabulator | None = None
        self.matrix_box = pn.Column(sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.users = PagedTable(lambda p: c.admin_users(**p), text=t, columns=USER_COLUMNS, filters={
            "q": pn.widgets.TextInput(label=t("search"), width=220),
            "status": pn.widgets.Select(label=t("status"), width=130, options=["", "active", "disabled"]),
            **org_filters(self)})
        self.status_form = action({"user_id": pn.widgets.TextInput(label=t("user_id"), width=300),
                                   "verb": pn.widgets.Select(label=t("status_change"), width=150,
                                                             options={t("disable"): "disable", t("enable"): "enable"})},
                                  self._status, text=t, label=t("apply"), required=("user_id",), refresh=self.users,
                                  css="ds-user-status")
        self.role_form = action({"org_id": pn.widgets.TextInput(label=t("filter_org"), width=260,
                                                                value=own_org(self)),
                                 "user_id": pn.widgets.TextInput(label=t("user_id"), width=300),
                                 "role": pn.widgets.Select(label=t("role"), options=ROLES, width=130)},
                                lambda v: c.admin_set_member_role(v["org_id"].strip(), v["user_id"].strip(), v["role"]),
                                text=t, label=t("set_role"), required=("org_id", "user_id"))
        self.orgs = PagedTable(lambda p: c.admin_orgs(**p), text=t, columns=ORG_COLUMNS,
                               filters={"q": pn.widgets.TextInput(label=t("search"), width=220)},
                               **money(("balance_micros", "frozen_micros"), t))
        self.org_id = pn.widgets.TextInput(label=t("org_detail"), width=300, value=own_org(self))
        self.projects = frame_table("ds-org-projects", PROJECT_COLUMNS)
        self.members = frame_table("ds-org-members", MEMBER_COLUMNS)
        self.org_alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.org_id.param.watch(self._on_org, "value")

    async def _status(self, values: dict[str, Any]) -> Any:
        user_id = values["user_id"].strip()
        if values["verb"] == "disable":
            return await self.client.admin_disable_user(user_id)
        return await self.client.admin_enable_user(user_id)

    async def load(self) -> None:
        await self.load_matrix()
        await self.users.load()
        await self.orgs.load()
        if self.org_id.value:
            await self.show_org(self.org_id.value)

    async def load_matrix(self) -> None:
        try:
            self.matrix = await self.client.admin_permissions()
        except DeepSpaceClientError as exc:
            self.alert.object, self.alert.visible = error_text(exc), True
            return
        self.matrix_table = pn.widgets.Tabulator(matrix_frame(self.matrix, self.text), disabled=True,
                                                 show_index=False, pagination=None, sizing_mode="stretch_width",
                                                 css_classes=["ds-permissions"])
        self.matrix_box.objects = [self.matrix_table]

    async def show_org(self, org_id: str) -> None:
        """One org's projects and members."""
        try:
            org = await self.client.admin_org(org_id.strip())
        except DeepSpaceClientError as exc:
            self.org_alert.object, self.org_alert.visible = error_text(exc), True
            return
        self.org_alert.visible = False
        self.projects.value = pd.DataFrame(list(org.get("projects") or ()), columns=PROJECT_COLUMNS)
        self.members.value = pd.DataFrame(list(org.get("members") or ()), columns=MEMBER_COLUMNS)

    async def _on_org(self, event: Any) -> None:
        if event.new and event.new.strip():
            await self.show_org(event.new)

    def body(self) -> pn.viewable.Viewable:
        t = self.text
        users = pn.Column(self.users, pn.Row(self.status_form, self.role_form), sizing_mode="stretch_width")
        orgs = pn.Column(self.orgs, self.org_id, self.org_alert, pn.pane.Markdown(f"#### {t('projects')}"),
                         self.projects, pn.pane.Markdown(f"#### {t('members')}"), self.members,
                         sizing_mode="stretch_width")
        roles = pn.Column(pn.pane.Markdown(t("matrix_intro")), self.alert, self.matrix_box,
                          sizing_mode="stretch_width")
        return pn.Tabs((t("user_list"), users), (t("organizations"), orgs), (t("roles_permissions"), roles),
                       active=2, sizing_mode="stretch_width")
