"""The product API's calls, shared by the sync and the async client."""

from __future__ import annotations

from typing import Any

from ._base import API, V1, Call
from ._money import ADMIN


def me() -> Call:
    return Call("GET", API + "/me")


def orgs() -> Call:
    return Call("GET", API + "/orgs")


def projects() -> Call:
    return Call("GET", API + "/projects")


def create_project(name: str) -> Call:
    return Call("POST", API + "/projects", json={"name": name})


def keys() -> Call:
    return Call("GET", API + "/keys")


def create_key(*, name: str | None, scopes: list[str] | None, project_id: str | None,
               expires_at: str | None) -> Call:
    body = {k: v for k, v in (("name", name), ("scopes", scopes), ("project_id", project_id),
                              ("expires_at", expires_at)) if v is not None}
    return Call("POST", API + "/keys", json=body)


def revoke_key(key_id: str) -> Call:
    return Call("DELETE", f"{API}/keys/{key_id}")


def conversations(*, limit: int | None, cursor: str | None) -> Call:
    return Call("GET", API + "/conversations", params={"limit": limit, "cursor": cursor})


def create_conversation(title: str) -> Call:
    return Call("POST", API + "/conversations", json={"title": title})


def conversation(conversation_id: str) -> Call:
    return Call("GET", f"{API}/conversations/{conversation_id}")


def rename_conversation(conversation_id: str, title: str) -> Call:
    return Call("PATCH", f"{API}/conversations/{conversation_id}", json={"title": title})


def delete_conversation(conversation_id: str) -> Call:
    return Call("DELETE", f"{API}/conversations/{conversation_id}")


def wallet() -> Call:
    return Call("GET", API + "/wallet")


def transactions(*, limit: int | None, cursor: str | None) -> Call:
    return Call("GET", API + "/wallet/transactions", params={"limit": limit, "cursor": cursor})


def usage(filters: dict[str, Any]) -> Call:
    return Call("GET", API + "/usage", params=filters)


def usage_summary(*, group_by: str, since: str | None, until: str | None) -> Call:
    return Call("GET", API + "/usage/summary", params={"group_by": group_by, "since": since, "until": until})


def limits() -> Call:
    return Call("GET", API + "/limits")


def models() -> Call:
    return Call("GET", V1 + "/models")


def health() -> Call:
    return Call("GET", API + "/health", auth=False)


def ready() -> Call:
    return Call("GET", API + "/health/ready", auth=False)


def job(job_id: str) -> Call:
    return Call("GET", f"{API}/jobs/{job_id}")


def admin_permissions() -> Call:
    return Call("GET", ADMIN + "/permissions")


def login(email: str, password: str) -> Call:
    return Call("POST", API + "/auth/login", json={"email": email, "password": password}, auth=False)


def logout() -> Call:
    return Call("POST", API + "/auth/logout")


def cancel(request_id: str) -> Call:
    return Call("POST", f"{API}/chat/{request_id}/cancel")


def product_stream(body: dict[str, Any]) -> Call:
    return Call("POST", API + "/chat/stream", json=body, headers={"Accept": "text/event-stream"})


def estimate(body: dict[str, Any]) -> Call:
    return Call("POST", API + "/chat/estimate", json=body)


# -- workflows -------------------------------------------------------------------------------------
WF, RUNS = API + "/workflows", API + "/workflow-runs"


def save_workflow(source: str) -> Call:
    return Call("POST", WF, json={"source": source})


def workflows(project_id: str | None = None) -> Call:
    return Call("GET", WF, params={"project_id": project_id})


def workflow(workflow_id: str) -> Call:
    return Call("GET", f"{WF}/{workflow_id}")


def workflow_version(workflow_id: str, version: int) -> Call:
    return Call("GET", f"{WF}/{workflow_id}/versions/{int(version)}")


def start_workflow(workflow_id: str, *, inputs: dict[str, Any] | None, version: int | None,
                   budget_micros: int | None) -> Call:
    body = {k: v for k, v in (("workflow_id", workflow_id), ("inputs", inputs), ("version", version),
                              ("budget_micros", budget_micros)) if v is not None}
    return Call("POST", RUNS, json=body)


def workflow_runs(**filters: Any) -> Call:
    return Call("GET", RUNS, params=filters)


def workflow_run(run_id: str, action: str | None = None, body: dict[str, Any] | None = None) -> Call:
    if action is None:
        return Call("GET", f"{RUNS}/{run_id}")
    return Call("POST", f"{RUNS}/{run_id}/{action}", json=body)


def workflow_events(run_id: str, *, after: int, limit: int | None = None) -> Call:
    return Call("GET", f"{RUNS}/{run_id}/events", params={"after": after, "limit": limit})
