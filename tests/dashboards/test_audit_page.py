"""The Audit page on the Admin API: a billed request's trace drawn as a timeline (and a workflow
run's, with its steps), refusals under the trace field by their codes, and the request log
searched with filters, a row opening its trace; an org admin sees their own org's only."""

from __future__ import annotations

import secrets

from sqlalchemy import insert

from deepspace_lab.audit.models import AuditLog
from deepspace_lab.dashboards import Text
from deepspace_lab.dashboards.pages import AuditPage
from deepspace_lab.dashboards.timeline import timeline_rows
from deepspace_lab.db.base import utcnow
from deepspace_lab.workflows.models import StepRun, WorkflowRun

from ..admin.conftest import AdminWorld
from .conftest import MODEL, run, signed_in, traced_chat
from .test_components import until


def test_a_requests_trace_is_a_timeline_and_the_log_finds_it(admin_world: AdminWorld) -> None:
    w = admin_world
    trace = traced_chat(w, w.a.people["member"].key)

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.platform.email) as session:
            page = AuditPage(session.client, text=Text("en"), identity=session.identity)
            page.trace_id.value = "not a trace!"
            assert await page.lookup.send() is None and page.lookup.last_error == ("invalid_trace_id", "trace_id")
            page.trace_id.value = "0" * 32
            assert await page.lookup.send() is None and page.lookup.last_error == ("trace_not_found", "trace_id")
            assert page.lookup.field_errors["trace_id"].visible
            page.trace_id.value = f" {trace} "
            answer = await page.lookup.send()
            assert answer is not None and answer["trace_id"] == trace
            assert not page.lookup.done.visible  # the timeline is the answer: no "saved"
            lanes = [r["lane"] for r in page.rows]
            assert {"audit", "usage", "hold", "transaction"} <= set(lanes)
            assert [r["offset_ms"] for r in page.rows] == sorted(r["offset_ms"] for r in page.rows)
            assert page.rows[0]["offset_ms"] == 0
            drawn = page.timeline.objects[2].object
            assert "POST /deepspace/v1/chat/completions → 200" in drawn and "capture" in drawn
            assert f"{MODEL}: " in drawn and "tokens" in drawn
            await page.load()
            page.log.filters["path"].value = "/deepspace/v1/chat"
            page.log.filters["status_code"].value = "200"
            await until(lambda: bool(page.log.rows) and all(r["status_code"] == 200 for r in page.log.rows))
            assert [r["trace_id"] for r in page.log.rows] == [trace]
            page.log.filters["status_code"].value = "two hundred"
            await until(lambda: page.log.alert.visible)
            assert page.log.error is not None and "invalid" in page.log.error
            page.trace_id.value = ""
            page.focus("log")
            await page.open_trace(trace)  # what clicking the row does
            assert page.tabs.active == 0 and page.trace_id.value == trace and page.items == answer["items"]

        async with signed_in(w.gw.url, w.b.people["admin"].email) as other:
            page = AuditPage(other.client, text=Text("zh"), identity=other.identity)
            assert "org_id" not in page.log.filters
            page.trace_id.value = trace  # org a's request
            assert await page.lookup.send() is None and page.lookup.last_error == ("trace_not_found", "trace_id")
            assert "没有记录带有此链路 ID" in page.lookup.field_errors["trace_id"].object
            await page.load()
            assert trace not in {r["trace_id"] for r in page.log.rows}

    run(scenario)


def test_a_workflow_runs_trace_shows_the_run_and_its_steps(admin_world: AdminWorld) -> None:
    w = admin_world
    trace, org, at = secrets.token_hex(16), w.a, utcnow()
    run_id = "wfr_" + secrets.token_hex(8)
    person = org.people["member"]
    with w.gw.db.begin() as conn:
        conn.execute(insert(WorkflowRun), [{
            "id": run_id, "org_id": org.id, "project_id": org.project_id, "name": "plan-execute",
            "definition": {"steps": ["secret plan"]}, "inputs": {"topic": "private words"}, "state": "succeeded",
            "trace_id": trace, "user_id": person.user_id, "cost_micros": 1_500, "created_at": at,
            "started_at": at, "finished_at": at}])
        conn.execute(insert(StepRun), [{
            "id": f"wfs_{secrets.token_hex(8)}", "run_id": run_id, "org_id": org.id, "step_id": step, "kind": kind,
            "position": i, "state": "succeeded", "inputs": {"prompt": "private words"}, "outputs": {"text": "answer"},
            "created_at": at, "started_at": at, "finished_at": at} for i, (step, kind) in
            enumerate((("plan", "llm"), ("check", "verify")))])
        conn.execute(insert(AuditLog), [{"trace_id": trace, "request_id": "req_wf_1", "kind": "gateway.request",
                                         "org_id": org.id, "method": "POST", "path": "/deepspace/v1/chat/completions",
                                         "status_code": 200, "created_at": at}])

    async def scenario() -> None:
        async with signed_in(w.gw.url, w.a.people["admin"].email) as session:
            page = AuditPage(session.client, text=Text("en"), identity=session.identity)
            page.trace_id.value = trace
            assert await page.lookup.send() is not None
            summaries = [r["summary"] for r in page.rows]
            assert "workflow run plan-execute: succeeded, 0.0015 credits" in summaries
            assert "step plan (llm): succeeded" in summaries and "step check (verify): succeeded" in summaries
            assert "private words" not in str(page.items) and "secret plan" not in str(page.items)
        async with signed_in(w.gw.url, w.b.people["admin"].email) as other:
            page = AuditPage(other.client, text=Text("en"), identity=other.identity)
            page.trace_id.value = trace
            assert await page.lookup.send() is None  # another org's run is not there at all

    run(scenario)


def test_timeline_rows_measure_from_the_first_item() -> None:
    items = [{"type": "audit", "at": "2026-12-01T10:00:00+00:00", "id": "1",
              "data": {"method": "POST", "path": "/x", "status_code": 402, "error_code": "insufficient_funds"}},
             {"type": "job", "at": "2026-12-01T10:00:00.250000+00:00", "id": "job_1",
              "data": {"kind": "export", "state": "done", "started_at": "2026-12-01T10:00:01+00:00",
                       "finished_at": "2026-12-01T10:00:03+00:00"}}]
    rows = timeline_rows(items)
    assert [(r["offset_ms"], r["end_ms"]) for r in rows] == [(0.0, None), (1000.0, 3000.0)]
    assert rows[0]["summary"] == "POST /x → 402 insufficient_funds" and rows[1]["summary"] == "job export: done"
    assert timeline_rows([]) == []
