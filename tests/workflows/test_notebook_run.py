"""The notebook step with a real kernel (each test starts one: ~2-4 s), a real in-process Gateway
for the notebook's model calls and the real files service for the stored notebook.

The run that calls the model runs on SQLite and PostgreSQL; the others, whose storage path is
the same, on SQLite only to keep kernels few."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from deepspace_lab.workflows.steps import StepFailed

from ..helpers import Gateway, count
from .notebook_fixtures import ROOT, Harness, make_harness, pid_gone, read_pid, run_step, write_notebook

pytestmark = pytest.mark.slow
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

# The kernel writes its pid, then works until it is stopped.
LOOPING = ("import os, time\nopen(pid_file, 'w').write(f'{os.getpid()}\\n')",
           "while True:\n    time.sleep(0.05)")


def failure(harness: Harness) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        run_step(harness)
    return caught.value


def test_the_example_notebook_calls_the_model_as_the_run_and_returns_its_outputs(gateway: Gateway) -> None:
    harness = make_harness(gateway, {"notebook": str(ROOT / "examples" / "notebooks" / "execute.ipynb"),
                                     "parameters": {"plan": "- gather sources\n- write a summary"},
                                     "outputs": ["results", "report"]})
    outcome = run_step(harness)

    results = outcome.outputs["results"]
    assert [r["step"] for r in results] == ["gather sources", "write a summary"]
    assert all(r["result"].startswith("[simulated]") for r in results)
    assert outcome.outputs["report"].startswith("gather sources: [simulated]")
    # both model calls went through the Gateway with the run's key, on the run's trace
    calls = [r for r in gateway.audit_rows() if r["path"] == "/deepspace/v1/chat/completions"]
    assert len(calls) == 2 and all(r["status_code"] == 200 for r in calls)
    assert {r["trace_id"] for r in calls} == {harness.ctx.trace_id}
    assert {r["api_key_id"] for r in calls} == {gateway.tenant.api_key_id}
    # the executed notebook is an artifact of the project, without the key in it
    (file_id,) = outcome.artifacts
    row, data = harness.artifact(file_id)
    assert (row["kind"], row["project_id"], row["trace_id"]) == ("artifact", gateway.tenant.project_id,
                                                                   harness.ctx.trace_id)
    assert row["name"] == "execute.execute.1.ipynb" and row["content_type"] == "application/x-ipynb+json"
    assert b"[simulated]" in data and gateway.tenant.api_key.encode() not in data
    # progress: each cell as it started (the injected parameters cell included)
    total = len(nbformat.reads(data.decode(), as_version=4).cells)
    assert [m for m, _ in harness.progress] == [f"cell {i} of {total}" for i in range(1, total + 1)]
    assert [f for _, f in harness.progress] == [i / total for i in range(total)]

    # a retried attempt makes the same calls: replayed under (run, step, call index), billed once
    harness.ctx.attempt = 2
    assert run_step(harness).outputs == outcome.outputs
    calls = [r for r in gateway.audit_rows() if r["path"] == "/deepspace/v1/chat/completions"]
    assert [bool(r["detail"].get("idempotent_replay")) for r in calls] == [False, False, True, True]
    assert count(gateway.db, "usage_records") == 2
    assert sorted(r["detail"]["idempotency_key"] for r in calls[2:]) == [harness.ctx.idempotency_key(i)
                                                                          for i in range(2)]


@sqlite_only
def test_a_notebook_that_raises_is_stored_and_its_error_shown(gateway: Gateway, tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "fails.ipynb", "x: int = 1", "y = x * 2", "raise ValueError(f'bad {y}')",
                          "print('never')")
    harness = make_harness(gateway, {"notebook": str(path), "parameters": {"x": 5}})
    error = failure(harness)

    assert error.code == "notebook_failed" and not error.retryable
    assert str(error) == "fails.ipynb failed: cell 3: ValueError: bad 10"
    detail = error.detail
    # cell 3 of the executed notebook: parameters, injected parameters, y = …, raise
    assert (detail["cell_index"], detail["ename"], detail["evalue"]) == (3, "ValueError", "bad 10")
    assert "\x1b" not in detail["traceback"] and "ValueError: bad 10" in detail["traceback"]
    row, data = harness.artifact(detail["artifact"])
    executed = nbformat.reads(data.decode(), as_version=4)
    assert row["kind"] == "artifact" and executed.metadata.papermill.exception is True
    assert "never" not in [o.get("text") for c in executed.cells for o in c.get("outputs", [])]


def stop_when_the_kernel_runs(harness: Harness, pid_file: Path, how: str) -> threading.Thread:
    def stop() -> None:
        read_pid(pid_file)
        if how == "cancel":
            harness.cancel = True
        else:
            harness.ctx.deadline = time.monotonic()

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


@sqlite_only
@pytest.mark.parametrize(("how", "code"), [("cancel", "cancelled"), ("deadline", "timed_out")])
def test_cancel_or_deadline_mid_notebook_kills_the_kernel(gateway: Gateway, tmp_path: Path, how: str,
                                                          code: str) -> None:
    """papermill has no whole-run timeout and no stop API, and its kernel is in a session of its own."""
    pid_file = tmp_path / "kernel.pid"
    path = write_notebook(tmp_path / "loops.ipynb", "pid_file = ''", *LOOPING)
    harness = make_harness(gateway, {"notebook": str(path), "parameters": {"pid_file": str(pid_file)}},
                           deadline=time.monotonic() + 600)
    thread = stop_when_the_kernel_runs(harness, pid_file, how)
    error = failure(harness)
    thread.join(5)

    assert error.code == code and error.retryable is (code == "timed_out")
    assert pid_gone(read_pid(pid_file))
    # what papermill had saved (the cells before the loop) is stored
    _, data = harness.artifact(error.detail["artifact"])
    assert "pid_file" in data.decode()


@sqlite_only
def test_the_kernel_environment_has_no_secret_and_has_the_run(gateway: Gateway, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    secrets: dict[str, Any] = {
        "DEEPSPACE_DATABASE_URL": "postgresql://u:pw@db/x", "DEEPSPACE_REDIS_URL": "redis://:pw@r/0",
        "DEEPSPACE_UPSTREAM_API_KEY": "sk-upstream", "DEEPSPACE_SECRET_KEY": "signing-secret",
        "DATABASE_URL": "postgresql://u:pw@db/y", "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "DEEPSPACE_TOKEN": "someone-elses-token"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    path = write_notebook(tmp_path / "env.ipynb", None, "import os\nfrom deepspace_lab.client import workflow_output",
                          "workflow_output('names', sorted(os.environ))\nworkflow_output('pid', os.getpid())",
                          "workflow_output('run', {k: v for k, v in os.environ.items() if k.startswith('DEEPSPACE_')})")
    harness = make_harness(gateway, {"notebook": str(path)})
    outcome = run_step(harness)

    assert not set(secrets) & set(outcome.outputs["names"])
    assert pid_gone(outcome.outputs["pid"])  # papermill shut its kernel down
    assert outcome.outputs["run"] == {"DEEPSPACE_GATEWAY_URL": gateway.url,
                                      "DEEPSPACE_API_KEY": gateway.tenant.api_key,
                                      "DEEPSPACE_TRACE_ID": harness.ctx.trace_id,
                                      "DEEPSPACE_IDEMPOTENCY_PREFIX": "wf:wfr_test:execute"}
    _, data = harness.artifact(outcome.artifacts[0])
    assert not [value for value in secrets.values() if value.encode() in data]
