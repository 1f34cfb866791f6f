"""A trace drawn as a timeline: the Admin API's trace items (``{type, at, id, data}``, oldest
first) become rows with their offset from the first item and a one-line summary, shown as a
bokeh figure (one lane per kind of item; jobs, workflow runs and steps as bars from start to
end) and as an ordered list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from bokeh.models import ColumnDataSource, FactorRange, HoverTool
from bokeh.plotting import figure

from .i18n import credits

#: lanes top to bottom: the request, its money, its work
LANES = ("audit", "usage", "hold", "transaction", "message", "workflow_run", "step_run", "job", "job_event")


def _ms(at: Any, start: datetime) -> float | None:
    if not at:
        return None
    return round((datetime.fromisoformat(str(at)) - start).total_seconds() * 1000, 1)


def summary(item: Mapping[str, Any]) -> str:
    """What one item says, on one line (no message text: a trace is what happened)."""
    d, kind = item.get("data") or {}, item.get("type")
    if kind == "audit":
        error = f" {d['error_code']}" if d.get("error_code") else ""
        return f"{d.get('method') or ''} {d.get('path') or d.get('kind')} → {d.get('status_code')}{error}".strip()
    if kind == "usage":
        return (f"{d.get('model')}: {d.get('prompt_tokens')} + {d.get('completion_tokens')} tokens, "
                f"{credits(d.get('cost_micros'))} credits, {d.get('status')}")
    if kind == "hold":
        return f"hold {credits(d.get('amount_micros'))} credits, {d.get('state')}"
    if kind == "transaction":
        return f"{d.get('type')} {credits(d.get('amount_micros'))} credits"
    if kind == "message":
        return f"message ({d.get('role')})"
    if kind == "workflow_run":
        return f"workflow run {d.get('name')}: {d.get('state')}, {credits(d.get('cost_micros'))} credits"
    if kind == "step_run":
        return f"step {d.get('step_id')} ({d.get('kind')}): {d.get('state')}"
    if kind == "job":
        return f"job {d.get('kind')}: {d.get('state')}"
    if kind == "job_event":
        return f"job event {d.get('event') or d.get('kind') or ''} {d.get('message') or ''}".strip()
    return str(kind)


def timeline_rows(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per item: ``offset_ms`` from the first item, ``end_ms`` for what has a start and
    an end (jobs, runs, steps), ``lane``, ``summary``, ``id``."""
    if not items:
        return []
    start = datetime.fromisoformat(str(items[0]["at"]))
    rows = []
    for item in items:
        d = item.get("data") or {}
        begin = _ms(d.get("started_at"), start) if item["type"] in ("job", "workflow_run", "step_run") else None
        end = _ms(d.get("finished_at"), start) if begin is not None else None
        offset = _ms(item["at"], start) or 0.0
        rows.append({"offset_ms": begin if begin is not None else offset, "end_ms": end, "lane": item["type"],
                     "summary": summary(item), "id": item["id"]})
    return rows


def timeline_chart(rows: Sequence[Mapping[str, Any]], *, title: str, height: int = 300) -> Any:
    lanes = [lane for lane in LANES if any(r["lane"] == lane for r in rows)] or list(LANES[:1])
    fig = figure(y_range=FactorRange(factors=list(reversed(lanes))), title=title, height=height,
                 sizing_mode="stretch_width", toolbar_location=None, x_axis_label="ms")
    points = ColumnDataSource({k: [r[k] for r in rows] for k in ("offset_ms", "lane", "summary")})
    fig.scatter(x="offset_ms", y="lane", source=points, size=10)
    spans = [r for r in rows if r.get("end_ms") is not None]
    if spans:
        fig.hbar(y=[r["lane"] for r in spans], left=[r["offset_ms"] for r in spans],
                 right=[r["end_ms"] for r in spans], height=0.4, alpha=0.4)
    fig.add_tools(HoverTool(tooltips=[("+ms", "@offset_ms"), ("", "@summary")]))
    return fig


def timeline_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The timeline as an ordered list (escaped: every value comes from the Gateway)."""
    items = "".join(f'<li><code>+{r["offset_ms"]:g} ms</code> <b>{escape(r["lane"])}</b> {escape(r["summary"])}</li>'
                    for r in rows)
    return f'<ol class="ds-timeline-list">{items}</ol>'
