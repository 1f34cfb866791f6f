"""A form whose errors come from the API: the fields are widgets, ``submit(values)`` calls the
Admin API through the client, and a refusal is shown by its stable ``code`` — under the field
the error's ``param`` names, else above the form. Text for a code comes from the console's
text table (``error_<code>``) when it has one, else from the Gateway's message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import panel as pn
from panel.viewable import Viewer

from deepspace_lab.client import DeepSpaceClientError

from .i18n import Text
from .table import error_text

Submit = Callable[[dict[str, Any]], Awaitable[Any]]


class ApiForm(Viewer):
    def __init__(self, fields: Mapping[str, pn.widgets.Widget], submit: Submit, *, text: Text,
                 required: Sequence[str] = (), submit_label: str | None = None,
                 on_success: Callable[[Any], Any] | None = None, done_key: str | None = "saved") -> None:
        """``done_key``: the text shown after a success (``None``: nothing, when what the form
        draws or follows is itself the answer: a trace's timeline, a job's progress)."""
        super().__init__()  # type: ignore[no-untyped-call]  # panel's Viewer.__init__ is unannotated
        self.fields, self.submit, self.text = dict(fields), submit, text
        self.required, self.on_success, self.done_key = tuple(required), on_success, done_key
        self.field_errors = {name: pn.pane.Str("", styles={"color": "#b00020"}, visible=False) for name in self.fields}
        self.form_error = pn.pane.Alert("", alert_type="danger", visible=False)
        self.done = pn.pane.Alert("", alert_type="success", visible=False)
        self.button = pn.widgets.Button(label=submit_label or text("submit"))
        self.button.on_click(self._on_click)
        #: the last refusal: (code, param) — what the form shows, for callers and tests
        self.last_error: tuple[str, str | None] | None = None

    def values(self) -> dict[str, Any]:
        return {name: widget.value for name, widget in self.fields.items()}

    def clear_errors(self) -> None:
        for pane in self.field_errors.values():
            pane.object, pane.visible = "", False
        self.form_error.visible = self.done.visible = False
        self.last_error = None

    def show_error(self, *, code: str, message: str, param: str | None) -> None:
        self.last_error = (code, param)
        key = f"error_{code}"
        shown = f"{self.text(key)} ({code})" if self.text.has(key) else message
        if param in self.field_errors:
            pane = self.field_errors[param]
            pane.object, pane.visible = shown, True
        else:
            self.form_error.object, self.form_error.visible = shown, True

    async def send(self) -> Any:
        """Check required fields here, then submit; the API's answer, or None when refused."""
        self.clear_errors()
        values = self.values()
        missing = [name for name in self.required if values.get(name) in (None, "", [], ())]
        for name in missing:
            self.show_error(code="required", message=self.text("required"), param=name)
        if missing:
            return None
        self.button.disabled = True
        try:
            result = await self.submit(values)
        except DeepSpaceClientError as exc:
            self.show_error(code=exc.code, message=error_text(exc), param=exc.param)
            return None
        finally:
            self.button.disabled = False
        if self.done_key is not None:
            self.done.object, self.done.visible = self.text(self.done_key), True
        if self.on_success is not None:
            self.on_success(result)
        return result

    async def _on_click(self, _event: Any = None) -> None:
        await self.send()

    def __panel__(self) -> pn.viewable.Viewable:
        rows = [pn.Column(widget, self.field_errors[name]) for name, widget in self.fields.items()]
        return pn.Column(self.form_error, *rows, self.button, self.done)
