"""Small pieces the pages share: the org filter a platform admin gets (an org admin's pages are
limited to their org already), a read-only table, an action form whose answer refreshes a paged
table, a money formatter per column, and a table's export through the Worker's export job."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import panel as pn

from ..forms import ApiForm, Submit
from ..i18n import Text, credits
from ..runner import JobRunner
from ..table import PagedTable

EXPORT_FORMATS = ("csv", "json", "md")


def org_filters(page: Any) -> dict[str, pn.widgets.Widget]:
    """``{"org_id": TextInput}`` for a platform admin; nothing for an org admin (one org)."""
    if not platform_admin(page):
        return {}
    return {"org_id": pn.widgets.TextInput(label=page.text("filter_org"), width=220)}


def compact_json(value: Any) -> str:
    """A dict or list cell as short JSON text (a table shows text, not objects)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")) if value is not None else ""


def listed(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value or "")


def platform_admin(page: Any) -> bool:
    """Whether the page's admin sees every org (a platform admin, or no sign-in: tests, single user)."""
    return page.identity is None or page.identity.is_platform_admin


def own_org(page: Any) -> str:
    """An org admin's org id (a form's starting value); empty for a platform admin (every org)."""
    return "" if platform_admin(page) else page.identity.org_id


def frame_table(css: str, columns: Sequence[str]) -> pn.widgets.Tabulator:
    """A read-only table made with its ``columns`` (each later value keeps them: see PagedTable)."""
    return pn.widgets.Tabulator(pd.DataFrame(columns=list(columns)), disabled=True, show_index=False,
                                pagination=None, sizing_mode="stretch_width", css_classes=[css])


def money(columns: Sequence[str], text: Text) -> dict[str, Any]:
    """PagedTable keyword arguments showing micro-credit ``columns`` as credits."""
    return {"formatters": {c: credits for c in columns},
            "titles": {c: text("in_credits", name=c.removesuffix("_micros")) for c in columns}}


def action(fields: Mapping[str, pn.widgets.Widget], submit: Submit, *, text: Text, label: str,
           required: Sequence[str] = (), refresh: PagedTable | None = None, css: str = "") -> ApiForm:
    """An ApiForm that, after a success, reloads ``refresh`` (the table it changed) before it
    says "saved" — so what the admin sees next is the change's effect."""
    async def send(values: dict[str, Any]) -> Any:
        result = await submit(values)
        if refresh is not None:
            await refresh.load()
        return result

    form = ApiForm(fields, send, text=text, required=required, submit_label=label)
    if css:
        form.button.css_classes = [css]
    return form


def export_runner(page: Any, dataset: str, table: PagedTable) -> JobRunner:
    """Export ``dataset`` as the admin picks (CSV, JSON or Markdown) through the Admin API's
    export job, of the org ``table``'s org filter names (every org when empty), with progress
    and the stored file to download."""
    t = page.text

    def start(values: dict[str, Any]) -> Any:
        org = table.filters["org_id"].value if "org_id" in table.filters else None
        return page.client.admin_export(dataset, format=values["format"], org_id=org or None)

    return JobRunner({"format": pn.widgets.Select(label=t("format"), options=list(EXPORT_FORMATS), width=100)},
                     start=start, fetch_job=page.client.admin_export_job,
                     text=t, label=t("export"))
