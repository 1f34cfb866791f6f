"""Risk and policy through one in-process gateway, on SQLite and PostgreSQL: IP rules at the
door (before the credential is read), trusted proxies, the model policy after the hold, the
in-process rate limiter, and the caller's view of its limits. Policies are changed as an
operator would (the policy service, another connection) and act on the very next request.
The cross-process cases (Redis shared by several gateways) are in ``test_scale_out.py``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from deepspace_lab.billing import set_budget
from deepspace_lab.client import DeepSpaceClient, PermissionDeniedError, RateLimitedError
from deepspace_lab.policy.limiter import RedisLimiter
from deepspace_lab.policy.service import delete_policy, set_policy

from ..billing_pipeline.conftest import MODEL, assert_billed_once, body, post, rows, wallet
from ..helpers import Gateway, wait_for
from .redis_proc import free_port

OTHER_MODEL = "deepspace-simulated-long"


def put_policy(gw: Gateway, kind: str, scope: str, scope_id: str, spec: dict[str, Any], subject: str = "") -> int:
    async def run() -> int:
        async with gw.runtime.sessions() as session:
            after, _ = await set_policy(session, kind=kind, scope=scope, scope_id=scope_id, spec=spec,
                                        subject=subject, actor="test")
            await session.commit()
            return after.id

    return gw.loop.run(run())


def drop_policy(gw: Gateway, policy_id: int) -> None:
    async def run() -> None:
        async with gw.runtime.sessions() as session:
            await delete_policy(session, policy_id=policy_id, actor="test")
            await session.commit()

    gw.loop.run(run())


def get(gw: Gateway, path: str, *, key: str | None = None, **headers: str) -> httpx.Response:
    return httpx.get(gw.url + path, headers={"Authorization": f"Bearer {key or gw.tenant.api_key}", **headers},
                     timeout=30)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# -- IP rules ---------------------------------------------------------------------------------

def test_a_globally_denied_address_is_refused_before_its_key_is_looked_up_and_audited(gw: Gateway) -> None:
    rule = put_policy(gw, "ip_rule", "global", "", {"action": "deny"}, subject="127.0.0.0/8")
    # A key that does not exist: had it been looked up, the answer would be 401.
    refused = post(gw, body("hi"), key="dsk_000000000000_" + "x" * 43)
    assert refused.status_code == 403 and error_code(refused) == "ip_denied"
    assert post(gw, body("hi")).status_code == 403
    (audit,) = gw.audit_rows(trace_id=refused.headers["X-Trace-Id"])
    assert audit["error_code"] == "ip_denied" and audit["status_code"] == 403
    assert audit["client_ip"] == "127.0.0.1" and audit["org_id"] is None and audit["api_key_id"] is None
    assert rows(gw, "SELECT count(*) AS n FROM usage_records")[0]["n"] == 0  # nothing reached billing
    assert get(gw, "/deepspace/api/me").status_code == 403  # product routes too
    drop_policy(gw, rule)
    assert post(gw, body("hi")).status_code == 200  # the next request after the change


def test_an_org_allow_list_excludes_every_other_address_and_only_that_org(
        billed_gateways: Callable[..., Gateway]) -> None:
    gw = billed_gateways()
    other = billed_gateways(database_url=gw.settings.database_url)  # a second org on the same database
    put_policy(gw, "ip_rule", "org", gw.tenant.org_id, {"action": "allow"}, subject="10.0.0.0/8")
    refused = post(gw, body("hi"))
    assert refused.status_code == 403 and error_code(refused) == "ip_denied"
    assert "allow list" in refused.json()["error"]["message"]
    assert post(other, body("hi")).status_code == 200
    put_policy(gw, "ip_rule", "org", gw.tenant.org_id, {"action": "allow"}, subject="127.0.0.1")
    assert post(gw, body("hi")).status_code == 200


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(gw: Gateway) -> None:
    put_policy(gw, "ip_rule", "global", "", {"action": "deny"}, subject="198.51.100.0/24")
    passed = post(gw, body("hi"), **{"X-Forwarded-For": "198.51.100.7"})
    assert passed.status_code == 200  # the header is whatever the client wrote: not believed
    (audit,) = gw.audit_rows(trace_id=passed.headers["X-Trace-Id"])
    assert audit["client_ip"] == "127.0.0.1"
    put_policy(gw, "ip_rule", "global", "", {"action": "allow"}, subject="203.0.113.0/24")
    spoofed = post(gw, body("hi"), **{"X-Forwarded-For": "203.0.113.5"})  # nor can it sneak onto an allow list
    assert spoofed.status_code == 403 and error_code(spoofed) == "ip_denied"


def test_behind_a_trusted_proxy_the_forwarded_client_is_the_one_checked_and_audited(
        billed_gateways: Callable[..., Gateway]) -> None:
    gw = billed_gateways(trusted_proxies="127.0.0.1, 10.0.0.0/8")
    put_policy(gw, "ip_rule", "global", "", {"action": "deny"}, subject="2001:db8::/32")
    denied = post(gw, body("hi"), **{"X-Forwarded-For": "2001:db8::7, 10.1.1.1"})  # client, then a proxy
    assert denied.status_code == 403 and error_code(denied) == "ip_denied"
    (audit,) = gw.audit_rows(trace_id=denied.headers["X-Trace-Id"])
    assert audit["client_ip"] == "2001:db8::7"
    # The client may prepend anything; only the hop our proxies added counts.
    passed = post(gw, body("hi"), **{"X-Forwarded-For": "2001:db8::7, 192.0.2.9"})
    assert passed.status_code == 200
    (audit,) = gw.audit_rows(trace_id=passed.headers["X-Trace-Id"])
    assert audit["client_ip"] == "192.0.2.9"


# -- model policy -----------------------------------------------------------------------------

def test_a_model_the_policy_refuses_is_refused_after_the_hold_released_nothing_billed_audited(gw: Gateway) -> None:
    put_policy(gw, "model_policy", "org", gw.tenant.org_id, {"allow": [OTHER_MODEL]})
    before = wallet(gw)
    refused = post(gw, body("hi"))
    assert refused.status_code == 403 and error_code(refused) == "model_not_allowed"
    request_id = refused.headers["X-Request-Id"]
    usage = assert_billed_once(gw, request_id)  # one hold, then its release
    assert usage["status"] == "released" and usage["cost_micros"] == 0
    assert usage["error_code"] == "model_not_allowed"
    assert wallet(gw) == before
    (audit,) = gw.audit_rows(trace_id=refused.headers["X-Trace-Id"])
    assert audit["error_code"] == "model_not_allowed" and audit["model"] == MODEL
    listed = {m["id"] for m in get(gw, "/deepspace/v1/models").json()["data"]}
    assert listed == {OTHER_MODEL}
    assert post(gw, body("hi", model=OTHER_MODEL)).status_code == 200


def test_project_policy_narrows_the_org_policy(gw: Gateway) -> None:
    put_policy(gw, "model_policy", "org", gw.tenant.org_id, {"allow": [MODEL, OTHER_MODEL]})
    put_policy(gw, "model_policy", "project", gw.tenant.project_id, {"allow": [OTHER_MODEL]})
    assert error_code(post(gw, body("hi"))) == "model_not_allowed"
    assert get(gw, "/deepspace/api/limits").json()["allowed_models"] == [OTHER_MODEL]


# -- rate limits, in process ------------------------------------------------------------------

def test_requests_per_minute_in_process_with_retry_after(gw: Gateway) -> None:
    put_policy(gw, "rate_limit", "key", gw.tenant.api_key_id, {"rpm": 3})
    assert [post(gw, body("hi")).status_code for _ in range(3)] == [200, 200, 200]
    refused = post(gw, body("hi"))
    assert refused.status_code == 429 and error_code(refused) == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "x-should-retry" not in refused.headers  # retryable, later
    (audit,) = gw.audit_rows(trace_id=refused.headers["X-Trace-Id"])
    assert audit["error_code"] == "rate_limited" and audit["api_key_id"] == gw.tenant.api_key_id
    assert audit["detail"]["rate_limited_by"] == f"rpm:key:{gw.tenant.api_key_id}"
    assert not rows(gw, "SELECT 1 FROM usage_records WHERE request_id = :r", r=refused.headers["X-Request-Id"])
    limits = get(gw, "/deepspace/api/limits").json()
    assert limits["rate_limits"] == [{"scope": "key", "scope_id": gw.tenant.api_key_id,
                                      "limit": "requests_per_minute", "max": 3, "window_s": 60.0, "used": 3}]
    assert limits["rate_limiter"] == "in-process"


def test_a_request_refused_by_a_budget_gives_its_rate_limit_back(gw: Gateway) -> None:
    """A refusal by a later limit consumes nothing of the earlier ones (litellm #39309, the
    budget cap standing in for the parallel limit)."""
    put_policy(gw, "rate_limit", "org", gw.tenant.org_id, {"rpm": 2, "tpm": 1_000_000})

    async def cap() -> None:
        async with gw.runtime.sessions() as session:
            await set_budget(session, org_id=gw.tenant.org_id, scope="org", scope_id=gw.tenant.org_id,
                             period="day", limit_micros=1, actor="test")
            await session.commit()

    gw.loop.run(cap())
    for _ in range(5):
        refused = post(gw, body("hi"))
        assert refused.status_code == 429 and error_code(refused) == "budget_exceeded"
    used = {r["limit"]: r["used"] for r in get(gw, "/deepspace/api/limits").json()["rate_limits"]}
    assert used == {"requests_per_minute": 0, "tokens_per_minute": 0}


def test_tokens_per_minute_are_corrected_to_what_the_call_used(gw: Gateway) -> None:
    put_policy(gw, "rate_limit", "project", gw.tenant.project_id, {"tpm": 100_000})
    response = post(gw, body("hello", max_tokens=20))
    assert response.status_code == 200
    used = response.json()["usage"]
    (row,) = get(gw, "/deepspace/api/limits").json()["rate_limits"]
    assert row["used"] == used["prompt_tokens"] + used["completion_tokens"]  # not the hold's upper bound
    too_big = post(gw, body("hello", max_tokens=200_000))
    assert too_big.status_code == 429 and error_code(too_big) == "rate_limited"
    assert too_big.headers["x-should-retry"] == "false"  # no wait makes it fit


def test_a_changed_limit_acts_on_the_next_request(gw: Gateway) -> None:
    policy = put_policy(gw, "rate_limit", "org", gw.tenant.org_id, {"rpm": 1})
    assert post(gw, body("hi")).status_code == 200
    assert post(gw, body("hi")).status_code == 429
    put_policy(gw, "rate_limit", "org", gw.tenant.org_id, {"rpm": 2})
    assert post(gw, body("hi")).status_code == 200
    drop_policy(gw, policy + 1)
    assert [post(gw, body("hi")).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("spec", [{"rpm": 0, "concurrency": 2}, {"tpm": 0, "rpm": 1000}])
def test_zero_means_no_limit_of_that_kind(gw: Gateway, spec: dict[str, int]) -> None:
    """new-api PR #1026: a limit of 0 must mean unlimited, never 429."""
    put_policy(gw, "rate_limit", "org", gw.tenant.org_id, spec)
    assert {post(gw, body("hi")).status_code for _ in range(5)} == {200}


# -- the login limiter on the shared limiter --------------------------------------------------

def test_failed_logins_from_one_address_are_counted_across_gateways_sharing_redis(
        billed_gateways: Callable[..., Gateway], redis_url: str) -> None:
    """The login limiter moved onto the shared limiter: two processes on one Redis allow one
    address ten failures in all, not ten each — one after another, and in a burst over both
    at once, where exactly ten run (new-api #969's check-then-count let a whole burst through).
    (Behind a trusted proxy, so the test can pick addresses no other test uses.)"""
    import secrets

    first = billed_gateways(redis_url=redis_url, trusted_proxies="127.0.0.1")
    second = billed_gateways(redis_url=redis_url, trusted_proxies="127.0.0.1",
                             database_url=first.settings.database_url)

    def address() -> str:
        return f"2001:db8:{secrets.token_hex(2)}::{secrets.token_hex(2)}"

    def attempt(gw: Gateway, client: str) -> httpx.Response:
        return httpx.post(gw.url + "/deepspace/api/auth/login", headers={"X-Forwarded-For": client}, timeout=30,
                          json={"email": "nobody@example.org", "password": "not-the-password"})

    client = address()
    codes = [attempt(gw, client).status_code for gw in (first, second) * 5]
    assert codes == [401] * 10
    for gw in (first, second):
        limited = attempt(gw, client)
        assert limited.status_code == 429 and error_code(limited) == "login_rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1

    async def burst(client: str) -> list[httpx.Response]:  # one client thread: the gateways keep the GIL
        async with httpx.AsyncClient(timeout=30, headers={"X-Forwarded-For": client}) as http:
            return list(await asyncio.gather(*(
                http.post(gw.url + "/deepspace/api/auth/login", json={"email": "nobody@example.org",
                                                                      "password": "not-the-password"})
                for gw in (first, second) * 10)))

    # The burst is about counting, not about outages: a patient client, so that this process's
    # loops, starved on a busy test machine, do not read as Redis being down (then logins fail open).
    patient = [(gw, RedisLimiter(redis_url, timeout_s=10.0)) for gw in (first, second)]  # one per loop
    for gw, limiter in patient:
        gw.runtime.login_limiter.limiter = limiter
    try:
        answers = asyncio.run(burst(address()))
    finally:
        for gw, limiter in patient:
            gw.loop.run(limiter.close())
    assert Counter(a.status_code for a in answers) == {401: 10, 429: 10}
    assert {error_code(a) for a in answers if a.status_code == 429} == {"login_rate_limited"}


def test_a_call_longer_than_its_lease_keeps_its_hold_and_its_slot(billed_gateways: Callable[..., Gateway]) -> None:
    """Both leases are renewed while the call runs (every third of DEEPSPACE_HOLD_LEASE_S): the
    hold's expiry moves on, and the in-flight slot still refuses a second request after the
    first lease would have lapsed."""
    import threading

    gw = billed_gateways(hold_lease_s=0.6)
    put_policy(gw, "rate_limit", "org", gw.tenant.org_id, {"concurrency": 1})
    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(post(gw, body("[sim:delay_ms=2500] hi"))))
    slow.start()
    wait_for(lambda: bool(rows(gw, "SELECT 1 FROM holds WHERE state = 'open'")))
    (hold,) = rows(gw, "SELECT id FROM holds WHERE state = 'open'")

    def lease() -> datetime:
        (row,) = rows(gw, "SELECT lease_expires_at FROM holds WHERE id = :i", i=hold["id"])
        value = row["lease_expires_at"]  # SQLite gives text through a raw query
        return (datetime.fromisoformat(value) if isinstance(value, str) else value).replace(tzinfo=None)

    first = lease()
    wait_for(lambda: lease() > first + timedelta(seconds=0.6), timeout_s=5)  # renewed, more than once
    refused = post(gw, body("hi"))  # past the first lease: the slot is still held
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    slow.join(30)
    assert answers[0].status_code == 200
    assert post(gw, body("hi")).status_code == 200


# -- every route to a model, and Redis out of reach ------------------------------------------

def test_the_product_stream_is_under_the_same_rate_limits_and_model_policy(gw: Gateway) -> None:
    """Every route to a model meets the same enforcement (litellm #12977: one client path skipped
    the budget): a product stream counts in the same per-minute window as the OpenAI route, and
    the model policy refuses it after the hold, which is released."""
    client = DeepSpaceClient(base_url=gw.url, api_key=gw.tenant.api_key, timeout_s=20)
    conv = client.create_conversation()["id"]
    limit = put_policy(gw, "rate_limit", "key", gw.tenant.api_key_id, {"rpm": 2})
    assert post(gw, body("hi")).status_code == 200
    events = list(client.stream_chat(conversation_id=conv, content="hi [sim:tokens=3]", model=MODEL))
    assert events[-1].event == "done" and events[-1].data["error_code"] is None
    with pytest.raises(RateLimitedError) as limited:
        list(client.stream_chat(conversation_id=conv, content="third", model=MODEL))
    assert limited.value.code == "rate_limited"
    assert post(gw, body("hi")).status_code == 429  # the stream's request counted on the OpenAI route too

    drop_policy(gw, limit)
    put_policy(gw, "model_policy", "project", gw.tenant.project_id, {"allow": [OTHER_MODEL]})
    with pytest.raises(PermissionDeniedError) as refused:
        list(client.stream_chat(conversation_id=conv, content="x", model=MODEL))
    assert refused.value.code == "model_not_allowed"
    (row,) = rows(gw, "SELECT request_id FROM usage_records WHERE error_code = 'model_not_allowed'")
    usage = assert_billed_once(gw, row["request_id"])
    assert usage["status"] == "released" and usage["cost_micros"] == 0


def test_an_unreachable_redis_never_turns_into_500s(billed_gateways: Callable[..., Gateway]) -> None:
    """new-api #6412 (limiter errors became 500s), for everything the gateway asks Redis: with
    nothing listening at DEEPSPACE_REDIS_URL (the default ``open`` mode) model calls on both
    routes are admitted without limits and say so in the audit, the caller's limits read as
    unknown, failed logins are still refused as such, and a Stop that needs Redis is 503 with
    Retry-After."""
    gw = billed_gateways(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    put_policy(gw, "rate_limit", "key", gw.tenant.api_key_id, {"rpm": 1})
    answers = [post(gw, body("hi")) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]  # rpm 1, but it cannot be counted
    (audit,) = gw.audit_rows(trace_id=answers[1].headers["X-Trace-Id"])
    assert audit["detail"]["rate_limit"] == "unavailable"
    client = DeepSpaceClient(base_url=gw.url, api_key=gw.tenant.api_key, timeout_s=20)
    conv = client.create_conversation()["id"]
    events = list(client.stream_chat(conversation_id=conv, content="hi [sim:tokens=3]", model=MODEL))
    assert events[-1].event == "done" and events[-1].data["error_code"] is None
    limits = get(gw, "/deepspace/api/limits").json()
    assert [r["used"] for r in limits["rate_limits"]] == [None] and limits["rate_limiter"] == "redis"
    login = httpx.post(gw.url + "/deepspace/api/auth/login", timeout=30,
                       json={"email": "nobody@example.org", "password": "not-the-password"})
    assert login.status_code == 401
    cancel = httpx.post(gw.url + "/deepspace/api/chat/req_elsewhere/cancel", timeout=30,
                        headers={"Authorization": f"Bearer {gw.tenant.api_key}"})
    assert cancel.status_code == 503 and error_code(cancel) == "stream_registry_unavailable"
    assert int(cancel.headers["Retry-After"]) >= 1
