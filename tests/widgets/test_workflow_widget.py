"""The workflow widget without a browser, against a live gateway and worker: browse definitions
and versions, start a run from its input fields, follow its steps, log, outputs and artifacts
(downloaded through the files API), cancel, resume, fork and the run history — asserted through
the store and the widgets' values."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nbformat
import pytest

from deepspace_lab.client import AsyncDeepSpaceClient
from deepspace_lab.widgets import WorkflowPanel, views

from ..workflows.conftest import MODEL, Flows
from ..workflows.notebook_fixtures import write_notebook
from .test_workbench import until

FLOW = f"""name: widget-flow
inputs:
  topic: {{type: string}}
  words: {{type: integer, default: 4}}
steps:
  - id: plan
    kind: llm
    model: {MODEL}
    prompt: "Plan {{{{ inputs.topic }}}} [sim:tokens={{{{ inputs.words }}}}]"
  - id: check
    kind: verify
    depends_on: [plan]
    assert: [{{value: "{{{{ steps.plan.outputs.text }}}}", contains: "[simulated]"}}]
"""


def panel(flows: Flows, key: str, tmp_path: Path, **kwargs: Any) -> WorkflowPanel:
    client = AsyncDeepSpaceClient(base_url=flows.gw.url, api_key=key)
    return WorkflowPanel(client, poll_s=0.05, download_dir=str(tmp_path / "downloads"), **kwargs)


@pytest.mark.slow  # one papermill run: the notebook step's artifact
def test_browse_start_follow_and_download_the_artifact(flows: Flows, worker: Any, tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "report.ipynb", "topic = ''",
                              "from deepspace_lab.client import workflow_output\n"
                              "workflow_output('report', 'report on ' + topic)")
    source = FLOW + f"""  - id: report
    kind: notebook
    depends_on: [check]
    notebook: {notebook}
    parameters: {{topic: "{{{{ inputs.topic }}}}"}}
    outputs: [report]
"""

    key = flows.api_key("chat", "workflows")

    async def scenario() -> None:
        wf = panel(flows, key, tmp_path)
        await wf.connection.client.save_workflow(FLOW)
        await wf.connection.client.save_workflow(source)  # version 2
        await wf.controller.load()
        store = wf.store
        assert [w["name"] for w in store.workflows] == ["widget-flow"] and wf.workflow.label == "widget-flow"
        assert [v["version"] for v in store.versions] == [2, 1] and wf.version.value == 2
        assert list(wf.fields) == ["topic", "words"] and wf.fields["words"].value == "4"
        wf.fields["topic"].value = "tides"
        wf.buttons["start_run"].click()
        await until(lambda: store.run.get("state") == "succeeded", timeout_s=60)
        await until(lambda: not store.following and bool(store.artifacts))
        run = store.run
        assert [s["state"] for s in run["steps"]] == ["succeeded"] * 3 and run["inputs"] == {"topic": "tides",
                                                                                             "words": 4}
        assert run["steps"][2]["outputs"] == {"report": "report on tides"}
        assert "report on tides" in wf.outputs.value and "succeeded" in wf.steps.value
        assert "step.started" in wf.events.value and store.events[-1]["event"] == "run.succeeded"
        assert run["id"] in wf.run_line.value
        (artifact,) = store.artifacts
        assert artifact["name"].endswith(".ipynb") and artifact["step_id"] == "report"
        wf.artifact_choice.value = artifact["id"]
        wf.download.click()
        await until(lambda: bool(store.artifacts[0]["path"]))
        saved = Path(store.artifacts[0]["path"])
        assert saved.parent == tmp_path / "downloads" / run["id"]
        assert nbformat.reads(saved.read_text(), as_version=4).cells  # the executed notebook, whole
        assert "ds-artifact-link" in wf.artifacts.value
        assert [r["id"] for r in store.runs] == [run["id"]] and wf.run_choice.value == run["id"]
        wf.version.value = 1  # an older version: its own inputs and steps
        await until(lambda: store.definition.get("steps") and len(store.definition["steps"]) == 2)

    asyncio.run(scenario())


def test_cancel_resume_fork_and_history(flows: Flows, start_worker: Any, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    key = flows.api_key("chat", "workflows")

    async def scenario() -> None:
        wf = panel(flows, key, tmp_path, lang="zh")
        assert wf.buttons["start_run"].description == "开始运行"
        await wf.connection.client.save_workflow(FLOW)
        await wf.controller.load()
        store = wf.store
        start_worker()
        wf.fields["topic"].value = "dunes [sim:delay_ms=1500]"  # a plan slow enough to cancel mid-step
        run_id = await wf.controller.start(wf.input_values())
        assert store.run["state"] == "running" and wf.buttons["cancel_run"].disabled is False
        await until(lambda: store.run["steps"][0]["state"] == "running")
        wf.buttons["cancel_run"].click()
        await until(lambda: store.run.get("state") == "cancelled")
        assert wf.buttons["resume_run"].disabled is False and "cancelled" in wf.run_line.value
        wf.buttons["resume_run"].click()
        await until(lambda: store.run.get("state") == "succeeded", timeout_s=30)
        assert "run.resumed" in [e["event"] for e in store.events]
        wf.fork_step.value = "check"
        wf.buttons["fork"].click()
        await until(lambda: store.run_id != run_id and store.run.get("state") == "succeeded", timeout_s=30)
        plan, check = store.run["steps"]
        assert store.run["forked_from"] == run_id and plan["reused_from"] and check["reused_from"] is None
        await until(lambda: len(store.runs) == 2)
        wf.run_choice.value = run_id  # back to the first run, from the history
        await until(lambda: store.run.get("id") == run_id)
        assert store.run["state"] == "succeeded" and wf.fork_step.options == ("plan", "check")
        version, selected = store.version, []
        select_version = wf.controller.select_version
        monkeypatch.setattr(wf.controller, "select_version", lambda v: selected.append(v) or select_version(v))
        wf.version.value = None  # nothing chosen: nothing happens
        await until(lambda: not views._TASKS)  # whatever the change started has finished
        assert selected == [] and store.error == {} and store.version == version

    asyncio.run(scenario())


def test_the_steps_table_colours_states_and_escapes_what_a_step_reports() -> None:
    from deepspace_lab.widgets.workflow_view import steps_html

    step = {"step_id": "plan", "kind": "llm", "state": "failed", "attempts": 2, "tokens": 7, "cost_micros": 1500,
            "duration_s": 1.5, "error": "<script>alert(1)</script>", "reused_from": None}
    html = steps_html({"steps": [step, {**step, "step_id": "<b>", "state": "succeeded", "error": None}]})
    assert html.count("class='ds-state ds-state-failed'") == 1 and html.count("ds-state-succeeded") == 1
    assert "<script>" not in html and "&lt;script&gt;" in html and "<td style='padding: 2px 8px'>&lt;b&gt;</td>" in html
    assert "<td style='padding: 2px 8px'>1.5</td>" in html  # seconds


def other_project_key(flows: Flows, *scopes: str) -> str:
    """A key of the tenant's user in a second project of the tenant's org."""
    from deepspace_lab.auth import create_api_key, create_project
    from deepspace_lab.db import make_sessionmaker

    from ..helpers import TEST_SECRET

    async def make(engine: Any) -> str:
        t = flows.gw.tenant
        async with make_sessionmaker(engine)() as session:
            project = await create_project(session, org_id=t.org_id, name="elsewhere")
            _, plaintext = await create_api_key(session, secret_key=TEST_SECRET, org_id=t.org_id,
                                                project_id=project.id, user_id=t.user_id, scopes=scopes)
            await session.commit()
        return plaintext

    return flows.call(make)


def test_the_chat_view_runs_a_chosen_workflow_on_the_message(flows: Flows, worker: Any) -> None:
    """The chat's workflow picker lists the project's workflows; with one chosen, a message starts
    it (its `message` input is what was typed), the run's progress shows as the reply's steps and
    its result is the reply; back on "none" the model answers again."""
    from ..workflows.test_chat_workflow import ASK_SOURCE
    from .test_workbench import bench

    key = flows.api_key("chat", "workflows")
    other_key = other_project_key(flows, "workflows")

    async def scenario() -> None:
        wb = bench(flows.gw, key)
        await wb.connection.client.save_workflow(ASK_SOURCE)
        # another project of the same org: its workflows are not the caller's to pick (the step 404s them)
        other = AsyncDeepSpaceClient(base_url=flows.gw.url, api_key=other_key)
        await other.save_workflow(ASK_SOURCE.replace("name: ask-flow", "name: elsewhere-flow"))
        assert {w["name"] for w in await wb.connection.client.workflows()} == {"ask-flow", "elsewhere-flow"}
        await wb.load()
        chat, view = wb.chat_store, wb.chat_view
        assert chat.workflows == ["ask-flow"] and view.workflow.value == ""
        assert [label for label, _ in view.workflow.options] == ["none: the model answers", "ask-flow"]
        view.workflow.value = "ask-flow"  # the user picks it
        assert chat.workflow == "ask-flow"
        view.prompt.input.value = "why tides"
        view.prompt.send_button.click()
        await wb.chat_stream.task
        user, reply = chat.messages
        (run,) = (await wb.connection.client.workflow_runs())["data"]
        assert user.content == "why tides" and run["inputs"] == {"message": "why tides"}
        assert run["state"] == "succeeded" and reply.status == "done"
        assert reply.steps and {s["kind"] for s in reply.steps} == {"thought"}
        assert run["id"] in str(reply.steps[0]["content"])  # the run's progress, as thoughts
        assert reply.content.startswith("[simulated]") and len(reply.content.split()) == 3  # its result
        view.workflow.value = ""  # none: the model answers
        view.prompt.input.value = "and now? [sim:tokens=2]"
        view.prompt.send_button.click()
        await wb.chat_stream.task
        assert len((await wb.connection.client.workflow_runs())["data"]) == 1
        assert len(chat.messages[-1].content.split()) == 2

    asyncio.run(scenario())


def test_an_artifact_is_saved_as_it_arrives_and_a_failed_download_leaves_no_file(tmp_path: Path) -> None:
    from collections.abc import AsyncIterator

    from deepspace_lab.client import ConnectionFailed
    from deepspace_lab.widgets.workflow_controller import _save

    async def pieces(fail: bool) -> AsyncIterator[bytes]:
        yield b"first "
        if fail:
            raise ConnectionFailed("the Gateway went away", code="connection_error")
        yield b"second"

    target = tmp_path / "run_1" / "report.ipynb"
    with pytest.raises(ConnectionFailed):
        asyncio.run(_save(pieces(fail=True), target))
    assert list(target.parent.iterdir()) == []  # neither the file nor its .part
    assert asyncio.run(_save(pieces(fail=False), target)) == target and target.read_bytes() == b"first second"


def test_a_poll_reads_full_pages_of_events_and_stops_at_a_short_one() -> None:
    """Every new event is read, a page at a time; a page shorter than asked for is the last (no
    request for an empty page after it)."""
    from deepspace_lab.widgets.controllers import Connection
    from deepspace_lab.widgets.stores import WorkflowStore
    from deepspace_lab.widgets.workflow_controller import EVENTS_PAGE, WorkflowController

    class Client:
        def __init__(self, events: int) -> None:
            self.events, self.asked = events, []

        async def workflow_run(self, run_id: str) -> dict[str, Any]:
            return {"id": run_id, "state": "running", "steps": []}

        async def workflow_events(self, run_id: str, *, after: int, limit: int) -> dict[str, Any]:
            self.asked.append((after, limit))
            data = [{"id": i, "event": "step.progress"} for i in range(after + 1, min(after + limit, self.events) + 1)]
            return {"object": "list", "data": data, "next_after": data[-1]["id"] if data else after}

    for events, asked in ((3, [0]), (EVENTS_PAGE + 1, [0, EVENTS_PAGE]), (EVENTS_PAGE, [0, EVENTS_PAGE])):
        client = Client(events)
        store = WorkflowStore()
        store.run_id = "wfr_1"
        controller = WorkflowController(Connection(client), store)  # type: ignore[arg-type]
        asyncio.run(controller._poll("wfr_1"))
        assert client.asked == [(after, EVENTS_PAGE) for after in asked]
        assert [e["id"] for e in store.events] == list(range(1, events + 1))[-WorkflowStore.MAX_EVENTS:]
