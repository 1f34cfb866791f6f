"""The Admin API's observability area: usage records and the request log across orgs (filters,
keyset paging that never skips or repeats a row), trace lookup of a billed streamed request,
org admins kept to their own org, the overview, exports of any org's rows, and the metrics."""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from deepspace_lab.audit.models import AuditLog
from deepspace_lab.billing.models import UsageRecord
from deepspace_lab.billing.rollups import roll_up_due
from deepspace_lab.client import AsyncDeepSpaceClient, DeepSpaceClient, DeepSpaceClientError
from deepspace_lab.db import make_async_engine

from ..cli.conftest import clean_environ, run_json
from ..helpers import TEST_SECRET, Gateway
from ..jobs.conftest import worker_factory  # noqa: F401  (the export test runs a worker)
from .conftest import AdminWorld

ADMIN = "/deepspace/admin/api"
MODEL = "deepspace-simulated-chat"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway]) -> Gateway:
    """The admin world's gateway, with a Worker queue of its own (the export test starts a worker)."""
    return gateway_factory(worker_backend="sqlite")


def _usage_rows(w: AdminWorld, n: int, *, at: datetime = T0) -> None:
    """``n`` usage rows per org, all at the same instant, alternating models and statuses."""
    rows = []
    for org in (w.a, w.b):
        for i in range(n):
            rows.append({"request_id": f"req_{org.id[-6:]}_{i}", "trace_id": secrets.token_hex(16), "org_id": org.id,
                         "project_id": org.project_id, "user_id": org.people["member"].user_id,
                         "api_key_id": org.people["member"].key_id, "model": ("m-even", "m-odd")[i % 2],
                         "measured": "upstream", "status": ("captured", "released")[i % 3 == 0],
                         "prompt_tokens": 10, "completion_tokens": i, "cost_micros": 100 + i, "created_at": at})
    with w.gw.db.begin() as conn:
        conn.execute(insert(UsageRecord), rows)


def _audit_rows(w: AdminWorld, n: int) -> None:
    rows = [{"trace_id": secrets.token_hex(16), "request_id": f"req_audit_{org.id[-6:]}_{i}", "kind": "gateway.request",
             "org_id": org.id, "user_id": org.people["member"].user_id, "api_key_id": org.people["member"].key_id,
             "method": "POST", "path": ("/deepspace/v1/chat/completions", "/deepspace/api/usage")[i % 2],
             "model": MODEL if i % 2 == 0 else None, "status_code": (200, 429)[i % 4 == 0],
             "error_code": "rate_limited" if i % 4 == 0 else None, "client_ip": f"10.0.0.{i % 3}",
             "created_at": T0} for org in (w.a, w.b) for i in range(n)]
    with w.gw.db.begin() as conn:
        conn.execute(insert(AuditLog), rows)


def _all_pages(w: AdminWorld, route: str, credential: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        more = {"cursor": cursor} if cursor else {}
        response = w.call("GET", ADMIN + route, **credential, params={**params, **more})
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_usage_pages_never_skip_or_repeat_a_row_with_equal_timestamps(admin_world: AdminWorld) -> None:
    w = admin_world
    _usage_rows(w, 11)
    admin = {"key": w.platform.read_key}
    every = _all_pages(w, "/usage", admin, limit=4)
    assert len(every) == 22 and len({r["id"] for r in every}) == 22
    assert [r["id"] for r in every] == sorted((r["id"] for r in every), reverse=True)
    a_only = _all_pages(w, "/usage", admin, limit=3, org_id=w.a.id)
    assert {r["org_id"] for r in a_only} == {w.a.id} and len(a_only) == 11
    filtered = _all_pages(w, "/usage", admin, limit=2, org_id=w.b.id, model="m-odd", status="captured")
    assert sorted(r["request_id"] for r in filtered) == sorted(
        f"req_{w.b.id[-6:]}_{i}" for i in range(11) if i % 2 == 1 and i % 3 != 0)
    for name, value in (("user_id", w.a.people["member"].user_id), ("api_key_id", w.a.people["member"].key_id),
                        ("project_id", w.a.project_id)):
        assert {r["org_id"] for r in _all_pages(w, "/usage", admin, **{name: value})} == {w.a.id}
    window = {"since": T0.isoformat(), "until": (T0 + timedelta(seconds=1)).isoformat()}
    assert len(_all_pages(w, "/usage", admin, **window)) == 22
    assert _all_pages(w, "/usage", admin, since=(T0 + timedelta(seconds=1)).isoformat()) == []
    assert _all_pages(w, "/usage", admin, measured="estimated") == []


def test_audit_search_filters_and_pages(admin_world: AdminWorld) -> None:
    w = admin_world
    _audit_rows(w, 9)
    admin = {"key": w.platform.key}
    seeded = {"kind": "gateway.request", "since": T0.isoformat(), "until": (T0 + timedelta(seconds=1)).isoformat()}
    every = _all_pages(w, "/audit", admin, limit=4, **seeded)
    assert len(every) == 18 and len({r["id"] for r in every}) == 18
    limited = _all_pages(w, "/audit", admin, limit=2, org_id=w.a.id, status_code="429", **seeded)
    assert [r["request_id"] for r in limited] == [f"req_audit_{w.a.id[-6:]}_{i}" for i in (8, 4, 0)]
    assert {r["error_code"] for r in limited} == {"rate_limited"}
    chat = _all_pages(w, "/audit", admin, path="/deepspace/v1/chat", model=MODEL, **seeded)
    assert len(chat) == 10 and all(r["path"].startswith("/deepspace/v1/chat") for r in chat)
    assert _all_pages(w, "/audit", admin, path="/deepspace/v1/chat_", **seeded) == []  # `_` is no wildcard
    by_ip = _all_pages(w, "/audit", admin, client_ip="10.0.0.2", org_id=w.b.id, **seeded)
    assert sorted(r["request_id"] for r in by_ip) == sorted(f"req_audit_{w.b.id[-6:]}_{i}" for i in (2, 5, 8))
    for params, code in (({"status_code": "abc"}, "invalid_value"), ({"limit": "0"}, "invalid_value"),
                         ({"cursor": "nope"}, "invalid_cursor"), ({"since": "yesterday"}, "invalid_time"),
                         ({"org": "x"}, "unknown_parameter"), ({"org_id": "a b"}, "invalid_id")):
        response = w.call("GET", ADMIN + "/audit", **admin, params=params)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), params


def test_org_admins_see_only_their_own_org(admin_world: AdminWorld) -> None:
    w = admin_world
    _usage_rows(w, 3)
    _audit_rows(w, 3)
    b_admin = {"token": w.token(w.b.people["admin"])}
    for path in ("/usage", "/audit"):
        mine = _all_pages(w, path, b_admin)
        assert mine and {r["org_id"] for r in mine} == {w.b.id}, path
        assert w.call("GET", ADMIN + path, **b_admin, params={"org_id": w.a.id}).status_code == 404
    overview = w.call("GET", ADMIN + "/overview", **b_admin).json()
    assert overview["org_id"] == w.b.id
    assert w.call("GET", ADMIN + "/overview", **b_admin, params={"org_id": w.a.id}).status_code == 404
    a_trace = w.gw.audit_rows(org_id=w.a.id)[0]["trace_id"]
    assert w.call("GET", f"{ADMIN}/traces/{a_trace}", **b_admin).status_code == 404
    assert w.call("GET", f"{ADMIN}/traces/{a_trace}", token=w.token(w.a.people["owner"])).status_code == 200
    assert w.call("GET", ADMIN + "/metrics", **b_admin).status_code == 403


def _stream_chat(w: AdminWorld, key: str) -> str:
    with httpx.stream("POST", w.gw.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                      timeout=30) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_bytes())
    assert b"[DONE]" in body
    return str(response.headers["X-Trace-Id"])


def test_trace_lookup_returns_the_whole_chain_of_a_billed_streamed_request(admin_world: AdminWorld) -> None:
    w = admin_world
    trace_id = _stream_chat(w, w.a.people["member"].key)
    response = w.call("GET", f"{ADMIN}/traces/{trace_id}", key=w.platform.read_key)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    kinds = [item["type"] for item in items]
    assert kinds.count("audit") == 1 and kinds.count("usage") == 1 and kinds.count("hold") == 1
    entries = sorted(item["data"]["type"] for item in items if item["type"] == "transaction")
    assert entries == ["capture", "hold"]
    usage = next(item for item in items if item["type"] == "usage")["data"]
    assert usage["status"] == "captured" and usage["stream"] is True and usage["cost_micros"] > 0
    hold = next(item for item in items if item["type"] == "hold")
    assert hold["data"]["state"] == "captured"
    assert [item["at"] for item in items] == sorted(item["at"] for item in items)
    assert {item["data"].get("org_id") for item in items} == {w.a.id}
    assert w.call("GET", f"{ADMIN}/traces/{'0' * 32}", key=w.platform.key).status_code == 404
    assert w.call("GET", f"{ADMIN}/traces/bad!id", key=w.platform.key).status_code in (400, 404)


def test_an_admin_export_runs_as_a_job_traced_with_its_request(admin_world: AdminWorld,
                                                               worker_factory: Callable[..., Any]) -> None:  # noqa: F811
    w = admin_world
    _usage_rows(w, 4)
    worker_factory(w.gw.settings)
    response = w.call("POST", ADMIN + "/exports", key=w.platform.key, json={"dataset": "usage", "format": "csv"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"]["orgs"] == "*"
    deadline = time.monotonic() + 30
    while job["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = w.call("GET", f"{ADMIN}/exports/{job['id']}", key=w.platform.read_key).json()
    assert job["state"] == "done", job
    token = w.token(w.platform.email)  # the file lands in the admin's own org
    content = w.call("GET", job["result"]["download_path"], token=token)
    assert content.status_code == 200, content.text
    rows = list(csv.DictReader(io.StringIO(content.text)))
    assert sorted(r["org_id"] for r in rows) == sorted([w.a.id] * 4 + [w.b.id] * 4)
    trace = w.call("GET", f"{ADMIN}/traces/{job['trace_id']}", key=w.platform.key).json()["items"]
    assert {"audit", "job", "job_event"} <= {item["type"] for item in trace}
    audit = w.gw.audit_rows(kind="admin.export.create")
    assert audit[-1]["detail"]["after"] == {"export": {"dataset": "usage", "format": "csv", "orgs": "*"}}
    b_admin = w.token(w.b.people["admin"])
    mine = w.call("POST", ADMIN + "/exports", token=b_admin, json={"dataset": "audit", "org_id": w.b.id})
    assert mine.status_code == 202 and mine.json()["params"]["orgs"] == w.b.id
    assert w.call("POST", ADMIN + "/exports", token=b_admin, json={"dataset": "audit", "org_id": w.a.id}
                  ).status_code == 404
    assert w.call("GET", f"{ADMIN}/exports/{job['id']}", token=b_admin).status_code == 404
    bad = w.call("POST", ADMIN + "/exports", key=w.platform.key, json={"dataset": "conversations"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_value")
    for body, status, code in (({"dataset": "usage", "until": None}, 400, "invalid_type"),
                               ({"dataset": "usage", "org_id": "org_nope"}, 404, "org_not_found"),
                               ({"dataset": "usage", "org_id": w.a.id, "project_id": w.b.project_id}, 404,
                                "project_not_found")):
        bad = w.call("POST", ADMIN + "/exports", key=w.platform.key, json=body)
        assert (bad.status_code, bad.json()["error"]["code"]) == (status, code), body


def test_the_overview_sums_the_rollups_and_counts_errors(admin_world: AdminWorld) -> None:
    w = admin_world
    _usage_rows(w, 6, at=T0 - timedelta(days=3))
    _usage_rows_more = [(w.a, T0 - timedelta(hours=2))]
    with w.gw.db.begin() as conn:
        for org, at in _usage_rows_more:
            conn.execute(insert(UsageRecord), [{"request_id": "req_late", "trace_id": "f" * 32, "org_id": org.id,
                                                "model": "m-late", "measured": "upstream", "status": "captured",
                                                "prompt_tokens": 5, "completion_tokens": 5, "cost_micros": 7,
                                                "created_at": at}])
    _audit_rows(w, 8)

    async def roll() -> None:
        engine = make_async_engine(w.gw.settings.database_url)
        try:
            await roll_up_due(engine, now=T0 + timedelta(hours=1))
        finally:
            await engine.dispose()

    w.gw.loop.run(roll())
    params = {"since": (T0 - timedelta(days=10)).isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
    response = w.call("GET", ADMIN + "/overview", key=w.platform.read_key, params=params)
    assert response.status_code == 200, response.text
    view = response.json()
    by_org = {row["key"]: row for row in view["trends"]["by_org"]}
    per_org_cost = sum(100 + i for i in range(6))
    assert by_org[w.a.id]["cost_micros"] == per_org_cost + 7 and by_org[w.b.id]["cost_micros"] == per_org_cost
    assert by_org[w.a.id]["requests"] == 7 and by_org[w.a.id]["errors"] == 2
    assert view["top_spenders"][0]["key"] == w.a.id
    by_day = {row["key"]: row for row in view["trends"]["by_day"]}
    assert by_day[(T0 - timedelta(days=3)).date().isoformat()]["requests"] == 12  # a day row
    assert by_day[T0.date().isoformat()]["requests"] == 1 and by_day[T0.date().isoformat()]["errors"] == 4
    by_model = {row["key"]: row for row in view["trends"]["by_model"]}
    assert by_model["m-late"]["cost_micros"] == 7 and by_model[MODEL]["errors"] == 4
    low = w.call("GET", ADMIN + "/overview", key=w.platform.read_key,
                 params={"low_balance_micros": str(10**15), "days": "3"}).json()["anomalies"]
    assert low["low_balances"]["count"] >= 3 and low["holds_past_lease"]["count"] == 0
    assert set(low["error_rate"]) == {"today", "baseline_7d", "ratio"}
    bad = w.call("GET", ADMIN + "/overview", key=w.platform.key, params={"days": "3", "since": T0.isoformat()})
    assert bad.status_code == 400


def test_broken_ledger_invariants_show_in_the_overview_until_a_reconciliation_finds_none(
        admin_world: AdminWorld) -> None:
    """A wallet moved outside the ledger: the scheduled reconciliation finds it, records its
    findings once, and the overview (and so the Dashboard's drift card) shows them until a
    reconciliation finds nothing wrong."""
    import asyncio

    from sqlalchemy import text

    from deepspace_lab.dashboards import Text
    from deepspace_lab.dashboards.pages.dashboard import find_anomalies
    from deepspace_lab.jobs.scheduled import run_scheduled

    w = admin_world

    def overview() -> dict[str, Any]:
        return w.call("GET", ADMIN + "/overview", key=w.platform.read_key, params={"days": "1"}).json()

    def reconcile() -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            engine = make_async_engine(w.gw.settings.database_url)
            try:
                return await run_scheduled("reconcile", w.gw.settings, engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def nudge(micros: int) -> None:
        with w.gw.db.begin() as conn:
            conn.execute(text("UPDATE wallets SET balance_micros = balance_micros + :m WHERE org_id = :o"),
                         {"m": micros, "o": w.a.id})

    assert reconcile()["ok"] and overview()["anomalies"]["reconciliation"] is None
    nudge(1)
    found = reconcile()
    assert not found["ok"] and not reconcile()["ok"]  # found twice, recorded once
    view = overview()
    shown = view["anomalies"]["reconciliation"]
    assert shown["result"]["ok"] is False and shown["result"]["problem_count"] == len(found["problems"])
    assert shown["result"]["problems"] == found["problems"][:20]
    assert "drift" in [a.kind for a in find_anomalies(view, Text("en"))]
    assert len(w.gw.audit_rows(kind="worker.reconcile")) == 1
    nudge(-1)
    assert reconcile()["ok"] and overview()["anomalies"]["reconciliation"] is None


def test_metrics_count_requests_tokens_and_cost(admin_world: AdminWorld) -> None:
    w = admin_world
    for _ in range(2):
        _stream_chat(w, w.a.people["member"].key)
    assert w.call("GET", "/wallet", key=w.a.people["viewer"].key).status_code == 200
    response = w.call("GET", ADMIN + "/metrics", key=w.platform.read_key)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in response.text.splitlines()
             if line and not line.startswith("#")}
    assert lines['deepspace_requests_total{kind="gateway.request",status="200"}'] == 2
    assert lines['deepspace_request_latency_seconds_count{kind="gateway.request"}'] == 2
    assert lines[f'deepspace_tokens_total{{direction="completion",model="{MODEL}"}}'] > 0
    assert lines[f'deepspace_cost_micros_total{{model="{MODEL}"}}'] > 0
    assert lines["deepspace_open_holds"] == 0 and lines["deepspace_holds_past_lease"] == 0
    assert w.call("GET", ADMIN + "/metrics", key=w.a.people["owner"].key).status_code == 403
    again = w.call("GET", ADMIN + "/metrics", key=w.platform.read_key).text
    assert 'deepspace_errors_total{code="permission_denied",kind="admin.metrics.read"} 1.0' in again


def test_the_cli_answers_as_the_api_does(admin_world: AdminWorld, tmp_path: Path) -> None:
    w = admin_world
    _usage_rows(w, 11)
    _audit_rows(w, 4)
    env = clean_environ(DEEPSPACE_DATABASE_URL=w.gw.settings.database_url, DEEPSPACE_DATA_DIR=str(tmp_path / "cli"),
                        DEEPSPACE_SECRET_KEY=TEST_SECRET, DEEPSPACE_LOG_LEVEL="WARNING", HOME=str(tmp_path))
    admin = {"key": w.platform.read_key}
    api = w.call("GET", ADMIN + "/usage", **admin, params={"org_id": w.a.id, "model": "m-odd", "limit": "2"}).json()
    cli = run_json(["usage", "list", "--org", w.a.id, "--model", "m-odd", "--limit", "2"], env)
    assert cli == api and len(cli["data"]) == 2 and cli["next_cursor"]
    assert run_json(["usage", "list", "--org", w.a.id, "--model", "m-odd", "--cursor", cli["next_cursor"]],
                    env)["data"] == _all_pages(w, "/usage", admin, org_id=w.a.id, model="m-odd")[2:]
    seeded = {"since": T0.isoformat(), "until": (T0 + timedelta(seconds=1)).isoformat()}
    api = w.call("GET", ADMIN + "/audit", **admin, params={"status_code": "429", **seeded}).json()
    assert run_json(["audit", "search", "--status-code", "429", "--since", seeded["since"], "--until",
                     seeded["until"]], env) == api
    trace_id = w.gw.audit_rows(org_id=w.a.id)[-1]["trace_id"]
    api = w.call("GET", f"{ADMIN}/traces/{trace_id}", **admin).json()
    assert run_json(["audit", "trace", trace_id], env) == api
    view = run_json(["overview", "--days", "3"], env)
    assert view["object"] == "overview" and set(view["anomalies"]) == {
        "holds_past_lease", "low_balances", "reconciliation", "error_rate"}
    assert run_json(["audit", "trace", "0" * 32], env, expect_rc=2)["error"]["code"] == "trace_not_found"


def test_the_client_reads_the_observe_routes(admin_world: AdminWorld) -> None:
    w = admin_world
    _usage_rows(w, 3)
    trace_id = _stream_chat(w, w.a.people["member"].key)
    with DeepSpaceClient(base_url=w.gw.url, api_key=w.platform.read_key, timeout_s=20) as client:
        page = client.admin_usage(org_id=w.b.id, limit=2)
        assert len(page["data"]) == 2 and {r["org_id"] for r in page["data"]} == {w.b.id}
        assert client.admin_usage(org_id=w.b.id, cursor=page["next_cursor"])["next_cursor"] is None
        assert client.admin_audit(org_id=w.a.id, path="/deepspace/v1")["data"][0]["trace_id"] == trace_id
        assert "usage" in {item["type"] for item in client.admin_trace(trace_id)["items"]}
        assert "deepspace_requests_total" in client.admin_metrics()
        with pytest.raises(DeepSpaceClientError) as refused:
            client.admin_export("usage")  # a read-only key
        assert refused.value.code == "admin_required"

    async def overview() -> dict[str, Any]:
        async with AsyncDeepSpaceClient(base_url=w.gw.url, api_key=w.platform.key, timeout_s=20) as client:
            job = await client.admin_export("audit", org_id=w.a.id, format="json")
            assert (await client.admin_export_job(job["id"]))["params"]["orgs"] == w.a.id
            return await client.admin_overview(org_id=w.a.id, days=2)

    assert w.gw.loop.run(overview())["org_id"] == w.a.id
