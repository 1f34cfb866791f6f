"""The workflow engine end to end on the simulated model: runs on a real Worker, both backends."""

from __future__ import annotations

import json
from typing import Any

import pytest

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


def _llm(step_id: str, prompt: str, *extra: str, deps: str = "") -> str:
    lines = [f"  - id: {step_id}", "    kind: llm", f"    model: {MODEL}", f"    prompt: \"{prompt}\""]
    if deps:
        lines.append(f"    depends_on: [{deps}]")
    return "\n".join([*lines, *(f"    {e}" for e in extra)]) + "\n"


def _flow(name: str, *steps: str) -> str:
    return f"name: {name}\nsteps:\n" + "".join(steps)


def _captures(flows: Flows) -> list[dict[str, Any]]:
    return flows.rows("SELECT trace_id, amount_micros FROM transactions WHERE org_id = :o AND type = 'capture'",
                      o=flows.gw.tenant.org_id)


def test_fork_from_a_step_reuses_the_earlier_steps_without_paying_again(flows: Flows, worker: Worker) -> None:
    source = ("name: forked\ninputs:\n  topic: {type: string}\nsteps:\n"
              + _llm("plan", "Plan {{ inputs.topic }}")
              + _llm("write", "Write about {{ inputs.topic }} after {{ steps.plan.outputs.text }}", deps="plan"))
    first = flows.wait(flows.start(source, {"topic": "moons"})["id"], "succeeded")
    assert len(_captures(flows)) == 2

    async def fork(engine: Any) -> dict[str, Any]:
        from deepspace_lab.workflows.engine import fork_run

        t = flows.gw.tenant
        return await fork_run(engine, flows.queue, flows.settings, org_id=t.org_id, run_id=first["id"],
                              from_step="write", inputs={"topic": "rings"}, trace_id="ab" * 16, user_id=t.user_id)

    forked = flows.wait(flows.call(fork)["id"], "succeeded")
    plan, write = forked["steps"]
    old_plan, old_write = first["steps"]
    assert plan["reused_from"] is not None and plan["outputs"] == old_plan["outputs"] and plan["attempts"] == 0
    assert plan["cost_micros"] == 0 and write["reused_from"] is None and write["attempts"] == 1
    assert "rings" in str(write["inputs"]) or write["outputs"]["text"] != old_write["outputs"]["text"]
    assert forked["forked_from"] == first["id"] and forked["inputs"] == {"topic": "rings"}
    assert len(_captures(flows)) == 3  # only the re-run step paid
    assert forked["cost_micros"] == write["cost_micros"] > 0


def test_a_step_past_its_timeout_fails_the_run(flows: Flows, worker: Worker) -> None:
    source = _flow("slow", _llm("slow", "[sim:delay_ms=4000]", "timeout_s: 0.5"), _llm("after", "x", deps="slow"))
    run = flows.wait(flows.start(source)["id"], "failed")
    slow, after = run["steps"]
    assert slow["state"] == "failed" and slow["error_code"] == "step_timeout" and slow["duration_s"] < 3
    assert after["state"] == "skipped"
    assert run["error_code"] == "step_timeout" and "slow" in run["error"]


def test_retries_back_off_then_the_on_failure_rule_decides(flows: Flows, worker: Worker) -> None:
    retry = "retry: {max_attempts: 3, backoff_s: 0.1, backoff_factor: 2, codes: [simulated_502, upstream_error]}"
    source = _flow("flaky",
                   _llm("broken", "[sim:error=502]", retry, "on_failure: {fallback: {text: fell back}}"),
                   _llm("skipme", "[sim:error=400]", "on_failure: continue"),
                   _llm("uses", "{{ steps.broken.outputs.text }}", deps="broken, skipme"))
    run = flows.wait(flows.start(source)["id"], "succeeded", "failed")
    assert run["state"] == "succeeded", run
    broken, skipme, uses = run["steps"]
    assert broken["attempts"] == 3 and broken["state"] == "succeeded" and broken["outputs"] == {"text": "fell back"}
    assert broken["error_code"] is not None
    retries = flows.rows("SELECT data FROM workflow_events WHERE run_id = :r AND event = 'step.retry' ORDER BY id",
                         r=run["id"])
    assert [r["data"]["wait_s"] for r in retries] == [0.1, 0.2]
    assert skipme["state"] == "failed" and skipme["attempts"] == 1  # no retry config: one attempt
    assert uses["state"] == "succeeded" and uses["inputs"] == {}
    assert "step.fallback" in flows.events(run["id"])


def test_a_retried_llm_step_is_billed_once(flows: Flows, worker: Worker) -> None:
    # the reply is no JSON: each attempt fails after its call; the retries replay the first call
    source = _flow("json", _llm("ask", "Give JSON", "response_format: json",
                                "retry: {max_attempts: 3, backoff_s: 0.05}"))
    run = flows.wait(flows.start(source)["id"], "failed")
    step = run["steps"][0]
    assert step["attempts"] == 3 and step["error_code"] == "invalid_json_reply"
    assert len(_captures(flows)) == 1
    assert len(flows.rows("SELECT id FROM usage_records WHERE org_id = :o", o=flows.gw.tenant.org_id)) == 1


def test_cancel_stops_the_running_step_and_the_rest(flows: Flows, worker: Worker) -> None:
    source = _flow("cancel-me", _llm("long", "[sim:delay_ms=8000]"), _llm("next", "x", deps="long"))
    run = flows.start(source)
    flows.wait_step(run["id"], "long", "running")

    async def cancel(engine: Any) -> dict[str, Any]:
        from deepspace_lab.workflows.engine import cancel_run

        return await cancel_run(engine, flows.queue, flows.settings, org_id=flows.gw.tenant.org_id, run_id=run["id"])

    assert flows.call(cancel)["state"] in ("cancelling", "cancelled")
    done = flows.wait(run["id"], "cancelled", timeout_s=6)
    assert [s["state"] for s in done["steps"]] == ["cancelled", "cancelled"]
    key = flows.rows("SELECT revoked_at FROM api_keys WHERE name = :n", n=f"workflow run {run['id']}")
    assert key[0]["revoked_at"] is not None


def test_budget_stops_the_run_before_the_next_step(flows: Flows, worker: Worker) -> None:
    source = _flow("thrifty", _llm("one", "a"), _llm("two", "b", deps="one"))
    run = flows.wait(flows.start(source, budget_micros=1)["id"], "failed")
    assert run["error_code"] == "budget_exceeded"
    assert [s["state"] for s in run["steps"]] == ["succeeded", "skipped"]
    assert len(_captures(flows)) == 1


def test_two_workers_on_one_backend_run_each_step_once(flows: Flows, start_worker: Any) -> None:
    start_worker(), start_worker()
    fan = "".join(f"  - id: v{i}\n    kind: verify\n    assert: [{{value: {i}, ge: 0}}]\n" for i in range(8))
    runs = [flows.start(f"name: fan\nsteps:\n{fan}")["id"] for _ in range(3)]
    for run_id in runs:
        assert flows.wait(run_id, "succeeded")["state"] == "succeeded"
    started = flows.rows("SELECT e.job_id FROM job_events e JOIN jobs j ON j.id = e.job_id "
                         "WHERE j.kind = 'workflow_step' AND e.event = 'started'")
    assert len(started) == 24 == len({r["job_id"] for r in started})
    attempts = flows.rows("SELECT attempts FROM step_runs")
    assert [a["attempts"] for a in attempts] == [1] * 24


def test_the_run_is_one_trace_across_audit_usage_and_ledger(flows: Flows, worker: Worker) -> None:
    run = flows.wait(flows.start(THREE_STEPS, {"topic": "tides"})["id"], "succeeded")
    org = flows.gw.tenant.org_id
    usage = flows.rows("SELECT trace_id FROM usage_records WHERE org_id = :o", o=org)
    ledger = flows.rows("SELECT trace_id FROM transactions WHERE org_id = :o AND type <> 'credit'", o=org)
    audit = flows.rows("SELECT trace_id FROM audit_logs WHERE org_id = :o", o=org)
    jobs = flows.rows("SELECT trace_id FROM jobs WHERE org_id = :o", o=org)
    assert len(usage) == 2 and len(ledger) >= 4 and len(audit) >= 2 and len(jobs) == 3
    assert {r["trace_id"] for r in usage + ledger + audit + jobs} == {run["trace_id"]}


def test_workflow_idempotency_keys_outlive_the_longest_run(flows: Flows, worker: Worker) -> None:
    run = flows.wait(flows.start(THREE_STEPS, {"topic": "tides"})["id"], "succeeded")
    keys = flows.rows("SELECT key, created_at, expires_at FROM idempotency_keys WHERE org_id = :o",
                      o=flows.gw.tenant.org_id)
    assert sorted(k["key"] for k in keys) == [f"wf:{run['id']}:execute:0", f"wf:{run['id']}:plan:0"]
    for key in keys:
        kept = _seconds(key["expires_at"]) - _seconds(key["created_at"])
        assert kept == pytest.approx(24 * 3600 + flows.settings.workflow_max_run_s, abs=5)


def _seconds(value: Any) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(value) if isinstance(value, str) else value).timestamp()


def test_cancelling_a_run_no_worker_has_taken_ends_it_at_once(flows: Flows) -> None:
    run = flows.start(_flow("idle", _llm("a", "x"), _llm("b", "y", deps="a")))

    async def cancel(engine: Any) -> dict[str, Any]:
        from deepspace_lab.workflows.engine import cancel_run

        return await cancel_run(engine, flows.queue, flows.settings, org_id=flows.gw.tenant.org_id, run_id=run["id"])

    assert flows.call(cancel)["state"] == "cancelled"
    assert [s["state"] for s in flows.get(run["id"])["steps"]] == ["cancelled", "cancelled"]


def test_a_verify_judge_asks_the_model_through_the_gateway(flows: Flows, worker: Worker) -> None:
    judge = ("  - id: judged\n    kind: verify\n    depends_on: [draft]\n    assert:\n"
             "      - value: \"{{ steps.draft.outputs.text }}\"\n"
             f"        judge: {{model: {MODEL}, criteria: is it a draft, pass_if: '^\\[simulated\\]'}}\n"
             "      - value: \"{{ steps.draft.outputs.text }}\"\n"
             f"        judge: {{model: {MODEL}, criteria: is it final}}\n")
    run = flows.wait(flows.start(_flow("judge", _llm("draft", "Draft it"), judge))["id"], "failed")
    draft, judged = run["steps"]
    assert judged["error_code"] == "verification_failed"
    results = judged["error_detail"]["results"]
    assert [r["passed"] for r in results] == [True, False] and results[1]["failed"] == ["judge"]
    assert all(r["judge"].startswith("[simulated]") for r in results)
    usage = flows.rows("SELECT cost_micros, trace_id FROM usage_records WHERE org_id = :o", o=flows.gw.tenant.org_id)
    assert len(usage) == 3 and {u["trace_id"] for u in usage} == {run["trace_id"]}  # draft + two judge calls
    assert run["cost_micros"] == sum(u["cost_micros"] for u in usage) and judged["cost_micros"] > 0


def test_a_job_queued_before_a_cancel_and_resume_leaves_the_step_to_the_new_job(flows: Flows,
                                                                                start_worker: Any) -> None:
    """No worker runs while the run is started, cancelled and resumed: step a's first job (queued
    before the cancel) is still in the queue when a worker starts, next to the job the resume
    queued. The old job finds the step is another job's and touches nothing; the new one runs it
    once, and the run succeeds with every step run (it once ended succeeded with its steps
    cancelled, when the old job cancelled the resumed step)."""
    run = flows.start(_flow("stale", _llm("a", "x"), _llm("b", "y", deps="a")))

    async def cancel_then_resume(engine: Any) -> dict[str, Any]:
        from deepspace_lab.workflows.engine import cancel_run, resume_run

        org = flows.gw.tenant.org_id
        assert (await cancel_run(engine, flows.queue, flows.settings, org_id=org, run_id=run["id"]))[
            "state"] == "cancelled"
        return await resume_run(engine, flows.queue, flows.settings, org_id=org, run_id=run["id"])

    assert flows.call(cancel_then_resume)["state"] == "running"
    start_worker()
    done = flows.wait(run["id"], "succeeded", "failed", "cancelled")
    assert done["state"] == "succeeded"
    assert [(s["step_id"], s["state"], s["attempts"]) for s in done["steps"]] == [
        ("a", "succeeded", 1), ("b", "succeeded", 1)]
    jobs = flows.rows("SELECT id, state, result FROM jobs WHERE kind = 'workflow_step' ORDER BY created_at, id")
    assert len(jobs) == 3  # a (before the cancel), a (the resume's), b
    results = [json.loads(j["result"]) if isinstance(j["result"], str) else j["result"] for j in jobs]
    assert sum(1 for r in results if r and r.get("state") == "superseded") == 1
    assert len(flows.rows("SELECT id FROM usage_records WHERE org_id = :o", o=flows.gw.tenant.org_id)) == 2
