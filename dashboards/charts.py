"""Charts from small aggregate frames (roll-ups the API answers with, never every row):
bokeh figures that Panel shows as they are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from bokeh.models import ColumnDataSource, FactorRange, HoverTool
from bokeh.palettes import Category10
from bokeh.plotting import figure

MAX_POINTS = 5000


def aggregate_frame(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, by: str | None = None) -> pd.DataFrame:
    """``rows`` summed per ``x`` (and ``by``), sorted by ``x``; refuses more than MAX_POINTS rows
    (a chart is drawn from roll-ups, not from raw records)."""
    if len(rows) > MAX_POINTS:
        raise ValueError(f"{len(rows)} rows: charts take aggregates (at most {MAX_POINTS} points)")
    keys = [x] + ([by] if by else [])
    frame = pd.DataFrame(list(rows), columns=[*keys, y])
    if frame.empty:
        return frame
    return frame.groupby(keys, as_index=False)[[y]].sum().sort_values(keys).reset_index(drop=True)


def bar_chart(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, title: str, y_label: str = "",
              height: int = 260) -> Any:
    """One bar per ``x`` value (e.g. cost per model or per day)."""
    frame = aggregate_frame(rows, x=x, y=y)
    frame[x] = frame[x].astype(str)
    fig = figure(x_range=FactorRange(factors=list(frame[x])), title=title, height=height, sizing_mode="stretch_width",
                 toolbar_location=None)
    fig.vbar(x=x, top=y, width=0.8, source=ColumnDataSource(frame))
    fig.add_tools(HoverTool(tooltips=[(x, f"@{x}"), (y_label or y, f"@{y}")]))
    fig.yaxis.axis_label = y_label
    return fig


def line_chart(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, title: str, by: str | None = None,
               y_label: str = "", height: int = 260) -> Any:
    """A line per ``by`` value (or one) over ``x`` — trends by day."""
    frame = aggregate_frame(rows, x=x, y=y, by=by)
    frame[x] = frame[x].astype(str)
    fig = figure(x_range=FactorRange(factors=sorted(set(frame[x]))), title=title, height=height,
                 sizing_mode="stretch_width", toolbar_location=None)
    groups = frame.groupby(by) if by else [("", frame)]
    for i, (name, part) in enumerate(groups):
        fig.line(x=x, y=y, source=ColumnDataSource(part), legend_label=str(name) if by else y, line_width=2,
                 color=Category10[10][i % 10])
    fig.yaxis.axis_label = y_label
    return fig
