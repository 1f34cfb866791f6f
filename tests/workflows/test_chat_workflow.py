"""A chat request (the product stream) that names a workflow runs it: progress as thoughts, the
result as the reply kept in the conversation, one trace, the request itself billed nothing; Stop
cancels the run; an unknown workflow or bad inputs are refused before anything starts."""

from __future__ import annotations

from typing import Any

import pytest

from deepspace_lab.client import DeepSpaceClient, DeepSpaceClientError

from ..helpers import Gateway, make_tenant
from .conftest import MODEL, Flows
from .test_engine_api import SOURCE as API_SOURCE

SOURCE = (API_SOURCE.replace("name: api-flow", "name: chat-flow")
          .replace("Write about {{ inputs.topic }}", "Write about {{ inputs.topic }} [sim:tokens=5]"))

#: a workflow that takes a chat message (its ``message`` input) and answers it in 3 words
ASK_SOURCE = f"""name: ask-flow
inputs:
  message: {{type: string}}
steps:
  - id: answer
    kind: llm
    model: {MODEL}
    prompt: "Answer {{{{ inputs.message }}}} [sim:tokens=3]"
"""


@pytest.fixture
def client(flows: Flows) -> Any:
    with DeepSpaceClient(base_url=flows.gw.url, api_key=flows.api_key("chat", "workflows"), timeout_s=30) as made:
        yield made


def usage_rows(gw: Gateway) -> list[dict[str, Any]]:
    from sqlalchemy import text

    with gw.db.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT request_id, trace_id, status, cost_micros FROM "
                                                   "usage_records ORDER BY created_at")).mappings()]


def test_a_chat_request_runs_the_workflow_and_is_not_billed_twice(flows: Flows, client: Any, worker: Any) -> None:
    client.save_workflow(SOURCE)
    before = client.wallet()["balance_micros"]
    conv = client.create_conversation()["id"]
    with client.stream_chat(conversation_id=conv, content="write about dunes", model=MODEL,
                            workflow={"name": "chat-flow", "inputs": {"topic": "dunes"}}) as stream:
        events = list(stream)
        request_id = stream.request_id
    thoughts = [e.data for e in events if e.event == "thought"]
    assert [t["event"] for t in thoughts][:1] == ["run.started"] and thoughts[-1]["event"] == "run.succeeded"
    assert {("step.started", "write"), ("step.succeeded", "write"), ("step.succeeded", "gate")} <= {
        (t["event"], t["step_id"]) for t in thoughts}
    run_id = thoughts[0]["workflow_run_id"]
    run = client.workflow_run(run_id)
    reply = "".join(e.data["content"] for e in events if e.event == "delta")
    assert run["state"] == "succeeded" and reply == run["steps"][1]["outputs"]["text"] and reply.startswith("[simul")
    assert [e.event for e in events[-3:]] == ["usage", "billing", "done"]
    bill, done = events[-2].data, events[-1].data
    assert done["trace_id"] == run["trace_id"] and done["cancelled"] is False and done["error_code"] is None
    rows = usage_rows(flows.gw)
    mine = next(r for r in rows if r["request_id"] == request_id)
    assert (mine["status"], mine["cost_micros"], bill["cost_micros"], bill["status"]) == ("released", 0, 0, "released")
    assert {r["trace_id"] for r in rows} == {run["trace_id"]}  # one trace: the chat request and the run's call
    assert before - client.wallet()["balance_micros"] == run["cost_micros"] > 0  # only the run's call was paid
    stored = client.conversation(conv)["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "write about dunes"), ("assistant", reply)]
    audit = flows.gw.audit_rows(request_id=request_id)
    assert audit[0]["detail"]["workflow_run_id"] == run_id


def test_stop_cancels_the_run_and_bad_requests_are_refused_before_it_starts(flows: Flows, client: Any) -> None:
    workflow = client.save_workflow(SOURCE)
    conv = client.create_conversation()["id"]
    # no worker runs: the run waits on its first step until the Stop cancels it
    with client.stream_chat(conversation_id=conv, content="go", model=MODEL,
                            workflow={"id": workflow["id"], "version": 1, "inputs": {"topic": "x"}}) as stream:
        seen = []
        for event in stream:
            seen.append(event)
            if event.event == "thought" and event.data["event"] == "run.started":
                client.cancel(stream.request_id)
    thoughts = [e.data["event"] for e in seen if e.event == "thought"]
    assert "run.cancelling" in thoughts and thoughts[-1] == "run.cancelled"
    assert seen[-1].data["cancelled"] is True and seen[-1].data["finish_reason"] == "cancelled"
    run = client.workflow_run(seen[0].data["workflow_run_id"])
    assert run["state"] == "cancelled"
    assert client.conversation(conv)["messages"][-1]["content"].endswith("cancelled.")

    def refused(key: str | None = None, **workflow: Any) -> DeepSpaceClientError:
        made = client if key is None else DeepSpaceClient(base_url=flows.gw.url, api_key=key)
        with pytest.raises(DeepSpaceClientError) as caught:
            list(made.stream_chat(conversation_id=conv, content="go", model=MODEL, workflow=workflow))
        return caught.value

    started = len(client.workflow_runs()["data"])
    error = refused(name="no-such-flow")
    assert (error.status, error.code, error.param) == (404, "workflow_not_found", "workflow.name")
    error = refused(id=workflow["id"], version=9)
    assert (error.code, error.param) == ("workflow_not_found", "workflow.version")
    error = refused(id=workflow["id"], inputs={"topic": "x", "extra": 1})
    assert (error.status, error.code, error.param) == (400, "invalid_workflow_inputs", "workflow.inputs.extra")
    error = refused(id=workflow["id"])  # `topic` has no default
    assert (error.code, error.param) == ("invalid_workflow_inputs", "workflow.inputs.topic")
    error = refused(id=workflow["id"], name="chat-flow")
    assert (error.code, error.param) == ("missing_field", "workflow.id")
    error = refused(flows.api_key("chat"), id=workflow["id"], inputs={"topic": "x"})  # no `workflows` scope
    assert (error.status, error.code) == (403, "permission_denied")
    other = DeepSpaceClient(base_url=flows.gw.url, api_key=make_tenant(
        flows.gw.settings, email="other@example.org", scopes=("chat", "workflows")).api_key)
    with pytest.raises(DeepSpaceClientError) as caught:  # another org's workflow is not found
        list(other.stream_chat(conversation_id=other.create_conversation()["id"], content="go", model=MODEL,
                               workflow={"id": workflow["id"], "inputs": {"topic": "x"}}))
    assert (caught.value.status, caught.value.code) == (404, "workflow_not_found")
    assert len(client.workflow_runs()["data"]) == started  # nothing started
    assert all(r["cost_micros"] == 0 for r in usage_rows(flows.gw))  # and nothing billed


def test_a_workflow_with_a_message_input_takes_the_chat_message(flows: Flows, client: Any, worker: Any) -> None:
    """A workflow declaring ``message`` gets the request's content there; an explicit
    ``inputs.message`` wins."""
    client.save_workflow(ASK_SOURCE)
    conv = client.create_conversation()["id"]
    for workflow, expected in (({"name": "ask-flow"}, "what is a tide"),
                               ({"name": "ask-flow", "inputs": {"message": "given"}}, "given")):
        with client.stream_chat(conversation_id=conv, content="what is a tide", model=MODEL,
                                workflow=workflow) as stream:
            thoughts = [e.data for e in stream if e.event == "thought"]
        run = client.workflow_run(thoughts[0]["workflow_run_id"])
        assert run["inputs"] == {"message": expected} and run["state"] == "succeeded"
