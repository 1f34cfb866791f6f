"""No way across tenants: org B gets 404 for org A's objects on every route.

The walk test makes a new route fail until it has a case here (or a stated exemption).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from deepspace_lab.billing.ledger import credit_wallet
from deepspace_lab.billing.models import UsageRecord
from deepspace_lab.db import make_async_engine, make_sessionmaker
from deepspace_lab.policy.service import set_policy
from deepspace_lab.server_extension.openapi import openapi_document

from ._accounts_tenancy import ACCOUNTS_CASES
from ._money_tenancy import MONEY_CASES, MONEY_EXEMPT
from .conftest import World

MODEL = "deepspace-simulated-chat"


def _a_conversation(world: World) -> str:
    response = world.call("POST", "/conversations", key=world.a.people["owner"].key, json={"title": "secret"})
    return str(response.json()["id"])


def _a_project(world: World) -> str:
    return str(world.call("POST", "/projects", key=world.a.people["owner"].key, json={"name": "hidden"}).json()["id"])


def _b(world: World) -> str:
    return world.b.people["owner"].key


def chat_with_foreign_conversation(world: World) -> None:
    conv = _a_conversation(world)
    response = world.call("POST", "/deepspace/v1/chat/completions", key=_b(world),
                          json={"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                                "conversation_id": conv})
    assert response.status_code == 404
    detail = world.call("GET", f"/conversations/{conv}", key=world.a.people["owner"].key).json()
    assert detail["messages"] == []


def product_stream_with_foreign_conversation(world: World) -> None:
    conv = _a_conversation(world)
    response = world.call("POST", "/chat/stream", key=_b(world),
                          json={"model": MODEL, "content": "x", "conversation_id": conv})
    assert response.status_code == 404 and response.json()["error"]["code"] == "conversation_not_found"
    detail = world.call("GET", f"/conversations/{conv}", key=world.a.people["owner"].key).json()
    assert detail["messages"] == []


def estimate_with_foreign_conversation(world: World) -> None:
    conv = _a_conversation(world)
    response = world.call("POST", "/chat/estimate", key=_b(world),
                          json={"model": MODEL, "content": "x", "conversation_id": conv})
    assert response.status_code == 404 and response.json()["error"]["code"] == "conversation_not_found"


def cancel_foreign_stream(world: World) -> None:
    """Org B cannot stop org A's running stream (nor tell it exists)."""
    import httpx

    conv = _a_conversation(world)
    body = {"model": MODEL, "content": "x [sim:tokens=40] [sim:token_latency_ms=10]", "conversation_id": conv}
    headers = {"Authorization": f"Bearer {world.a.people['owner'].key}"}
    with httpx.stream("POST", world.gw.url + "/deepspace/api/chat/stream", json=body, headers=headers,
                      timeout=20) as stream:
        request_id = stream.headers["X-Request-Id"]
        refused = world.call("POST", f"/chat/{request_id}/cancel", key=_b(world))
        text = stream.read().decode()
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "stream_not_found"
    assert '"cancelled":false' in text and text.count("event: delta") == 40


def me_shows_only_own(world: World) -> None:
    me = world.call("GET", "/me", key=_b(world)).json()
    assert me["org_id"] == world.b.id and [o["id"] for o in me["orgs"]] == [world.b.id]


def orgs_lists_only_own(world: World) -> None:
    assert [o["id"] for o in world.call("GET", "/orgs", key=_b(world)).json()["data"]] == [world.b.id]


def members_lists_only_own(world: World) -> None:
    emails = {m["email"] for m in world.call("GET", "/members", key=_b(world)).json()["data"]}
    assert emails and all(e.endswith("-b@example.org") for e in emails)


def member_change_foreign(world: World) -> None:
    target = world.a.people["member"].user_id
    assert world.call("PATCH", f"/members/{target}", key=_b(world), json={"role": "admin"}).status_code == 404
    assert world.call("DELETE", f"/members/{target}", key=_b(world)).status_code == 404
    roles = {m["user_id"]: m["role"] for m in world.call("GET", "/members", key=world.a.people["owner"].key)
             .json()["data"]}
    assert roles[target] == "member"


def projects_list_only_own(world: World) -> None:
    _a_project(world)
    ids = {p["id"] for p in world.call("GET", "/projects", key=_b(world)).json()["data"]}
    assert ids == {world.b.project_id}


def project_create_lands_in_own_org(world: World) -> None:
    created = world.call("POST", "/projects", key=_b(world), json={"name": "mine"}).json()
    assert created["org_id"] == world.b.id


def project_foreign(world: World) -> None:
    project = _a_project(world)
    b = _b(world)
    assert world.call("GET", f"/projects/{project}", key=b).status_code == 404
    assert world.call("PATCH", f"/projects/{project}", key=b, json={"name": "pwned"}).status_code == 404
    assert world.call("DELETE", f"/projects/{project}", key=b).status_code == 404
    assert world.call("GET", f"/projects/{project}", key=world.a.people["owner"].key).json()["name"] == "hidden"


def keys_list_only_own(world: World) -> None:
    ids = {k["id"] for k in world.call("GET", "/keys", key=_b(world)).json()["data"]}
    assert ids and not ids & {p.key_id for p in world.a.people.values()}


def key_create_cannot_target_foreign_project(world: World) -> None:
    response = world.call("POST", "/keys", key=_b(world), json={"project_id": world.a.project_id})
    assert response.status_code == 404


def key_revoke_foreign(world: World) -> None:
    victim = world.a.people["member"]
    assert world.call("DELETE", f"/keys/{victim.key_id}", key=_b(world)).status_code == 404
    assert world.call("GET", "/me", key=victim.key).status_code == 200


def conversations_list_only_own(world: World) -> None:
    _a_conversation(world)
    assert world.call("GET", "/conversations", key=_b(world)).json()["data"] == []


def conversation_create_lands_in_own_project(world: World) -> None:
    created = world.call("POST", "/conversations", key=_b(world), json={}).json()
    assert created["project_id"] == world.b.project_id


def conversation_foreign(world: World) -> None:
    conv = _a_conversation(world)
    b = _b(world)
    assert world.call("GET", f"/conversations/{conv}", key=b).status_code == 404
    assert world.call("PATCH", f"/conversations/{conv}", key=b, json={"title": "pwned"}).status_code == 404
    assert world.call("DELETE", f"/conversations/{conv}", key=b).status_code == 404
    assert world.call("GET", f"/conversations/{conv}", key=world.a.people["owner"].key).json()["title"] == "secret"


def wallet_is_own(world: World) -> None:
    assert world.call("GET", "/wallet", key=_b(world)).json()["org_id"] == world.b.id


def transactions_are_own(world: World) -> None:
    async def top_up_a() -> None:
        engine = make_async_engine(world.gw.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                await credit_wallet(session, org_id=world.a.id, amount_micros=5_000_000, reason="grant", actor="test",
                             ref="tenancy-credit")
        finally:
            await engine.dispose()

    asyncio.run(top_up_a())
    refs_b = [e["ref"] for e in world.call("GET", "/wallet/transactions", key=_b(world)).json()["data"]]
    refs_a = [e["ref"] for e in world.call("GET", "/wallet/transactions", key=world.a.people["owner"].key
                                           ).json()["data"]]
    assert "tenancy-credit" in refs_a and "tenancy-credit" not in refs_b


def usage_is_own(world: World) -> None:
    with Session(world.gw.db) as session:
        session.add(UsageRecord(request_id="req_tenancy_a", trace_id="a" * 32, org_id=world.a.id,
                                project_id=world.a.project_id, api_key_id=world.a.people["owner"].key_id,
                                model=MODEL, cost_micros=42, measured="upstream"))
        session.commit()
    b = _b(world)
    assert world.call("GET", "/usage", key=b).json()["data"] == []
    for name, value in (("project_id", world.a.project_id), ("api_key_id", world.a.people["owner"].key_id)):
        assert world.call("GET", "/usage", key=b, params={name: value}).json()["data"] == []
    mine = world.call("GET", "/usage", key=world.a.people["viewer"].key).json()["data"]
    assert [r["request_id"] for r in mine] == ["req_tenancy_a"]


def limits_are_own(world: World) -> None:
    async def limit_a() -> None:
        engine = make_async_engine(world.gw.settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                await set_policy(session, kind="rate_limit", scope="org", scope_id=world.a.id,
                                 spec={"rpm": 7}, actor="test")
                await set_policy(session, kind="model_policy", scope="org", scope_id=world.a.id,
                                 spec={"allow": [MODEL]}, actor="test")
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(limit_a())
    mine = world.call("GET", "/limits", key=world.a.people["viewer"].key).json()
    assert [r["max"] for r in mine["rate_limits"]] == [7] and mine["allowed_models"] == [MODEL]
    theirs = world.call("GET", "/limits", key=_b(world)).json()
    assert theirs["rate_limits"] == [] and theirs["allowed_models"] is None


def _a_file(world: World) -> str:
    response = world.call("POST", "/files", key=world.a.people["owner"].key, params={"name": "secret.txt"},
                          content=b"org a only", headers={"Content-Type": "text/plain"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _a_job(world: World) -> str:
    response = world.call("POST", "/exports", key=world.a.people["owner"].key, json={"dataset": "usage"})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def jobs_list_only_own(world: World) -> None:
    job = _a_job(world)
    assert world.call("GET", "/jobs", key=_b(world)).json()["data"] == []
    assert [j["id"] for j in world.call("GET", "/jobs", key=world.a.people["viewer"].key).json()["data"]] == [job]


def job_foreign(world: World) -> None:
    job = _a_job(world)
    assert world.call("GET", f"/jobs/{job}", key=_b(world)).status_code == 404
    assert world.call("GET", f"/jobs/{job}", key=world.a.people["viewer"].key).json()["id"] == job


def export_cannot_target_foreign_project(world: World) -> None:
    response = world.call("POST", "/exports", key=_b(world), json={"dataset": "usage",
                                                                    "project_id": world.a.project_id})
    assert response.status_code == 404
    mine = world.call("POST", "/exports", key=_b(world), json={"dataset": "usage"}).json()
    assert world.call("GET", f"/jobs/{mine['id']}", key=world.a.people["owner"].key).status_code == 404
    assert mine["project_id"] == world.b.project_id


def statement_lands_in_own_org(world: World) -> None:
    job = world.call("POST", "/statements", key=_b(world), json={"month": "2026-11"}).json()
    assert world.call("GET", f"/jobs/{job['id']}", key=_b(world)).json()["kind"] == "statement"
    assert world.call("GET", f"/jobs/{job['id']}", key=world.a.people["owner"].key).status_code == 404


def usage_summary_is_own(world: World) -> None:
    from datetime import UTC, datetime, timedelta

    from deepspace_lab.billing.models import UsageRollup

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    with Session(world.gw.db) as session:
        session.add(UsageRollup(period="hour", period_start=hour, org_id=world.a.id, project_id=world.a.project_id,
                                model=MODEL, requests=3, prompt_tokens=30, completion_tokens=9, cost_micros=77))
        session.commit()
    theirs = world.call("GET", "/usage/summary", key=_b(world), params={"group_by": "model"}).json()
    assert theirs["data"] == []
    mine = world.call("GET", "/usage/summary", key=world.a.people["viewer"].key, params={"group_by": "model"}).json()
    assert [(r["key"], r["cost_micros"]) for r in mine["data"]] == [(MODEL, 77)]


def file_upload_lands_in_own_org(world: World) -> None:
    mine = world.call("POST", "/files", key=_b(world), params={"name": "b.txt"}, content=b"b",
                      headers={"Content-Type": "text/plain"}).json()
    assert mine["project_id"] == world.b.project_id
    assert world.call("GET", "/files", key=world.a.people["owner"].key).json()["data"] == []


def files_list_only_own(world: World) -> None:
    _a_file(world)
    assert world.call("GET", "/files", key=_b(world)).json()["data"] == []
    assert world.call("GET", "/files", key=_b(world), params={"project_id": world.a.project_id}).json()["data"] == []


def file_foreign(world: World) -> None:
    file_id = _a_file(world)
    b = _b(world)
    assert world.call("GET", f"/files/{file_id}", key=b).status_code == 404
    assert world.call("GET", f"/files/{file_id}/content", key=b).status_code == 404
    assert world.call("DELETE", f"/files/{file_id}", key=b).status_code == 404
    assert world.call("GET", f"/files/{file_id}/content", key=world.a.people["viewer"].key).content == b"org a only"


WORKFLOW = "name: w\nsteps:\n  - id: v\n    kind: verify\n    assert: [{value: 1, equals: 1}]\n"


def _a_workflow(world: World) -> str:
    response = world.call("POST", "/workflows", key=world.a.people["owner"].key, json={"source": WORKFLOW})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _a_run(world: World) -> str:
    response = world.call("POST", "/workflow-runs", key=world.a.people["owner"].key,
                          json={"workflow_id": _a_workflow(world)})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def workflows_are_own(world: World) -> None:
    workflow = _a_workflow(world)
    b = _b(world)
    assert world.call("GET", "/workflows", key=b).json()["data"] == []
    assert world.call("GET", f"/workflows/{workflow}", key=b).status_code == 404
    assert world.call("GET", f"/workflows/{workflow}/versions/1", key=b).status_code == 404
    assert world.call("GET", f"/workflows/{workflow}/versions/1", key=world.a.people["viewer"].key).status_code == 200
    mine = world.call("POST", "/workflows", key=b, json={"source": WORKFLOW}).json()
    assert mine["id"] != workflow and mine["project_id"] == world.b.project_id and mine["latest_version"] == 1
    assert world.call("POST", "/workflow-runs", key=b, json={"workflow_id": workflow}).status_code == 404


def workflow_runs_are_own(world: World) -> None:
    run = _a_run(world)
    b = _b(world)
    assert world.call("GET", "/workflow-runs", key=b).json()["data"] == []
    for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel"), ("POST", "/resume")):
        assert world.call(method, f"/workflow-runs/{run}{path}", key=b).status_code == 404, path
    assert world.call("POST", f"/workflow-runs/{run}/fork", key=b, json={"from": "v"}).status_code == 404
    assert world.call("GET", f"/workflow-runs/{run}", key=world.a.people["viewer"].key).json()["id"] == run


def _b_admin(world: World) -> str:
    """Org B's admin, signed in: an org admin of the Admin API."""
    return str(world.login(world.b.people["admin"].email)["access_token"])


def admin_observe_only_own_org(world: World) -> None:
    with Session(world.gw.db) as session:
        session.add(UsageRecord(request_id="req_admin_a", trace_id="c" * 32, org_id=world.a.id,
                                project_id=world.a.project_id, model=MODEL, cost_micros=42, measured="upstream"))
        session.commit()
    assert world.call("GET", "/wallet", key=world.a.people["viewer"].key).status_code == 200
    a_trace = world.gw.audit_rows(org_id=world.a.id)[-1]["trace_id"]
    token = _b_admin(world)
    for route in ("/usage", "/audit"):
        rows = world.call("GET", ADMIN + route, token=token).json()["data"]
        assert world.a.id not in {r["org_id"] for r in rows}, route
        assert world.call("GET", ADMIN + route, token=token, params={"org_id": world.a.id}).status_code == 404
    assert world.call("GET", ADMIN + "/overview", token=token).json()["org_id"] == world.b.id
    assert world.call("GET", ADMIN + "/overview", token=token, params={"org_id": world.a.id}).status_code == 404
    assert world.call("GET", f"{ADMIN}/traces/{'c' * 32}", token=token).status_code == 404
    assert world.call("GET", f"{ADMIN}/traces/{a_trace}", token=token).status_code == 404


def admin_export_only_own_org(world: World) -> None:
    a_admin = str(world.login(world.a.people["admin"].email)["access_token"])
    job = world.call("POST", ADMIN + "/exports", token=a_admin, json={"dataset": "usage"})
    assert job.status_code == 202, job.text
    token = _b_admin(world)
    assert world.call("POST", ADMIN + "/exports", token=token, json={"dataset": "usage", "org_id": world.a.id}
                      ).status_code == 404
    assert world.call("GET", f"{ADMIN}/exports/{job.json()['id']}", token=token).status_code == 404
    mine = world.call("POST", ADMIN + "/exports", token=token, json={"dataset": "audit"})
    assert mine.json()["params"]["orgs"] == world.b.id


def admin_statement_only_own_org(world: World) -> None:
    token = _b_admin(world)
    foreign = world.call("POST", ADMIN + "/statements", token=token, json={"month": "2026-11", "org_id": world.a.id})
    assert foreign.status_code == 404, foreign.text
    mine = world.call("POST", ADMIN + "/statements", token=token, json={"month": "2026-11"})
    assert mine.status_code == 202 and mine.json()["params"]["org_id"] == world.b.id


A = "/deepspace/api"
ADMIN = "/deepspace/admin/api"
CASES: dict[tuple[str, str], Callable[[World], None]] = {
    ("/deepspace/v1/chat/completions", "post"): chat_with_foreign_conversation,
    (f"{A}/chat/stream", "post"): product_stream_with_foreign_conversation,
    (f"{A}/chat/{{request_id}}/cancel", "post"): cancel_foreign_stream,
    (f"{A}/chat/estimate", "post"): estimate_with_foreign_conversation,
    (f"{A}/me", "get"): me_shows_only_own,
    (f"{A}/orgs", "get"): orgs_lists_only_own,
    (f"{A}/members", "get"): members_lists_only_own,
    (f"{A}/members/{{user_id}}", "patch"): member_change_foreign,
    (f"{A}/members/{{user_id}}", "delete"): member_change_foreign,
    (f"{A}/projects", "get"): projects_list_only_own,
    (f"{A}/projects", "post"): project_create_lands_in_own_org,
    (f"{A}/projects/{{project_id}}", "get"): project_foreign,
    (f"{A}/projects/{{project_id}}", "patch"): project_foreign,
    (f"{A}/projects/{{project_id}}", "delete"): project_foreign,
    (f"{A}/keys", "get"): keys_list_only_own,
    (f"{A}/keys", "post"): key_create_cannot_target_foreign_project,
    (f"{A}/keys/{{key_id}}", "delete"): key_revoke_foreign,
    (f"{A}/wallet", "get"): wallet_is_own,
    (f"{A}/limits", "get"): limits_are_own,
    (f"{A}/wallet/transactions", "get"): transactions_are_own,
    (f"{A}/usage", "get"): usage_is_own,
    (f"{A}/jobs", "get"): jobs_list_only_own,
    (f"{A}/jobs/{{job_id}}", "get"): job_foreign,
    (f"{A}/exports", "post"): export_cannot_target_foreign_project,
    (f"{A}/statements", "post"): statement_lands_in_own_org,
    (f"{A}/usage/summary", "get"): usage_summary_is_own,
    (f"{A}/files", "post"): file_upload_lands_in_own_org,
    (f"{A}/files", "get"): files_list_only_own,
    (f"{A}/files/{{file_id}}", "get"): file_foreign,
    (f"{A}/files/{{file_id}}", "delete"): file_foreign,
    (f"{A}/files/{{file_id}}/content", "get"): file_foreign,
    (f"{A}/conversations", "get"): conversations_list_only_own,
    (f"{A}/conversations", "post"): conversation_create_lands_in_own_project,
    (f"{A}/conversations/{{conversation_id}}", "get"): conversation_foreign,
    (f"{A}/conversations/{{conversation_id}}", "patch"): conversation_foreign,
    (f"{A}/conversations/{{conversation_id}}", "delete"): conversation_foreign,
    (f"{A}/workflows", "get"): workflows_are_own,
    (f"{A}/workflows", "post"): workflows_are_own,
    (f"{A}/workflows/{{workflow_id}}", "get"): workflows_are_own,
    (f"{A}/workflows/{{workflow_id}}/versions/{{version}}", "get"): workflows_are_own,
    (f"{A}/workflow-runs", "get"): workflow_runs_are_own,
    (f"{A}/workflow-runs", "post"): workflows_are_own,
    (f"{A}/workflow-runs/{{run_id}}", "get"): workflow_runs_are_own,
    (f"{A}/workflow-runs/{{run_id}}/cancel", "post"): workflow_runs_are_own,
    (f"{A}/workflow-runs/{{run_id}}/resume", "post"): workflow_runs_are_own,
    (f"{A}/workflow-runs/{{run_id}}/fork", "post"): workflow_runs_are_own,
    (f"{A}/workflow-runs/{{run_id}}/events", "get"): workflow_runs_are_own,
    (f"{ADMIN}/usage", "get"): admin_observe_only_own_org,
    (f"{ADMIN}/audit", "get"): admin_observe_only_own_org,
    (f"{ADMIN}/traces/{{trace_id}}", "get"): admin_observe_only_own_org,
    (f"{ADMIN}/overview", "get"): admin_observe_only_own_org,
    (f"{ADMIN}/exports", "post"): admin_export_only_own_org,
    (f"{ADMIN}/exports/{{job_id}}", "get"): admin_export_only_own_org,
    (f"{ADMIN}/statements", "post"): admin_statement_only_own_org,
}
#: Routes with no tenant data, or that act only on the caller's own credential.
EXEMPT = {
    ("/deepspace/v1/models", "get"): "the catalog is the deployment's, not a tenant's",
    (f"{A}/health", "get"): "public, no tenant data",
    (f"{A}/health/ready", "get"): "public, no tenant data",
    (f"{A}/openapi.json", "get"): "public, no tenant data",
    (f"{A}/auth/login", "post"): "takes credentials, returns only the caller's own tokens",
    (f"{A}/auth/refresh", "post"): "takes a refresh token, returns only its own session's tokens",
    (f"{A}/auth/logout", "post"): "ends the caller's own session",
    (f"{A}/auth/jupyterhub", "post"): "takes a Hub token, returns only its own user's tokens",
    (f"{A}/members", "post"): "adds to the caller's own org only (see test_roles)",
    ("/deepspace/admin/api/permissions", "get"): "the roles & permissions matrix is the product's, not a tenant's",
    (f"{A}/workflows/schema", "get"): "the workflow schema is the product's (the registered step kinds)",
    (f"{ADMIN}/metrics", "get"): "the deployment's metrics, platform admins only (tests/admin/test_access.py)",
}
CASES.update(MONEY_CASES)  # the Admin API's money area
EXEMPT.update(MONEY_EXEMPT)
CASES.update(ACCOUNTS_CASES)  # the Admin API's accounts area

def test_every_route_has_a_tenancy_case_or_a_stated_exemption() -> None:
    operations = {(path, method) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert operations == set(CASES) | set(EXEMPT)
    assert not set(CASES) & set(EXEMPT)


@pytest.mark.parametrize("case", sorted({f.__name__: f for f in CASES.values()}.values(), key=lambda f: f.__name__),
                         ids=lambda f: f.__name__)
def test_org_b_cannot_reach_org_a(world: World, case: Callable[[World], None]) -> None:
    case(world)
