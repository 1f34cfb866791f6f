"""Webhook delivery through the Worker to a real local HTTP receiver, on SQLite and PostgreSQL:
a test ping signed so the receiver can verify it, retried after a 500 with every attempt in the
delivery log, a hook that keeps failing ends ``failed``, a redelivery sends the same event
again; budget thresholds and low balances fire once per crossing (and again after it clears);
the CLI and both clients reach the same routes; an org's admin sees their org's log only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from deepspace_lab.client import AsyncDeepSpaceClient, DeepSpaceClient
from deepspace_lab.db import make_async_engine
from deepspace_lab.jobs import JobQueue
from deepspace_lab.jobs.alerts import check_alerts
from deepspace_lab.webhooks.deliveries import verify_signature

from ..admin.conftest import AdminWorld, admin_world, cli  # noqa: F401  (fixtures)
from ..cli.conftest import sql
from ..helpers import Gateway, wait_for
from ..jobs.conftest import worker_factory  # noqa: F401  (the fixture)
from .receiver import Receiver, gateway_with_worker, receiver  # noqa: F401  (the fixture)

ADMIN = "/deepspace/admin/api"


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway], worker_factory: Callable[..., Any]) -> Gateway:  # noqa: F811
    """A gateway with a Worker beside it (two attempts per delivery, 2 s each)."""
    return gateway_with_worker(gateway_factory, worker_factory, webhook_max_attempts=2, webhook_timeout_s=2.0)


def _hook(w: AdminWorld, url: str, *, org_id: str | None, events: list[str]) -> dict[str, Any]:
    made = w.call("POST", ADMIN + "/webhooks", key=w.platform.key, json={"url": url, "events": events,
                                                                          "org_id": org_id})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _log(w: AdminWorld, hook_id: str, **auth: str) -> list[dict[str, Any]]:
    answer = w.call("GET", f"{ADMIN}/webhooks/{hook_id}/deliveries", **(auth or {"key": w.platform.key}))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def _settled(w: AdminWorld, hook_id: str, attempts: int) -> list[dict[str, Any]]:
    """The log once it holds ``attempts`` rows (the Worker writes each row after its POST)."""
    wait_for(lambda: len(_log(w, hook_id)) >= attempts)
    return _log(w, hook_id)


def _verified(secret: str, got: Any) -> dict[str, Any]:
    headers = got.headers
    assert verify_signature(secret, body=got.body, timestamp=headers["x-deepspace-timestamp"],
                            signature_header=headers["x-deepspace-signature"])
    assert not verify_signature("whsec_wrong", body=got.body, timestamp=headers["x-deepspace-timestamp"],
                                signature_header=headers["x-deepspace-signature"])
    assert headers["content-type"] == "application/json" and secret not in str(headers)
    return dict(json.loads(got.body))


def test_a_ping_is_signed_retried_after_a_500_logged_and_redelivered(admin_world: AdminWorld,  # noqa: F811
                                                                      receiver: Receiver) -> None:  # noqa: F811
    w = admin_world
    receiver.statuses = [500]
    hook = _hook(w, receiver.url, org_id=w.a.id, events=["usage.anomaly"])
    queued = w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/test", key=w.platform.key)
    assert queued.status_code == 202 and queued.json()["event"] == "ping" and queued.json()["max_attempts"] == 2
    first, second = receiver.wait_for(2)
    assert _verified(hook["secret"], first) == _verified(hook["secret"], second)  # the same body, signed twice
    body = _verified(hook["secret"], second)
    assert (body["type"], body["org_id"], body["data"]["webhook_id"]) == ("ping", w.a.id, hook["id"])
    assert first.headers["x-deepspace-event-id"] == second.headers["x-deepspace-event-id"] == body["id"]
    assert first.headers["x-deepspace-delivery"] != second.headers["x-deepspace-delivery"]
    newest, oldest = _settled(w, hook["id"], 2)
    assert (oldest["attempt"], oldest["status"], oldest["response_code"]) == (1, "retrying", 500)
    assert "500" in oldest["error"] and newest["error"] is None
    assert (newest["attempt"], newest["status"], newest["response_code"]) == (2, "succeeded", 200)
    assert newest["latency_ms"] >= 0 and newest["body"] == second.body.decode() and newest["trigger"] == "test"
    assert hook["secret"] not in str(_log(w, hook["id"]))

    again = w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/deliveries/{newest['id']}/redeliver", key=w.platform.key)
    assert again.status_code == 202 and again.json()["event_id"] == body["id"]
    third = receiver.wait_for(3)[2]
    assert third.body == second.body and _verified(hook["secret"], third)["id"] == body["id"]
    redelivered = _settled(w, hook["id"], 3)[0]
    assert (redelivered["trigger"], redelivered["status"], redelivered["event_id"]) == ("redeliver", "succeeded",
                                                                                        body["id"])
    # org A's admin reads their hook's log; org B's admin gets 404, as if it did not exist
    a_admin = {"token": w.token(w.a.people["admin"])}
    assert len(_log(w, hook["id"], **a_admin)) == 3
    b_admin = {"token": w.token(w.b.people["admin"])}
    assert w.call("GET", f"{ADMIN}/webhooks/{hook['id']}/deliveries", **b_admin).status_code == 404
    assert w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/test", **b_admin).status_code == 404
    [audit] = w.gw.audit_rows(kind="admin.webhooks.redeliver", status_code=202)
    assert audit["detail"]["redelivery_of"] == newest["id"] and hook["secret"] not in str(audit)


def test_a_hook_that_keeps_failing_ends_failed_and_a_timeout_is_retried(admin_world: AdminWorld,  # noqa: F811
                                                                        receiver: Receiver) -> None:  # noqa: F811
    w = admin_world
    receiver.statuses = [502, 503]
    hook = _hook(w, receiver.url, org_id=None, events=["usage.anomaly"])
    job_id = w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/test", key=w.platform.key).json()["job_id"]
    receiver.wait_for(2)
    newest, oldest = _settled(w, hook["id"], 2)
    assert [(d["attempt"], d["status"], d["response_code"]) for d in (oldest, newest)] == [
        (1, "retrying", 502), (2, "failed", 503)]
    assert all(d["job_id"] == job_id for d in (oldest, newest))
    unreachable = _hook(w, "http://127.0.0.1:9/nobody", org_id=None, events=["usage.anomaly"])
    w.call("POST", f"{ADMIN}/webhooks/{unreachable['id']}/test", key=w.platform.key)
    tried = _settled(w, unreachable["id"], 2)
    assert {d["response_code"] for d in tried} == {None} and "could not reach" in tried[0]["error"]
    slow = Receiver(delays_s=[3.0])  # the first attempt outlasts DEEPSPACE_WEBHOOK_TIMEOUT_S
    try:
        late = _hook(w, slow.url, org_id=None, events=["usage.anomaly"])
        w.call("POST", f"{ADMIN}/webhooks/{late['id']}/test", key=w.platform.key)
        newest, oldest = _settled(w, late["id"], 2)
        assert (oldest["status"], oldest["response_code"]) == ("retrying", None)
        assert oldest["error"] == "timed out after 2 s"
        assert (newest["status"], newest["response_code"]) == ("succeeded", 200)
    finally:
        slow.close()


def _alerts(gw: Gateway) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        engine, queue = make_async_engine(gw.settings.database_url), JobQueue(gw.settings)
        try:
            return await check_alerts(engine, queue, gw.settings)
        finally:
            queue.close()
            await engine.dispose()

    return asyncio.run(go())


def _events(got: Receiver, kind: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in got.received if json.loads(r.body)["type"] == kind]


def test_budget_thresholds_and_low_balances_fire_once_per_crossing(admin_world: AdminWorld,  # noqa: F811
                                                                   receiver: Receiver) -> None:  # noqa: F811
    w = admin_world
    hook = _hook(w, receiver.url, org_id=w.a.id, events=["budget.threshold", "wallet.low_balance"])
    admin = {"key": w.platform.key}
    cap = {"org_id": w.a.id, "scope": "org", "period": "day"}
    assert w.call("PUT", ADMIN + "/budgets", **admin, json={**cap, "limit_micros": 10**12}).status_code == 200
    chat = w.call("POST", "/deepspace/v1/chat/completions", key=w.a.people["member"].key,
                  json={"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200, chat.text
    spent = int(chat.headers["X-DeepSpace-Cost-Micros"])
    assert spent > 0
    w.call("PUT", ADMIN + "/budgets", **admin, json={**cap, "limit_micros": spent})  # now at 100 % (and 80 %)
    _alerts(w.gw)
    assert _alerts(w.gw)["fired"] == []  # a second pass finds nothing new
    receiver.wait_for(2)
    crossed = sorted(_events(receiver, "budget.threshold"), key=lambda e: e["data"]["threshold_percent"])
    assert [e["data"]["threshold_percent"] for e in crossed] == [80, 100]
    assert {(e["org_id"], e["data"]["spent_micros"], e["data"]["limit_micros"]) for e in crossed} == {
        (w.a.id, spent, spent)}

    balance = w.call("GET", f"{ADMIN}/wallets/{w.a.id}", **admin).json()["balance_micros"]
    low = {"amount_micros": balance - 10, "reason": "test: run low"}
    assert w.call("POST", f"{ADMIN}/wallets/{w.a.id}/debit", **admin, json=low,
                  headers={"Idempotency-Key": "low-1"}).status_code == 201
    _alerts(w.gw)
    receiver.wait_for(3)
    w.call("POST", f"{ADMIN}/wallets/{w.a.id}/credit", **admin, json={**low, "reason": "test: top up"},
           headers={"Idempotency-Key": "up-1"})
    _alerts(w.gw)  # the condition cleared (by this pass or the Worker's): the next crossing fires again
    w.call("POST", f"{ADMIN}/wallets/{w.a.id}/debit", **admin, json=low, headers={"Idempotency-Key": "low-2"})
    _alerts(w.gw)
    receiver.wait_for(4)
    lows = _events(receiver, "wallet.low_balance")
    assert [e["data"]["balance_micros"] for e in lows] == [10, 10] and lows[0]["id"] != lows[1]["id"]
    assert len(receiver.received) == 4 and all(_verified(hook["secret"], r) for r in receiver.received)
    assert {d["trigger"] for d in _log(w, hook["id"])} == {"event"}


def test_the_cli_and_both_clients_test_and_read_the_log(admin_world: AdminWorld, cli: Any,  # noqa: F811
                                                        receiver: Receiver,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    w = admin_world
    monkeypatch.setenv("DEEPSPACE_WORKER_BACKEND", "sqlite")
    monkeypatch.setenv("DEEPSPACE_WORKER_QUEUE", w.gw.settings.worker_queue)
    hook = _hook(w, receiver.url, org_id=w.b.id, events=["usage.anomaly"])
    code, queued = cli("webhooks", "test", hook["id"])
    assert code == 0 and queued["event"] == "ping"
    receiver.wait_for(1)
    _settled(w, hook["id"], 1)
    code, page = cli("webhooks", "deliveries", hook["id"], "--limit", "1")
    assert code == 0 and page["data"][0]["status"] == "succeeded" and page["data"][0]["trigger"] == "test"
    (audited,) = w.gw.audit_rows(kind="cli.webhooks.test")  # the command, its job and its delivery: one trace
    job_trace = sql(w.gw.settings.database_url, "SELECT trace_id FROM jobs WHERE id = :id", id=queued["job_id"])
    assert audited["trace_id"] == job_trace[0]["trace_id"] == page["data"][0]["trace_id"]
    code, again = cli("webhooks", "redeliver", hook["id"], page["data"][0]["id"])
    assert code == 0 and again["event_id"] == queued["event_id"]
    receiver.wait_for(2)
    with DeepSpaceClient(base_url=w.gw.url, api_key=w.platform.key) as client:
        assert client.admin_test_webhook(hook["id"])["event"] == "ping"
    receiver.wait_for(3)
    _settled(w, hook["id"], 3)

    async def read() -> dict[str, Any]:
        async with AsyncDeepSpaceClient(base_url=w.gw.url, api_key=w.platform.key) as client:
            return dict(await client.admin_webhook_deliveries(hook["id"], limit=2))

    page = asyncio.run(read())
    assert len(page["data"]) == 2 and page["next_cursor"]
    assert [r.headers["x-deepspace-event"] for r in receiver.received] == ["ping"] * 3


def test_a_hook_on_a_private_address_is_refused_once_without_a_retry(admin_world: AdminWorld) -> None:  # noqa: F811
    """The fixture's gateway allows 127.0.0.0/8 (its receivers); 10.0.0.0/8 is not allowed, so a
    delivery there is refused before any connection, logged once as failed, and not retried."""
    w = admin_world
    hook = _hook(w, "http://10.1.2.3:8080/hook", org_id=None, events=["usage.anomaly"])
    w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/test", key=w.platform.key)
    (refused,) = _settled(w, hook["id"], 1)
    assert (refused["attempt"], refused["status"], refused["response_code"]) == (1, "failed", None)
    assert "10.1.2.3 is not public" in refused["error"] and "DEEPSPACE_WEBHOOK_PRIVATE_NETWORKS" in refused["error"]

    job = "SELECT state, attempts FROM jobs WHERE id = :id"
    wait_for(lambda: sql(w.gw.settings.database_url, job, id=refused["job_id"])[0]["state"] == "done")
    assert sql(w.gw.settings.database_url, job, id=refused["job_id"])[0]["attempts"] == 1
    assert len(_log(w, hook["id"])) == 1


@pytest.mark.parametrize(("url", "allowed", "refused"), [
    ("http://127.0.0.1:9/x", "", "127.0.0.1"),
    ("http://localhost/x", "", "127.0.0.1"),
    ("http://[::1]:8080/x", "", "::1"),
    ("http://169.254.169.254/latest/meta-data", "", "169.254.169.254"),  # cloud metadata
    ("http://192.168.1.5/x", "10.0.0.0/8", "192.168.1.5"),
    ("http://10.9.8.7/x", "10.0.0.0/8", None),
    ("http://127.0.0.1:9/x", "127.0.0.0/8", None),
    ("https://8.8.8.8/x", "", None),
])
def test_only_public_or_allowed_addresses_may_receive(url: str, allowed: str, refused: str | None) -> None:
    from deepspace_lab.jobs.webhooks import resolve_target

    target = asyncio.run(resolve_target(url, allowed))
    why = target.refused
    assert (why is None) if refused is None else (why is not None and f"address {refused} " in why), why
    assert (target.address is None) == (refused is not None)


def test_a_delivery_connects_to_the_address_it_checked(receiver: Receiver,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the receiver's name answers an allowed address to the check and another
    (192.0.2.1, unroutable) to every later lookup. The POST goes to the checked address, with
    the name as its Host, and never looks the name up again; an unresolvable name is a passing
    failure (retried), not a refusal."""
    import socket

    from deepspace_lab.jobs.webhooks import send

    port, lookups = receiver.server.server_address[1], []
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.rebind.test":
            return real(host, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    code, error, final = asyncio.run(send(f"http://hooks.rebind.test:{port}/hook", b"{}", {"X-Test": "1"},
                                          allowed="127.0.0.0/8", timeout_s=5))
    assert (code, error, final) == (200, None, False)
    got = receiver.wait_for(1)[0]
    assert got.headers["host"] == f"hooks.rebind.test:{port}" and got.headers["x-test"] == "1"
    assert lookups == ["hooks.rebind.test"]  # looked up once, by the check

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(socket.gaierror("no name")))
    code, error, final = asyncio.run(send("http://nowhere.invalid/hook", b"{}", {}, allowed="", timeout_s=5))
    assert (code, final) == (None, False) and error == "could not resolve the receiver's host"


def _conditions(w: AdminWorld, now: Any) -> list[Any]:
    """What the minute alert pass finds at ``now``."""
    from deepspace_lab.jobs.alerts import current_conditions

    async def find() -> list[Any]:
        engine = make_async_engine(w.gw.settings.database_url)
        try:
            return await current_conditions(engine, w.gw.settings, now=now)
        finally:
            await engine.dispose()

    return asyncio.run(find())


def test_a_spend_spike_is_an_anomaly_and_a_first_day_of_spend_is_not(admin_world: AdminWorld) -> None:  # noqa: F811
    """Org a spent 24 x 0.1 credit over the day before and 2 credits in the last hour (20x its
    hourly average): a spike. Org b spent 5 credits in the last hour and nothing before: no
    baseline, no spike."""
    from datetime import timedelta

    from sqlalchemy import insert

    from deepspace_lab.billing.models import UsageRecord
    from deepspace_lab.db.base import utcnow

    w, now = admin_world, utcnow()

    def row(org: Any, i: int, cost: int, at: Any) -> dict[str, Any]:
        return {"request_id": f"req_spend_{org.id[-6:]}_{i}", "trace_id": "0" * 32, "org_id": org.id,
                "project_id": org.project_id, "model": "m", "measured": "upstream", "status": "captured",
                "cost_micros": cost, "created_at": at}

    rows = [row(w.a, i, 100_000, now - timedelta(hours=1 + i)) for i in range(1, 25)]
    rows += [row(w.a, 100, 2_000_000, now - timedelta(minutes=5)), row(w.b, 0, 5_000_000, now - timedelta(minutes=5))]
    with w.gw.db.begin() as conn:
        conn.execute(insert(UsageRecord), rows)

    spikes = [c for c in _conditions(w, now) if c.key.startswith("anomaly:spend:")]
    assert [(c.org_id, c.event, c.data["kind"], c.data["spent_micros"]) for c in spikes] == [
        (w.a.id, "usage.anomaly", "spend_spike", 2_000_000)]
    assert spikes[0].data["baseline_hourly_micros"] == 100_000


def test_an_error_rate_spike_is_an_anomaly_against_the_day_before(admin_world: AdminWorld) -> None:  # noqa: F811
    """Request-log rows of four orgs: one whose last hour failed a third of the time against 2 % the
    day before (a spike); one that fails as often as it did (no spike); one with too few requests
    to judge; one whose errors are older than the 25 hours read (nothing)."""
    from datetime import timedelta

    from sqlalchemy import insert

    from deepspace_lab.audit.models import AuditLog
    from deepspace_lab.db.base import utcnow

    w, now = admin_world, utcnow()
    rows: list[dict[str, Any]] = []

    def requests(org: str, count: int, errors: int, hours_ago: float) -> None:
        rows.extend({"trace_id": "0" * 32, "kind": "gateway.request", "org_id": org, "method": "POST",
                     "path": "/deepspace/v1/chat/completions", "status_code": 502 if i < errors else 200,
                     "created_at": now - timedelta(hours=hours_ago)} for i in range(count))

    requests("org_spike", 30, 10, 0.5)
    requests("org_spike", 100, 2, 5)
    requests("org_steady", 30, 10, 0.5)
    requests("org_steady", 100, 30, 12)
    requests("org_small", 5, 5, 0.2)
    requests("org_old", 50, 50, 30)
    with w.gw.db.begin() as conn:
        conn.execute(insert(AuditLog), rows)

    spikes = [c for c in _conditions(w, now) if c.key.startswith("anomaly:errors:")]
    assert [(c.org_id, c.event, c.data) for c in spikes] == [("org_spike", "usage.anomaly", {
        "kind": "error_rate", "requests": 30, "errors": 10, "error_rate": 0.3333, "baseline_error_rate": 0.02,
        "window": "1h", "baseline_window": "24h"})]
