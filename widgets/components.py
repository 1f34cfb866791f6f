"""Pure display components (DESIGN §8): they render stores and report user actions through
callbacks; no I/O inside them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .i18n import Text, credits
from .render import CODE_CSS, code_blocks, escape, markdown_html
from .stores import ChatStore, MessageModel

STYLE = f"<style>{CODE_CSS} .ds-code {{padding: 6px; border-radius: 4px; overflow-x: auto}}</style>"


class AgentThought(w.Accordion):  # type: ignore[misc]
    """Thoughts, tool steps and citations of a reply, in arrival order; hidden when none."""

    def __init__(self, text: Text) -> None:
        self.text = text
        self.list = w.HTML()
        super().__init__(children=[self.list])
        self.set_title(0, text("thoughts"))
        self.selected_index = None
        self.layout.display = "none"

    def show(self, steps: list[dict[str, Any]]) -> None:
        self.layout.display = "" if steps else "none"
        items = []
        for step in steps:
            label = self.text(step.get("kind", "thought"))
            items.append(f"<li><b>{escape(label)}</b>: {escape(str(step.get('content', '')))}</li>")
        self.list.value = "<ul>" + "".join(items) + "</ul>"


def footer_text(message: MessageModel, text: Text) -> str:
    usage, bill = message.usage, message.billing
    if not usage and not bill:
        return ""
    line = text("footer", prompt=usage.get("prompt_tokens", 0), generated=usage.get("completion_tokens", 0),
                delivered=usage.get("delivered_tokens", 0), cost=credits(bill.get("cost_micros")))
    if message.status == "stopped":
        line += f" · {text('stopped')}"
    return line


class MessageItem(w.VBox):  # type: ignore[misc]
    """One message: who, the agent steps, the rendered text, errors, the footer."""

    def __init__(self, message: MessageModel, *, text: Text,
                 on_insert_code: Callable[[str], None] | None = None) -> None:
        self.message, self.text, self.on_insert_code = message, text, on_insert_code
        self.header = w.HTML()
        self.thought = AgentThought(text)
        self.body = w.HTML()
        self.error = w.HTML()
        self.footer = w.HTML()
        self.insert = w.Button(description=text("insert_code"), icon="code", layout=w.Layout(display="none"))
        self.insert.on_click(self._insert)
        super().__init__(children=[self.header, self.thought, self.body, self.error, self.footer, self.insert])
        message.observe(self.render, names=["content", "status", "steps", "usage", "billing", "error"])
        self.render()

    def render(self, _change: Any = None) -> None:
        m, t = self.message, self.text
        with self.hold_sync():
            who = t("you") if m.role == "user" else t("assistant") + (f" · {escape(m.model)}" if m.model else "")
            self.header.value = f"<b>{who}</b>" + (f" <i>{t('streaming')}</i>" if m.status == "streaming" else "")
            self.thought.show(list(m.steps))
            self.body.value = markdown_html(m.content) if m.role == "assistant" else (
                f"<div style='white-space: pre-wrap'>{escape(m.content)}</div>")
            self.error.value = (f"<div style='color: #b00020'><b>{t('error')}</b>: {escape(m.error.get('message', ''))}"
                                f" <code>{escape(m.error.get('code', ''))}</code></div>") if m.error else ""
            self.footer.value = f"<small>{escape(footer_text(m, t))}</small>"
            has_code = m.role == "assistant" and m.status != "streaming" and bool(code_blocks(m.content))
            self.insert.layout.display = "" if has_code and self.on_insert_code else "none"

    def _insert(self, _button: Any) -> None:
        blocks = code_blocks(self.message.content)
        if blocks and self.on_insert_code is not None:
            self.on_insert_code("\n\n".join(blocks))


class MessageList(w.VBox):  # type: ignore[misc]
    """The conversation, one :class:`MessageItem` per message (kept while the list changes)."""

    def __init__(self, chat: ChatStore, *, text: Text, on_insert_code: Callable[[str], None] | None = None) -> None:
        self.chat, self.text, self.on_insert_code = chat, text, on_insert_code
        self._items: dict[int, MessageItem] = {}
        super().__init__()
        chat.observe(self.render, names=["messages"])
        self.render()

    def render(self, _change: Any = None) -> None:
        items = {}
        for message in self.chat.messages:
            items[id(message)] = self._items.get(id(message)) or MessageItem(
                message, text=self.text, on_insert_code=self.on_insert_code)
        self._items = items
        self.children = list(items.values())


class PromptInput(w.VBox):  # type: ignore[misc]
    """The prompt box with Send and Stop, and the cost estimate of the next send."""

    def __init__(self, chat: ChatStore, *, text: Text, on_send: Callable[[str], None], on_stop: Callable[[], None],
                 on_draft: Callable[[str], None] | None = None) -> None:
        self.chat, self.text = chat, text
        self.input = w.Textarea(placeholder=text("prompt_placeholder"), continuous_update=False,
                                layout=w.Layout(width="100%", height="80px"))
        self.send_button = w.Button(description=text("send"), button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description=text("stop"), button_style="warning", icon="stop", disabled=True)
        self.estimate = w.HTML()
        self.send_button.on_click(lambda _b: self._send(on_send))
        self.stop_button.on_click(lambda _b: on_stop())
        if on_draft is not None:
            self.input.observe(lambda change: on_draft(change["new"]), names="value")
        super().__init__(children=[self.input, w.HBox([self.send_button, self.stop_button, self.estimate])])
        chat.observe(self.render, names=["streaming", "estimate_micros"])
        self.render()

    def _send(self, on_send: Callable[[str], None]) -> None:
        prompt = self.input.value.strip()
        if prompt and not self.chat.streaming:
            self.input.value = ""
            on_send(prompt)

    def render(self, _change: Any = None) -> None:
        with self.hold_sync():
            self.send_button.disabled = self.chat.streaming
            self.input.disabled = self.chat.streaming
            self.stop_button.disabled = not self.chat.streaming
            micros = self.chat.estimate_micros
            hold = "" if micros is None else self.text("estimate", cost=credits(micros))
            self.estimate.value = f"<small class='ds-estimate'>{escape(hold)}</small>" if hold else ""


def error_html(error: dict[str, Any], text: Text) -> str:
    if not error:
        return ""
    return (f"<div style='color: #b00020'><b>{text('error')}</b>: {escape(str(error.get('message', '')))} "
            f"<code>{escape(str(error.get('code', '')))}</code></div>")


def table_html(rows: list[dict[str, Any]], columns: list[str],
               cells: dict[str, Callable[[Any], str]] | None = None) -> str:
    """An HTML table of ``rows``; a value is escaped text unless ``cells`` names a column whose
    function makes its markup (which escapes what it shows)."""
    made = cells or {}

    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column, "")
        return made[column](value) if column in made else escape(str(value))

    head = "".join(f"<th style='text-align:left; padding: 2px 8px'>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='padding: 2px 8px'>{cell(r, c)}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart_svg(points: list[tuple[str, float]], *, width: int = 480, height: int = 160) -> str:
    """A small inline SVG bar chart (no plotting library in the kernel, no network)."""
    if not points:
        return ""
    top = max(v for _, v in points) or 1.0
    bar = width / len(points)
    parts = []
    for i, (label, value) in enumerate(points):
        h = (height - 30) * value / top
        x = i * bar
        parts.append(f"<rect x='{x + 2:.1f}' y='{height - 20 - h:.1f}' width='{max(bar - 4, 1):.1f}' "
                     f"height='{h:.1f}' fill='#3b82f6'><title>{escape(label)}: {value:g}</title></rect>"
                     f"<text x='{x + bar / 2:.1f}' y='{height - 5}' font-size='9' text-anchor='middle'>"
                     f"{escape(label[5:])}</text>")
    return f"<svg class='ds-usage-chart' width='{width}' height='{height}'>{''.join(parts)}</svg>"
