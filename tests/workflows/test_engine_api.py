"""The workflows product API through deepspace_lab.client: save (versions), invalid definitions
(field + line on the wire), start, read, events paged and streamed, resume, limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from deepspace_lab.client import DeepSpaceClient, InvalidRequestError, RateLimitedError

from .conftest import MODEL, Flows

SOURCE = f"""name: api-flow
inputs:
  topic: {{type: string}}
steps:
  - id: gate
    kind: verify
    assert: [{{value: "{{{{ inputs.topic }}}}", min_length: 1}}]
  - id: write
    kind: llm
    depends_on: [gate]
    model: {MODEL}
    prompt: "Write about {{{{ inputs.topic }}}}"
"""


@pytest.fixture
def client(flows: Flows) -> Any:
    with DeepSpaceClient(base_url=flows.gw.url, api_key=flows.api_key("chat", "workflows")) as made:
        yield made


def test_saving_twice_makes_versions_and_an_invalid_definition_names_field_and_line(client: Any) -> None:
    first = client.save_workflow(SOURCE)
    second = client.save_workflow(SOURCE.replace("Write about", "Write on"))
    assert (first["id"], first["latest_version"], second["latest_version"]) == (second["id"], 1, 2)
    assert [v["version"] for v in client.workflow(first["id"])["versions"]] == [2, 1]
    with pytest.raises(InvalidRequestError) as caught:
        client.save_workflow(SOURCE.replace("    depends_on: [gate]\n", "    depends_on: gate\n"))
    assert caught.value.code == "invalid_workflow" and caught.value.param == "steps[1].depends_on"
    assert "line 10" in caught.value.message
    assert client.workflow(first["id"])["latest_version"] == 2  # nothing half-written


def test_a_run_started_over_the_api_streams_its_events_and_resumes(flows: Flows, client: Any,
                                                                   start_worker: Any) -> None:
    no_gateway = start_worker(workflow_gateway_url=None)
    workflow = client.save_workflow(SOURCE)
    run = client.start_workflow(workflow["id"], {"topic": "dunes"})
    assert run["state"] == "running" and run["workflow_id"] == workflow["id"]
    failed = flows.wait(run["id"], "failed")
    assert [s["state"] for s in failed["steps"]] == ["succeeded", "failed"]
    assert failed["error_code"] == "workflow_gateway_unset"
    no_gateway.stop()
    start_worker()
    resumed = client.resume_workflow_run(run["id"])
    assert resumed["state"] == "running"
    with httpx.stream("GET", f"{flows.gw.url}/deepspace/api/workflow-runs/{run['id']}/events",
                      headers={"Authorization": f"Bearer {client.config.credentials.bearer()}",
                               "Accept": "text/event-stream"}, timeout=30) as response:
        names = [line.split(": ", 1)[1] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[-2:] == ["run.succeeded", "end"] and "run.resumed" in names
    done = client.workflow_run(run["id"])
    gate, write = done["steps"]
    assert gate["attempts"] == 1 and write["attempts"] == 2 and write["state"] == "succeeded"
    page = client.workflow_events(run["id"], after=0)
    assert [e["event"] for e in page["data"]][:2] == ["run.started", "step.queued"]
    assert client.workflow_events(run["id"], after=page["next_after"])["data"] == []
    assert [r["id"] for r in client.workflow_runs(state="succeeded")["data"]] == [run["id"]]
    key = flows.rows("SELECT COUNT(*) AS n FROM api_keys WHERE name = :n AND revoked_at IS NULL",
                     n=f"workflow run {run['id']}")
    assert key[0]["n"] == 0  # both generations of the run's key are revoked now it ended


def test_an_org_past_its_concurrent_runs_is_refused(flows: Flows, client: Any) -> None:
    flows.settings = flows.settings.replace(workflow_max_concurrent_runs=1)
    flows.start(SOURCE, {"topic": "a"})  # no worker: it stays running
    with pytest.raises(Exception) as caught:
        flows.start(SOURCE, {"topic": "b"})
    assert getattr(caught.value, "code", None) == "workflow_limit"
    workflow = client.save_workflow(SOURCE)
    with pytest.raises(RateLimitedError):  # the gateway's own setting: default 10, so fill it
        for topic in range(10):
            client.start_workflow(workflow["id"], {"topic": str(topic)})


def test_a_run_past_its_time_limit_fails(flows: Flows, start_worker: Any) -> None:
    start_worker(workflow_max_run_s=0.5)
    run = flows.start(SOURCE.replace("Write about", "[sim:delay_ms=1500] Write about"), {"topic": "x"})
    failed = flows.wait(run["id"], "failed")
    assert failed["error_code"] in ("run_time_exceeded", "step_timeout"), failed


def test_following_a_run_of_another_org_or_none_is_not_found(flows: Flows) -> None:
    from deepspace_lab.workflows import service
    from deepspace_lab.workflows.errors import WorkflowRunNotFoundError

    run = flows.start(SOURCE, {"topic": "x"})

    async def follow(engine: Any) -> None:
        for org_id, run_id in ((flows.gw.tenant.org_id, "wfr_none"), ("org_other", run["id"])):
            with pytest.raises(WorkflowRunNotFoundError):
                async for _ in service.follow_run(engine, org_id=org_id, run_id=run_id):
                    pass
        following = service.follow_run(engine, org_id=flows.gw.tenant.org_id, run_id=run["id"])
        try:
            events, state = await anext(following)
        finally:
            await following.aclose()
        assert state == "running" and events[0]["event"] == "run.started"

    flows.call(follow)
