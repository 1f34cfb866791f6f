"""What every page shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import AsyncDeepSpaceClient

from ..i18n import Text
from ..session import Identity


class Page(Viewer):
    """A page of the console. ``key`` names it in the navigation (a text key); :meth:`load`
    reads what it shows through the client (called when the page is opened)."""

    key: ClassVar[str] = ""
    #: set by the shell: ``navigate(page_key, tab)`` opens another page, at one of its tabs
    navigate: Callable[[str, str | None], None] | None = None

    def __init__(self, client: AsyncDeepSpaceClient, *, text: Text, identity: Identity | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.client, self.text, self.identity = client, text, identity

    async def load(self) -> None:
        """Read the page's data; nothing by default."""

    def focus(self, tab: str) -> None:
        """Show the part ``tab`` names (a page with tabs overrides it); nothing by default."""

    def body(self) -> pn.viewable.Viewable:
        raise NotImplementedError

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Markdown(f"## {self.text(self.key)}"), self.body(), sizing_mode="stretch_width")
