"""A table that pages on the server: it asks a cursor-paged list route for one page at a time
(``limit`` + ``cursor`` → ``data`` + ``next_cursor``), so the browser and this process only
ever hold one page — Tabulator's own remote pagination would keep the whole frame in memory.

Keyset cursors go forward only; "previous" re-reads the page from the cursor that opened it
(kept on a stack), so paging back shows the rows as they are now."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pandas as pd
import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import DeepSpaceClientError

from .i18n import Text

#: one page of a list route: ``fetch({"limit": 25, "cursor": None, **filters})``
Fetch = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]
PAGE_SIZES = (10, 25, 50, 100)


def error_text(exc: DeepSpaceClientError) -> str:
    """An API error as an admin reads it: the message and its stable code."""
    return f"{exc.message} ({exc.code})"


class PagedTable(Viewer):
    """``PagedTable(lambda params: client.usage(**params), text=Text(), filters={"model": TextInput()})``.

    ``columns`` picks and orders the fields shown; ``formatters`` turn a field's values into text
    (e.g. micro-credits into credits) and ``titles`` name the columns. A filter widget's value
    (empty = no filter) is sent as the query parameter of its name; changing one goes back to the
    first page."""

    def __init__(self, fetch: Fetch, *, text: Text, columns: list[str] | None = None,
                 formatters: Mapping[str, Callable[[Any], str]] | None = None,
                 titles: Mapping[str, str] | None = None, filters: Mapping[str, pn.widgets.Widget] | None = None,
                 page_size: int = 25) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.fetch, self.text, self.columns = fetch, text, columns
        self.formatters, self.titles = dict(formatters or {}), dict(titles or {})
        self.filters = dict(filters or {})
        #: the cursor that opened each page visited; its index is the page number (0-based)
        self.cursors: list[str | None] = [None]
        self.next_cursor: str | None = None
        self.rows: list[dict[str, Any]] = []
        self.error: str | None = None
        self._asked = 0  # requests sent; only the newest one's answer is shown
        # Made with its columns from the start: a Tabulator whose value later brings new columns
        # rebuilds its configuration apart from its data, and the browser sometimes shows the new
        # header with no rows (the bug of the Chinese permissions matrix).
        self.table = pn.widgets.Tabulator(self.frame([]), disabled=True, show_index=False, pagination=None,
                                          sizing_mode="stretch_width")
        self.previous_button = pn.widgets.Button(label=text("previous"), disabled=True)
        self.next_button = pn.widgets.Button(label=text("next"), disabled=True)
        self.size_select = pn.widgets.Select(label=text("page_size"), options=sorted({*PAGE_SIZES, page_size}),
                                             value=page_size, width=110)
        self.status = pn.pane.Str("")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self.previous_button.on_click(self._on_previous)
        self.next_button.on_click(self._on_next)
        self.size_select.param.watch(self._on_reset, "value")
        for widget in self.filters.values():
            widget.param.watch(self._on_reset, "value")

    @property
    def page_index(self) -> int:
        return len(self.cursors) - 1

    def params(self, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.size_select.value, "cursor": cursor}
        for name, widget in self.filters.items():
            if widget.value not in (None, "", [], ()):
                params[name] = widget.value
        return params

    async def load(self) -> None:
        """The first page (again), e.g. after a filter changed."""
        self.cursors = [None]
        await self._show(None)
        self._refresh_controls()

    async def next_page(self) -> None:
        if self.next_cursor is None:
            return
        cursor = self.next_cursor
        if await self._show(cursor):
            self.cursors.append(cursor)
        self._refresh_controls()

    async def previous_page(self) -> None:
        if len(self.cursors) < 2:
            return
        if await self._show(self.cursors[-2]):
            self.cursors.pop()
        self._refresh_controls()

    async def _show(self, cursor: str | None) -> bool:
        """Fetch and show a page; False when refused, or when a newer request overtook this one."""
        self._asked += 1
        mine = self._asked
        try:
            page = await self.fetch(self.params(cursor))
        except DeepSpaceClientError as exc:
            if mine != self._asked:
                return False
            self.error = error_text(exc)
            self.alert.object, self.alert.visible = self.error, True
            return False
        if mine != self._asked:
            return False
        self.error, self.alert.visible = None, False
        self.rows = [dict(row) for row in page.get("data") or ()]
        self.next_cursor = page.get("next_cursor") or None
        self.table.value = self.frame(self.rows)
        return True

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame(rows, columns=self.columns) if self.columns else pd.DataFrame(rows)
        for name, fmt in self.formatters.items():
            if name in frame:
                frame[name] = frame[name].map(fmt)
        return frame.rename(columns=self.titles)

    def _refresh_controls(self) -> None:
        self.previous_button.disabled = self.page_index == 0
        self.next_button.disabled = self.next_cursor is None
        self.status.object = (self.text("page_rows", page=self.page_index + 1, rows=len(self.rows)) if self.rows
                              else self.text("no_rows"))

    async def _on_next(self, _event: Any = None) -> None:
        await self.next_page()

    async def _on_previous(self, _event: Any = None) -> None:
        await self.previous_page()

    async def _on_reset(self, _event: Any = None) -> None:
        await self.load()

    def __panel__(self) -> pn.viewable.Viewable:
        controls = pn.Row(*self.filters.values(), self.size_select)
        pager = pn.Row(self.previous_button, self.next_button, self.status)
        return pn.Column(controls, self.alert, self.table, pager, sizing_mode="stretch_width")
