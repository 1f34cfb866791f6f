"""Users: the user list and organizations (with the Admin API's accounts routes), and the
roles & permissions matrix, read from ``GET /deepspace/admin/api/permissions``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from deepspace_lab.client import DeepSpaceClientError

from ..table import error_text
from .base import Page, placeholder

YES = "✓"


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
        self.matrix: dict[str, Any] | None = None
        self.matrix_table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, pagination=None,
                                                 sizing_mode="stretch_width", css_classes=["ds-permissions"])
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)

    async def load(self) -> None:
        try:
            self.matrix = await self.client.admin_permissions()
        except DeepSpaceClientError as exc:
            self.alert.object, self.alert.visible = error_text(exc), True
            return
        self.matrix_table.value = matrix_frame(self.matrix, self.text)

    def body(self) -> pn.viewable.Viewable:
        roles = pn.Column(pn.pane.Markdown(self.text("matrix_intro")), self.alert, self.matrix_table,
                          sizing_mode="stretch_width")
        return pn.Tabs((self.text("user_list"), placeholder(self.text, "what_users")),
                       (self.text("organizations"), placeholder(self.text, "what_users")),
                       (self.text("roles_permissions"), roles), active=2, sizing_mode="stretch_width")
