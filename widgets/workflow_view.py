"""The workflow widget: pure display components over :class:`~.stores.WorkflowStore` and the view
that puts them together and hands user actions to :class:`~.workflow_controller.WorkflowController`
(as tasks on the kernel's loop, like the workbench's views).

``WorkflowPanel()`` connects with the kernel's environment (what the Jupyter server handed it);
``workflows()`` in :mod:`deepspace_lab.widgets` makes one and loads it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ipywidgets as w

from deepspace_lab.client import AsyncDeepSpaceClient

from .components import error_html, table_html
from .controllers import Connection
from .i18n import Text, credits
from .render import escape
from .stores import WorkflowStore
from .views import Loop, Rendering, on_loop, spawn
from .workflow_controller import WorkflowController

_STATE_COLOURS = {"succeeded": "#15803d", "failed": "#b00020", "cancelled": "#6b7280", "running": "#1d4ed8",
                  "cancelling": "#b45309", "queued": "#6b7280", "pending": "#9ca3af", "skipped": "#9ca3af"}


def state_html(state: str) -> str:
    colour = _STATE_COLOURS.get(state, "#374151")
    return f"<span class='ds-state ds-state-{escape(state)}' style='color:{colour}'><b>{escape(state)}</b></span>"


def run_line_html(store: WorkflowStore, text: Text) -> str:
    run = store.run
    if not run:
        return f"<i>{escape(text('no_run'))}</i>"
    line = text("run_line", run=run["id"], state="\x00", tokens=run.get("tokens", 0),
                cost=credits(run.get("cost_micros")))
    html = escape(line).replace("\x00", state_html(run["state"]))
    if store.following:
        html += f" <i>{escape(text('following'))}</i>"
    if run.get("error"):
        html += f"<div style='color:#b00020'>{escape(run['error'])} <code>{escape(run.get('error_code') or '')}</code>"
        html += "</div>"
    return f"<div class='ds-run-line'>{html}</div>"


def steps_html(run: dict[str, Any]) -> str:
    """One row per step: state, attempts, tokens, cost, time, error."""
    rows = [{"step": s["step_id"], "kind": s["kind"], "state": s["state"], "attempts": s["attempts"],
             "tokens": s["tokens"], "cost": credits(s["cost_micros"]),
             "seconds": "" if s.get("duration_s") is None else f"{s['duration_s']:.1f}",
             "error": s.get("error") or "", "reused": s.get("reused_from") or ""} for s in run.get("steps") or []]
    columns = ["step", "kind", "state", "attempts", "tokens", "cost", "seconds", "error", "reused"]
    return f"<div class='ds-steps'>{table_html(rows, columns, {'state': state_html})}</div>"  # states in colour


def outputs_html(run: dict[str, Any]) -> str:
    parts = []
    for s in run.get("steps") or []:
        if s.get("outputs"):
            body = escape(json.dumps(s["outputs"], indent=2, ensure_ascii=False, default=str))
            parts.append(f"<details class='ds-output'><summary>{escape(s['step_id'])}</summary>"
                         f"<pre style='white-space: pre-wrap'>{body}</pre></details>")
    return "".join(parts)


def events_html(events: list[dict[str, Any]], *, last: int = 100) -> str:
    rows = [{"time": str(e.get("created_at") or "")[11:19], "event": e["event"], "step": e.get("step_id") or "",
             "attempt": e.get("attempt") or "", "message": (e.get("message") or "")[:300]} for e in events[-last:]]
    return f"<div class='ds-events' style='max-height: 16em; overflow-y: auto'>" \
           f"{table_html(rows, ['time', 'event', 'step', 'attempt', 'message'])}</div>"


def artifacts_html(artifacts: list[dict[str, Any]]) -> str:
    items = []
    for a in artifacts:
        name = escape(a["name"])
        where = (f" → <a class='ds-artifact-link' href='{escape(os.path.relpath(a['path']))}' target='_blank'>"
                 f"{escape(os.path.relpath(a['path']))}</a>" if a.get("path") else "")
        items.append(f"<li><code>{name}</code> ({escape(a['step_id'])}, {a.get('size_bytes') or 0} bytes){where}</li>")
    return f"<ul class='ds-artifacts'>{''.join(items)}</ul>" if items else ""


def history_html(runs: list[dict[str, Any]]) -> str:
    rows = [{"run": r["id"], "state": r["state"], "started": str(r.get("created_at") or "")[:19],
             "cost": credits(r.get("cost_micros")), "forked from": r.get("forked_from") or ""} for r in runs]
    return table_html(rows, ["run", "state", "started", "cost", "forked from"])


def set_choices(dropdown: w.Dropdown, options: list[Any]) -> None:
    """New options only when they changed, keeping the value chosen (a re-render every poll
    must not undo the user's choice)."""
    options = [tuple(o) if isinstance(o, list) else o for o in options]
    if tuple(dropdown.options) != tuple(options):
        kept = dropdown.value
        dropdown.options = options
        values = [o[1] if isinstance(o, tuple) else o for o in options]
        dropdown.value = kept if kept in values else (values[0] if values else None)


class WorkflowView(Rendering, w.VBox):  # type: ignore[misc]
    """Browse definitions and versions, start a run with inputs, follow it (steps, log, outputs,
    artifacts), cancel, resume, fork from a step, and open any run of the history."""

    def __init__(self, store: WorkflowStore, controller: WorkflowController, *, text: Text) -> None:
        self.store, self.controller, self.text = store, controller, text
        t, wide = text, {"description_width": "initial"}
        self.workflow = w.Dropdown(description=t("workflow"), options=[], style=wide)
        self.version = w.Dropdown(description=t("version"), options=[], style=wide, layout=w.Layout(width="160px"))
        self.refresh = w.Button(description=t("refresh"), icon="refresh", layout=w.Layout(width="auto"))
        self.inputs = w.VBox()
        self.fields: dict[str, w.Text] = {}
        self.budget = w.BoundedFloatText(description=t("budget"), value=0, min=0, max=1e9, style=wide,
                                         layout=w.Layout(width="220px"))
        self.buttons = {name: w.Button(description=t(name), layout=w.Layout(width="auto", min_width="90px"))
                        for name in ("start_run", "cancel_run", "resume_run", "fork")}
        self.buttons["start_run"].button_style = "primary"
        self.fork_step = w.Dropdown(description=t("fork_from"), options=[], style=wide)
        self.run_line = w.HTML()
        self.steps = w.HTML()
        self.outputs = w.HTML()
        self.events = w.HTML()
        self.artifact_choice = w.Dropdown(options=[])
        self.download = w.Button(description=t("download"), icon="download", layout=w.Layout(width="auto"))
        self.artifacts = w.HTML()
        self.history = w.HTML()
        self.run_choice = w.Dropdown(description=t("open_run"), options=[], style=wide)
        self.error = w.HTML()
        self.empty = w.HTML()

        def title(key: str) -> w.HTML:
            return w.HTML(f"<b>{escape(t(key))}</b>")

        super().__init__(children=[
            w.HBox([self.workflow, self.version, self.refresh]), self.empty, title("inputs"), self.inputs,
            w.HBox([self.budget, self.buttons["start_run"]]), self.error, self.run_line,
            w.HBox([self.buttons["cancel_run"], self.buttons["resume_run"], self.fork_step, self.buttons["fork"]]),
            title("steps"), self.steps, title("outputs"), self.outputs, title("artifacts"),
            w.HBox([self.artifact_choice, self.download]), self.artifacts, title("events"), self.events,
            title("run_history"), self.run_choice, self.history])
        self._wire()
        self.render()

    def _wire(self) -> None:
        c, store = self.controller, self.store
        self.refresh.on_click(lambda _b: spawn(c.load()))
        self.workflow.observe(self._user(lambda v: spawn(c.select_workflow(v)) if v != store.workflow_id else None),
                              "value")
        self.version.observe(self._user(lambda v: spawn(c.select_version(v)) if v != store.version else None), "value")
        self.run_choice.observe(self._user(lambda v: spawn(c.open_run(v)) if v != store.run_id else None), "value")
        self.buttons["start_run"].on_click(on_loop(lambda _b: spawn(c.start(
            self.input_values(), budget_micros=round(self.budget.value * 1_000_000) or None))))
        self.buttons["cancel_run"].on_click(lambda _b: spawn(c.cancel()))
        self.buttons["resume_run"].on_click(lambda _b: spawn(c.resume()))
        self.buttons["fork"].on_click(lambda _b: spawn(c.fork(self.fork_step.value, self.input_values()))
                                      if self.fork_step.value else None)
        self.download.on_click(lambda _b: spawn(c.download(self.artifact_choice.value))
                               if self.artifact_choice.value else None)
        store.observe(self.render, names=["workflows", "workflow_id", "versions", "version", "runs", "run", "run_id",
                                          "events", "artifacts", "following", "error"])
        store.observe(self._build_inputs, names=["definition"])

    def input_values(self) -> dict[str, str]:
        """The inputs typed in (empty fields are left to their defaults)."""
        return {name: field.value for name, field in self.fields.items() if field.value.strip()}

    def _build_inputs(self, _change: Any = None) -> None:
        """One text field per declared input, its default filled in."""
        self.fields = {}
        for name, spec in self.store.declared_inputs().items():
            default = spec.get("default")
            value = default if isinstance(default, str) else ("" if default is None else json.dumps(default))
            self.fields[name] = w.Text(description=name, value=value, placeholder=spec.get("type", ""),
                                       tooltip=spec.get("description", ""), style={"description_width": "initial"})
        self.inputs.children = list(self.fields.values())
        self.render()

    def _render(self) -> None:
        s, t = self.store, self.text
        with self.hold_sync():
            set_choices(self.workflow, [(wf["name"], wf["id"]) for wf in s.workflows])
            self.workflow.value = s.workflow_id if s.workflow_id in {wf["id"] for wf in s.workflows} else None
            set_choices(self.version, [(f"v{v['version']}", v["version"]) for v in s.versions])
            self.version.value = s.version if s.version in {v["version"] for v in s.versions} else None
            self.empty.value = f"<i>{escape(t('no_workflows'))}</i>" if not s.workflows and not s.error else ""
            set_choices(self.fork_step, [st["step_id"] for st in s.run.get("steps") or []])
            self.run_line.value = run_line_html(s, t)
            self.steps.value = steps_html(s.run)
            self.outputs.value = outputs_html(s.run)
            self.events.value = events_html(list(s.events))
            set_choices(self.artifact_choice, [(a["name"], a["id"]) for a in s.artifacts])
            self.artifacts.value = artifacts_html(list(s.artifacts))
            self.history.value = history_html(list(s.runs))
            set_choices(self.run_choice, [(f"{r['id']} · {r['state']}", r["id"]) for r in s.runs])
            self.run_choice.value = s.run_id if s.run_id in {r["id"] for r in s.runs} else None
            self.error.value = error_html(s.error, t)
            state = s.run.get("state")
            self.buttons["start_run"].disabled = s.workflow_id is None
            self.buttons["cancel_run"].disabled = state != "running"
            self.buttons["resume_run"].disabled = state in (None, "succeeded", "cancelling")
            self.buttons["fork"].disabled = not s.run


class WorkflowPanel(WorkflowView):
    """The workflow widget, wired: a store, a controller over one client, the view."""

    def __init__(self, client: AsyncDeepSpaceClient | None = None, *, lang: str | None = None,
                 poll_s: float = 0.5, download_dir: str = "workflow-artifacts") -> None:
        Loop.capture()
        self.connection = Connection(client or AsyncDeepSpaceClient())
        store = WorkflowStore()
        controller = WorkflowController(self.connection, store, poll_s=poll_s, download_dir=download_dir)
        super().__init__(store, controller, text=Text(lang))

    def start(self) -> WorkflowPanel:
        """Schedule the first load on the running loop and return self (for a notebook cell)."""
        spawn(self.controller.load())
        return self
