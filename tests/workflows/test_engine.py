"""The workflow engine end to end on the simulated model: runs on a real Worker, both backends."""

from __future__ import annotations

from typing import Any

from deepspace_lab.jobs.worker import Worker

from .conftest import MODEL, Flows

THREE_STEPS = f"""
name: plan-execute-verify
inputs:
  topic: {{type: string}}
steps:
  - id: plan
    kind: llm
    model: {MODEL}
    prompt: "Plan a study of {{{{ inputs.topic }}}} [sim:tokens=6]"
  - id: execute
    kind: llm
    depends_on: [plan]
    model: {MODEL}
    prompt: "Carry out: {{{{ steps.plan.outputs.text }}}}"
  - id: check
    kind: verify
    depends_on: [execute]
    assert:
      - value: "{{{{ steps.execute.outputs.text }}}}"
        contains: "[simulated]"
      - value: "{{{{ steps.plan.outputs.usage.completion_tokens }}}}"
        equals: 6
"""


def test_a_three_step_run_finishes_with_outputs_cost_and_one_trace(flows: Flows, worker: Worker) -> None:
    run = flows.start(THREE_STEPS, {"topic": "comets"})
    done = flows.wait(run["id"], "succeeded", "failed")
    assert done["state"] == "succeeded", done
    steps: dict[str, Any] = {s["step_id"]: s for s in done["steps"]}
    assert [s["state"] for s in steps.values()] == ["succeeded"] * 3
    assert steps["plan"]["outputs"]["text"].startswith("[simulated]")
    assert steps["check"]["outputs"]["passed"] is True
    assert done["cost_micros"] == steps["plan"]["cost_micros"] + steps["execute"]["cost_micros"] > 0
    usage = flows.rows("SELECT trace_id, cost_micros FROM usage_records WHERE org_id = :o", o=flows.gw.tenant.org_id)
    assert len(usage) == 2 and {u["trace_id"] for u in usage} == {done["trace_id"]}
    assert sum(u["cost_micros"] for u in usage) == done["cost_micros"]
