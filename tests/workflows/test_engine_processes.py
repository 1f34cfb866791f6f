"""Real ``deepspace-lab worker`` processes: one killed (SIGKILL) mid-step, the run finishes on
another without the finished steps running again; and the ``workflow`` commands end to end."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from ..cli.conftest import CLI, Processes, clean_environ, run_cli
from ..helpers import TEST_SECRET
from .conftest import MODEL, Flows

pytestmark = pytest.mark.slow

FLOW = f"""
name: durable
inputs:
  topic: {{type: string, default: tides}}
steps:
  - id: quick
    kind: llm
    model: {MODEL}
    prompt: "Plan {{{{ inputs.topic }}}}"
  - id: slow
    kind: llm
    depends_on: [quick]
    model: {MODEL}
    prompt: "Work on {{{{ steps.quick.outputs.text }}}} [sim:delay_ms=2500]"
  - id: check
    kind: verify
    depends_on: [slow]
    assert:
      - value: "{{{{ steps.slow.outputs.text }}}}"
        regex: "^\\\\[simulated\\\\]"
"""


def worker_env(flows: Flows, tmp_path: Path) -> dict[str, str]:
    s = flows.settings
    extra = {"DEEPSPACE_REDIS_URL": s.redis_url} if s.redis_url else {}
    return clean_environ(DEEPSPACE_DATABASE_URL=s.database_url, DEEPSPACE_DATA_DIR=str(tmp_path / "data"),
                         DEEPSPACE_SECRET_KEY=TEST_SECRET, DEEPSPACE_WORKER_QUEUE=s.worker_queue,
                         DEEPSPACE_JOB_LEASE_S="2", DEEPSPACE_WORKFLOW_GATEWAY_URL=flows.gw.url,
                         DEEPSPACE_LOG_LEVEL="WARNING", **extra)


def start_worker_process(spawn: Processes, env: dict[str, str], name: str) -> Any:
    proc = spawn([CLI, "worker", "--threads", "2"], env, name=name)
    proc.wait_output(" ready: ", timeout=60)
    return proc


def step_starts(flows: Flows, run_id: str) -> dict[str, int]:
    rows = flows.rows("SELECT s.step_id, COUNT(e.id) AS n FROM step_runs s JOIN job_events e ON e.job_id = s.job_id "
                      "WHERE s.run_id = :r AND e.event = 'started' GROUP BY s.step_id", r=run_id)
    return {r["step_id"]: int(r["n"]) for r in rows}


def test_a_run_whose_worker_is_killed_mid_step_resumes_on_another(flows: Flows, spawn: Processes,
                                                                    tmp_path: Path) -> None:
    env = worker_env(flows, tmp_path)
    doomed = start_worker_process(spawn, env, "doomed")
    run = flows.start(FLOW)
    flows.wait_step(run["id"], "slow", "running")
    doomed.stop(signal.SIGKILL)
    start_worker_process(spawn, env, "survivor")
    done = flows.wait(run["id"], "succeeded", "failed", timeout_s=60)
    assert done["state"] == "succeeded", done
    quick, slow, check = done["steps"]
    assert quick["attempts"] == 1 and step_starts(flows, run["id"])["quick"] == 1  # never ran again
    assert slow["attempts"] == 2 and step_starts(flows, run["id"])["slow"] == 2
    assert check["attempts"] == 1
    captures = flows.rows("SELECT trace_id FROM transactions WHERE org_id = :o AND type = 'capture'",
                          o=flows.gw.tenant.org_id)
    assert len(captures) == 2 and {c["trace_id"] for c in captures} == {done["trace_id"]}  # each call paid once
    assert "step.started" in flows.events(run["id"])


def test_the_workflow_commands_validate_run_wait_status_fork_and_list(flows: Flows, spawn: Processes,
                                                                        tmp_path: Path) -> None:
    env = worker_env(flows, tmp_path)
    start_worker_process(spawn, env, "worker")
    email = flows.rows("SELECT email FROM users WHERE id = :u", u=flows.gw.tenant.user_id)[0]["email"]
    good = tmp_path / "flow.yaml"
    good.write_text(FLOW.replace(" [sim:delay_ms=2500]", ""))
    bad = tmp_path / "bad.yaml"
    bad.write_text(FLOW.replace("    kind: verify\n", "    kind: verify\n    retries: 3\n"))
    refused = run_cli(["workflow", "validate", str(bad)], env)
    assert refused.returncode == 2 and "steps[2].retries" in refused.stderr and "line 17" in refused.stderr
    assert json.loads(run_cli(["workflow", "validate", str(good), "--json"], env).stdout)["valid"] is True
    ran = run_cli(["workflow", "run", str(good), "-p", "topic", "reefs", "--email", email, "--wait", "--json"], env)
    assert ran.returncode == 0, ran.stderr
    run = json.loads(ran.stdout)
    assert run["state"] == "succeeded" and run["inputs"] == {"topic": "reefs"}
    status = json.loads(run_cli(["workflow", "status", run["id"], "--json"], env).stdout)
    assert [s["state"] for s in status["steps"]] == ["succeeded"] * 3
    forked = run_cli(["workflow", "fork", run["id"], "--from", "slow", "-p", "topic", "kelp", "--wait", "--json"], env)
    assert forked.returncode == 0, forked.stderr
    fork = json.loads(forked.stdout)
    assert fork["forked_from"] == run["id"] and fork["steps"][0]["reused_from"] is not None
    listed = json.loads(run_cli(["workflow", "list", "--json"], env).stdout)
    assert [r["id"] for r in listed] == [fork["id"], run["id"]]
    versions = flows.rows("SELECT version FROM workflow_versions")
    assert [v["version"] for v in versions] == [1]
    cancel = run_cli(["workflow", "cancel", run["id"], "--json"], env)
    assert cancel.returncode == 2 and json.loads(cancel.stdout)["error"]["code"] == "workflow_run_state"
