"""The notebook step without a kernel: parameters checked against the notebook before queueing,
the kernel's environment, outputs and errors read back, the client joining the run's trace, and
the supervisor's kill of a process tree that left its session (what a kernel does)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from deepspace_lab.client import OUTPUT_MIME, DeepSpaceClient, workflow_output
from deepspace_lab.workflows.notebook import check, kernel_env, read_outputs, short_traceback
from deepspace_lab.workflows.steps import StepContext, StepDefinitionError, StepFailed, step_kinds
from deepspace_lab.workflows.supervisor import supervise

from .notebook_fixtures import ROOT, pid_gone, read_pid, write_notebook

PARAMS = 'plan: str\nalpha: int = 3\nratio: float = 0.5\nlabel = "x"  # untyped: anything goes\n'


@pytest.fixture
def nb(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "nb.ipynb", PARAMS, "print(plan, alpha)")


def refused(step: dict[str, Any]) -> StepDefinitionError:
    with pytest.raises(StepDefinitionError) as caught:
        check(step)
    return caught.value


def test_the_notebook_kind_is_registered_with_its_schema() -> None:
    kind = step_kinds()["notebook"]
    assert kind.check is check and kind.schema["required"] == ["notebook"]
    assert set(kind.schema["properties"]) == {"notebook", "parameters", "kernel", "cell_timeout_s", "outputs"}


def test_valid_parameters_pass_including_templates(nb: Path) -> None:
    check({"notebook": str(nb), "parameters": {"plan": "{{ steps.plan.outputs.text }}", "alpha": 4,
                                                "ratio": 1, "label": [1, 2]}})
    check({"notebook": str(nb), "parameters": {"plan": "p", "alpha": "{{ inputs.n }}"}})


def test_an_unknown_parameter_is_refused_by_name(nb: Path) -> None:
    error = refused({"notebook": str(nb), "parameters": {"plan": "p", "alhpa": 4}})
    assert error.field == "parameters.alhpa" and "unknown parameter 'alhpa'" in str(error)
    assert "alpha" in str(error)  # says what the notebook does declare


def test_a_missing_required_parameter_is_refused(nb: Path) -> None:
    error = refused({"notebook": str(nb), "parameters": {"alpha": 4}})
    assert error.field == "parameters.plan" and "required" in str(error)


def test_a_literal_of_the_wrong_type_is_refused(nb: Path) -> None:
    assert refused({"notebook": str(nb), "parameters": {"plan": "p", "alpha": "four"}}).field == "parameters.alpha"
    assert refused({"notebook": str(nb), "parameters": {"plan": "p", "alpha": True}}).field == "parameters.alpha"


def test_parameters_for_a_notebook_without_a_parameters_cell_are_refused(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "plain.ipynb", None, "print(1)")
    check({"notebook": str(path)})
    error = refused({"notebook": str(path), "parameters": {"x": 1}})
    assert error.field == "parameters.x" and "no cell tagged `parameters`" in str(error)


def test_a_missing_or_unreadable_notebook_or_kernel_is_refused(tmp_path: Path, nb: Path) -> None:
    assert refused({"notebook": str(tmp_path / "absent.ipynb")}).field == "notebook"
    assert refused({"notebook": str(tmp_path)}).field == "notebook"
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert refused({"notebook": str(tmp_path / "broken.ipynb")}).field == "notebook"
    assert refused({"notebook": str(nb), "parameters": {"plan": "p"}, "kernel": "no-such-kernel"}).field == "kernel"
    assert refused({"notebook": str(nb), "parameters": ["plan"]}).field == "parameters"


def test_run_refuses_an_invalid_step_before_starting_anything(nb: Path) -> None:
    """The notebook may have changed since the run was queued: run checks again."""
    from deepspace_lab.workflows.notebook import run

    async def never(*args: Any) -> Any:
        raise AssertionError("nothing to report or store")

    ctx = StepContext(run_id="r", step_id="s", attempt=1, org_id="o", project_id="p", trace_id="ab" * 16,
                      spec={"notebook": str(nb), "parameters": {"plan": "p", "gamma": 1}}, inputs={},
                      gateway_url="http://gw", api_key="dsk_x", deadline=None, cancelled=lambda: False,
                      progress=never, save_artifact=never)
    with pytest.raises(StepFailed) as caught:
        asyncio.run(run(ctx))
    assert (caught.value.code, caught.value.retryable, caught.value.detail) == (
        "invalid_step", False, {"field": "parameters.gamma"})


def test_the_example_notebook_declares_plan_as_required() -> None:
    example = str(ROOT / "examples" / "notebooks" / "execute.ipynb")
    check({"notebook": example, "parameters": {"plan": "1. look\n2. report", "max_steps": 2}})
    assert refused({"notebook": example, "parameters": {}}).field == "parameters.plan"


def test_the_kernel_environment_keeps_no_secret() -> None:
    base = {"PATH": "/usr/bin", "HOME": "/home/r", "LC_ALL": "C.UTF-8", "DEEPSPACE_DATABASE_URL": "postgresql://x",
            "DEEPSPACE_REDIS_URL": "redis://x", "DEEPSPACE_UPSTREAM_API_KEY": "sk-up", "DEEPSPACE_SECRET_KEY": "s",
            "DATABASE_URL": "postgresql://y", "AWS_SECRET_ACCESS_KEY": "a", "DEEPSPACE_TOKEN": "t",
            "DEEPSPACE_API_KEY": "dsk_someone_else"}
    env = kernel_env(base, gateway_url="http://gw", api_key="dsk_run", trace_id="ab" * 16,
                     idempotency_prefix="wf:r:s")
    assert env == {"PATH": "/usr/bin", "HOME": "/home/r", "LC_ALL": "C.UTF-8", "DEEPSPACE_GATEWAY_URL": "http://gw",
                   "DEEPSPACE_API_KEY": "dsk_run", "DEEPSPACE_TRACE_ID": "ab" * 16,
                   "DEEPSPACE_IDEMPOTENCY_PREFIX": "wf:r:s", "PYTHONUNBUFFERED": "1"}


def test_outputs_are_read_back_from_the_executed_notebook_a_later_one_winning() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={OUTPUT_MIME: {"name": "a", "value": 1}}),
                    nbformat.v4.new_output("stream", name="stdout", text="noise"),
                    nbformat.v4.new_output("display_data", data={OUTPUT_MIME: {"name": "a", "value": [2]}}),
                    nbformat.v4.new_output("display_data", data={OUTPUT_MIME: {"name": "b", "value": None}})]
    nb.cells = [nbformat.v4.new_markdown_cell("x"), cell]
    assert read_outputs(nb) == {"a": [2], "b": None}


def test_outputs_heavier_than_the_limit_fail_the_step(tmp_path: Path) -> None:
    from deepspace_lab.workflows.notebook import MAX_OUTPUTS_BYTES, _outcome
    from deepspace_lab.workflows.supervisor import Supervised

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={OUTPUT_MIME: {"name": "big",
                                                                               "value": "x" * MAX_OUTPUTS_BYTES}})]
    nb.cells = [cell]
    ctx = StepContext(run_id="r", step_id="s", attempt=1, org_id="o", project_id="p", trace_id="ab" * 16,
                      spec={}, inputs={}, gateway_url="http://gw", api_key="k", deadline=None,
                      cancelled=lambda: False, progress=None, save_artifact=None)  # type: ignore[arg-type]
    with pytest.raises(StepFailed) as caught:
        _outcome(ctx, tmp_path / "nb.ipynb", Supervised("ended", 0), nb, ["file_1"])
    assert caught.value.code == "notebook_outputs_too_large" and caught.value.detail["artifact"] == "file_1"


def test_workflow_output_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError, match="not JSON-encodable"):
        workflow_output("x", {1, 2})
    with pytest.raises(ValueError, match="output name"):
        workflow_output("", 1)


def test_a_traceback_is_short_and_without_ansi_codes() -> None:
    lines = ["\x1b[0;31m---------\x1b[0m", *[f"\x1b[1;32mframe {i}\x1b[0m" for i in range(40)],
             "\x1b[0;31mValueError\x1b[0m: bad"]
    text = short_traceback(lines)
    assert "\x1b" not in text and text.endswith("ValueError: bad") and "frame 0" not in text


def test_the_client_sends_the_trace_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": []})

    monkeypatch.setenv("DEEPSPACE_TRACE_ID", "0af7651916cd43dd8448eb211c80319c")
    with DeepSpaceClient(base_url="http://gw", api_key="dsk_x", transport=httpx.MockTransport(handler)) as client:
        client.models()
        client.models()
    parents = [r.headers["traceparent"].split("-") for r in seen]
    assert [p[1] for p in parents] == ["0af7651916cd43dd8448eb211c80319c"] * 2 and parents[0][2] != parents[1][2]
    monkeypatch.setenv("DEEPSPACE_TRACE_ID", "not-a-trace")
    with DeepSpaceClient(base_url="http://gw", api_key="dsk_x", transport=httpx.MockTransport(handler)) as client:
        client.models()
    assert "traceparent" not in seen[-1].headers


def test_the_client_numbers_its_chat_calls_under_the_idempotency_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(200, json={"object": "list", "data": []})

    prefix = f"wf:run-{time.monotonic_ns()}:step"
    monkeypatch.setenv("DEEPSPACE_IDEMPOTENCY_PREFIX", prefix)
    for _ in range(2):  # one count per process, across clients
        with DeepSpaceClient(base_url="http://gw", api_key="dsk_x", transport=httpx.MockTransport(handler)) as client:
            client.chat("m", [{"role": "user", "content": "hi"}])
            client.models()
    assert keys == [f"{prefix}:0", None, f"{prefix}:1", None]


# A child that starts a grandchild in a session of its own, as jupyter_client starts a kernel.
GRANDCHILD = "import os, sys, time; open(sys.argv[1], 'w').write(f'{os.getpid()}\\n'); time.sleep(600)"
TREE = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}, sys.argv[1]], start_new_session=True)
print('{{"event": "started"}}', flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("ending", ["cancelled", "timed_out"])
def test_the_supervisor_kills_a_grandchild_in_its_own_session(tmp_path: Path, ending: str) -> None:
    pid_file = tmp_path / "grandchild.pid"
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    async def main() -> Any:
        return await supervise(
            [sys.executable, "-c", TREE, str(pid_file)], env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path),
            stderr_path=tmp_path / "stderr.log", on_event=on_event, grace_s=1,
            cancelled=lambda: ending == "cancelled" and pid_file.exists(),
            deadline=lambda: time.monotonic() if ending == "timed_out" and pid_file.exists() else None)

    result = asyncio.run(main())
    grandchild = read_pid(pid_file)
    assert result.status == ending and result.returncode != 0 and events == [{"event": "started"}]
    assert pid_gone(grandchild)


def test_the_supervisor_reports_a_child_that_exits_with_its_stderr(tmp_path: Path) -> None:
    async def main() -> Any:
        async def ignore(event: dict[str, Any]) -> None:
            return None

        return await supervise(
            [sys.executable, "-c", "import sys; print('{\"event\": \"done\"}'); sys.exit('boom on stderr')"],
            env={}, cwd=str(tmp_path), stderr_path=tmp_path / "stderr.log", on_event=ignore,
            cancelled=lambda: False, deadline=lambda: None)

    result = asyncio.run(main())
    assert (result.status, result.returncode) == ("ended", 1)
    assert result.events == [{"event": "done"}] and "boom on stderr" in result.stderr_tail
    assert json.loads(json.dumps(result.events))
