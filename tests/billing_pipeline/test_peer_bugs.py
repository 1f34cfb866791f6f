"""The billing and budget bugs reported against LiteLLM, new-api and one-api
(``shared/reference/gateways.md`` §(d), cases 1–40 less the rate-limit ones), one test each,
named after the report. Several restate a path tested elsewhere in this folder on purpose:
the list is the contract.

Not applicable here: #2 (tokens-per-minute: the rate-limit issue); #37 (no auto-created end
users: every caller is a member of an org created with its wallet)."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from deepspace_lab.auth import add_member, create_user
from deepspace_lab.billing import (
    BudgetExceededError,
    InvalidAmountError,
    UsageOutcome,
    UsageStart,
    check_invariants,
    debit_wallet,
    place_hold,
    release_hold,
    scopes_of,
    set_budget,
    set_price,
)
from deepspace_lab.config import ConfigError
from deepspace_lab.pipeline import Pipeline
from deepspace_lab.pipeline.registry import discover_steps

from ..helpers import TENANT_CREDIT_MICROS, Gateway, make_tenant, wait_for
from .conftest import MODEL, assert_billed_once, body, post, rows, settled_usage_row, stream_chat, usage_row, wallet


def run(gw: Gateway, work: Callable[[Any], Any]) -> Any:
    """``work(session)`` on the gateway's loop, committed."""
    async def go() -> Any:
        async with gw.runtime.sessions() as session:
            result = await work(session)
            if session.in_transaction():
                await session.commit()
            return result

    return gw.loop.run(go())


def held_for(gw: Gateway, content: str = "peer") -> int:
    return int(usage_row(gw, post(gw, body(content)).headers["X-Request-Id"])["held_micros"])


def tenant_with(gw: Gateway, credit_micros: int) -> Any:
    return make_tenant(gw.settings, email=f"p-{secrets.token_hex(4)}@example.org", credit_micros=credit_micros)


def burst(gw: Gateway, n: int, content: str, *, key: str) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: post(gw, body(content), key=key), range(n)))


def set_cap(gw: Gateway, *, scope: str, scope_id: str, limit: int, period: str = "day",
            org_id: str | None = None) -> None:
    run(gw, lambda s: set_budget(s, org_id=org_id or gw.tenant.org_id, scope=scope, scope_id=scope_id,
                                 period=period, limit_micros=limit))


# -- concurrency, overdraw and negative balances ------------------------------------------------

def test_new_api_6609_concurrent_requests_never_overdraw_a_balance_of_one_and_a_half_requests(gw: Gateway) -> None:
    held = held_for(gw, "toctou [sim:delay_ms=800]")
    tenant = tenant_with(gw, held + held // 2)
    codes = [r.status_code for r in burst(gw, 8, "toctou [sim:delay_ms=800]", key=tenant.api_key)]
    assert sorted(codes) == [200] + [402] * 7
    assert wallet(gw, tenant.org_id)[0] >= 0


def test_litellm_34732_a_budget_under_parallel_calls_admits_only_what_it_covers(gw: Gateway) -> None:
    held = held_for(gw, "parallel [sim:delay_ms=800]")
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=3 * held + held // 2)
    codes = [r.status_code for r in burst(gw, 10, "parallel [sim:delay_ms=800]", key=gw.tenant.api_key)]
    assert codes.count(200) == 3 and codes.count(429) == 7, codes


def test_litellm_40095_concurrent_first_requests_on_a_fresh_budget_do_not_bypass_it(gw: Gateway) -> None:
    held = held_for(gw, "first [sim:delay_ms=800]")
    tenant = tenant_with(gw, TENANT_CREDIT_MICROS)
    set_cap(gw, scope="org", scope_id=tenant.org_id, org_id=tenant.org_id, limit=2 * held)  # no counter row yet
    codes = [r.status_code for r in burst(gw, 10, "first [sim:delay_ms=800]", key=tenant.api_key)]
    assert codes.count(200) == 2 and codes.count(429) == 8, codes


def test_one_api_pr925_a_rich_wallet_never_skips_a_key_budget(gw: Gateway) -> None:
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=1)
    response = post(gw, body("rich"))
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"


def test_one_api_pr1312_the_hold_covers_the_prompt_as_well_as_the_output_cap(billed_gateways: Any) -> None:
    gw = billed_gateways(default_max_output_tokens=16)
    long_prompt = "word " * 4000
    held = held_for(gw, long_prompt)
    output_only = held_for(gw, "x")
    assert held > output_only + 4000 * 500_000 // 1_000_000  # the prompt's bytes are in the hold
    tenant = tenant_with(gw, output_only * 2)  # covers a short request, not the long prompt
    assert post(gw, body("x"), key=tenant.api_key).status_code == 200
    assert post(gw, body(long_prompt), key=tenant.api_key).status_code == 402


def test_one_api_1132_a_top_up_is_seen_on_the_very_next_request(gw: Gateway) -> None:
    tenant = tenant_with(gw, 0)
    assert post(gw, body("broke"), key=tenant.api_key).status_code == 402
    from deepspace_lab.billing import credit_wallet
    run(gw, lambda s: credit_wallet(s, org_id=tenant.org_id, amount_micros=10**9, reason="top-up", actor="t"))
    assert post(gw, body("paid"), key=tenant.api_key).status_code == 200  # no cached quota to go stale


def test_one_api_1846_the_wallet_is_the_only_authority_no_cache_to_drift(gw: Gateway) -> None:
    assert post(gw, body("one")).status_code == 200
    assert check_ledger_ok(gw)
    with gw.db.begin() as conn:  # tamper: the reconciliation names the drift instead of hiding it
        conn.execute(text("UPDATE wallets SET balance_micros = balance_micros + 1 WHERE org_id = :o"),
                      {"o": gw.tenant.org_id})
    problems = run(gw, lambda s: check_invariants(s)).problems
    assert [p.check for p in problems] == ["wallet_total"]
    with gw.db.begin() as conn:
        conn.execute(text("UPDATE wallets SET balance_micros = balance_micros - 1 WHERE org_id = :o"),
                     {"o": gw.tenant.org_id})


def check_ledger_ok(gw: Gateway) -> bool:
    return not run(gw, lambda s: check_invariants(s)).problems


def test_one_api_204_an_exhausted_wallet_is_refused_on_the_next_request(gw: Gateway) -> None:
    held = held_for(gw)
    balance = wallet(gw)[0]
    run(gw, lambda s: debit_wallet(s, org_id=gw.tenant.org_id, amount_micros=balance - held + 1, reason="drain",
                                   actor="t"))
    response = post(gw, body("peer"))
    assert response.status_code == 402 and response.headers["x-should-retry"] == "false"


# -- streaming, disconnects and usage accuracy ---------------------------------------------------

def test_new_api_5287_a_mid_stream_error_bills_what_was_generated_never_the_error_text(gw: Gateway) -> None:
    request_id, lines = stream_chat(gw, "err [sim:tokens=30] [sim:fail_after=5] [sim:token_latency_ms=5]")
    assert any("upstream_stream_interrupted" in line for line in lines)
    row = settled_usage_row(gw, request_id)
    assert row["measured"] == "estimated" and row["completion_tokens"] <= 5


def test_new_api_4168_a_failure_before_the_first_token_bills_nothing_not_even_the_prompt(
        billed_gateways: Any) -> None:
    gw = billed_gateways(upstream_timeout_s=0.3)
    response = post(gw, body("slow [sim:delay_ms=2000]", stream=True))
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert (row["cost_micros"], row["prompt_tokens"], row["status"]) == (0, 0, "released")


def test_new_api_5235_a_disconnect_after_tokens_flowed_never_bills_zero(gw: Gateway) -> None:
    request_id, _ = stream_chat(gw, "flow [sim:tokens=30] [sim:token_latency_ms=20]", leave_after=4)
    row = settled_usage_row(gw, request_id)
    assert row["cost_micros"] > 0 and row["completion_tokens"] == 30


def test_new_api_7062_a_disconnect_after_done_bills_in_full(gw: Gateway) -> None:
    request_id, lines = stream_chat(gw, "full [sim:tokens=9]")
    assert [line for line in lines if line][-1] == "data: [DONE]"
    row = settled_usage_row(gw, request_id)
    assert (row["measured"], row["completion_tokens"], row["delivered_tokens"]) == ("upstream", 9, 9)


def test_new_api_pr4464_the_gateway_drains_to_the_final_usage_after_a_disconnect(gw: Gateway) -> None:
    request_id, _ = stream_chat(gw, "drain [sim:tokens=25] [sim:token_latency_ms=20]", leave_after=2)
    row = settled_usage_row(gw, request_id)
    assert row["measured"] == "drained" and row["completion_tokens"] == 25


def test_litellm_pr30630_a_cancelled_stream_still_has_exactly_one_usage_row(gw: Gateway) -> None:
    request_id, _ = stream_chat(gw, "cancel [sim:tokens=25] [sim:token_latency_ms=20]", leave_after=1)
    settled_usage_row(gw, request_id)
    assert_billed_once(gw, request_id)


def test_litellm_13245_a_non_stream_client_that_leaves_is_billed_the_upstream_result(gw: Gateway) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.base_url + "/chat/completions", json=body("wait [sim:delay_ms=700] [sim:tokens=11]"),
                   headers={"Authorization": f"Bearer {gw.tenant.api_key}"}, timeout=0.2)
    wait_for(lambda: bool(rows(gw, "SELECT 1 FROM usage_records WHERE org_id = :o", o=gw.tenant.org_id)))
    (row,) = rows(gw, "SELECT request_id FROM usage_records WHERE org_id = :o", o=gw.tenant.org_id)
    row = settled_usage_row(gw, row["request_id"])
    assert (row["measured"], row["completion_tokens"], row["status"]) == ("upstream", 11, "captured")


def test_litellm_pr36008_drains_are_bounded_in_time_and_in_number(billed_gateways: Any) -> None:
    gw = billed_gateways(drain_timeout_s=0.3, max_concurrent_drains=1)
    first, _ = stream_chat(gw, "a [sim:tokens=300] [sim:token_latency_ms=30]", leave_after=2)
    second, _ = stream_chat(gw, "b [sim:tokens=300] [sim:token_latency_ms=30]", leave_after=2)
    codes = {settled_usage_row(gw, r)["error_code"] for r in (first, second)}
    assert codes <= {"drain_timeout", "drain_limit"} and "drain_timeout" in codes


def test_litellm_pr35290_usage_is_always_asked_upstream_and_estimates_are_flagged(gw: Gateway) -> None:
    measured, _ = stream_chat(gw, "asked anyway")
    estimated, _ = stream_chat(gw, "none given [sim:no_usage]")
    assert settled_usage_row(gw, measured)["measured"] == "upstream"
    assert settled_usage_row(gw, estimated)["measured"] == "estimated"


def test_new_api_95_a_stream_that_fails_before_content_bills_nothing(gw: Gateway) -> None:
    request_id, _ = stream_chat(gw, "empty [sim:fail_after=0]")
    row = settled_usage_row(gw, request_id)
    assert (row["status"], row["cost_micros"], row["completion_tokens"]) == ("released", 0, 0)


# -- hold leaks, refunds and settlement ----------------------------------------------------------

class Boom:
    name = "test_boom"

    def __init__(self, services: Any) -> None:
        pass

    async def __call__(self, ctx: Any, call_next: Any) -> None:
        raise RuntimeError("a bug in a step after the hold")


def test_new_api_4424_a_crash_after_the_hold_releases_it(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gw.runtime, "_pipeline", Pipeline(gw.runtime.services, extensions=["test_boom"],
                                                          registry=dict(discover_steps(), test_boom=Boom)))
    response = post(gw, body("boom"))
    assert response.status_code == 500
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert (row["status"], row["error_code"]) == ("released", "internal_error")
    assert wallet(gw) == (TENANT_CREDIT_MICROS, 0)


def test_new_api_2656_a_failed_upstream_call_leaves_the_wallet_unchanged(gw: Gateway) -> None:
    for directive in ("[sim:error=503]", "[sim:error=429]", "[sim:fail_after=0]"):
        post(gw, body(f"fail {directive}"))
    assert wallet(gw) == (TENANT_CREDIT_MICROS, 0)


@pytest.fixture
def greedy_upstream() -> Iterator[str]:
    """An upstream that reports far more prompt tokens than it was sent."""

    class Greedy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            payload = json.dumps({"id": "greedy-1", "object": "chat.completion", "model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 2_000_000, "completion_tokens": 1, "total_tokens": 2_000_001}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Greedy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_new_api_6911_a_capture_above_the_hold_is_charged_within_what_the_wallet_covers(
        billed_gateways: Any, greedy_upstream: str) -> None:
    gw = billed_gateways(upstream_base_url=greedy_upstream)
    rich = post(gw, body("greedy"))
    row = assert_billed_once(gw, rich.headers["X-Request-Id"])
    assert row["cost_micros"] > row["held_micros"] and row["error_code"] is None  # the balance covered the excess
    poor = tenant_with(gw, row["held_micros"] * 2)
    response = post(gw, body("greedy"), key=poor.api_key)
    capped = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert capped["cost_micros"] == capped["held_micros"] and capped["error_code"] == "cost_exceeds_hold"
    assert wallet(gw, poor.org_id)[0] >= 0


def test_litellm_pr30522_cancelled_requests_leave_no_reservation_on_a_budget(gw: Gateway) -> None:
    set_cap(gw, scope="project", scope_id=gw.tenant.project_id, limit=10**9)
    request_id, _ = stream_chat(gw, "bye [sim:tokens=40] [sim:token_latency_ms=20]", leave_after=2)
    post(gw, body("fail [sim:error=500]"))
    row = settled_usage_row(gw, request_id)
    (counter,) = rows(gw, "SELECT reserved_micros, spent_micros FROM budget_counters")
    assert counter == {"reserved_micros": 0, "spent_micros": row["cost_micros"]}


def test_litellm_pr38647_worst_case_reservations_end_with_the_request(gw: Gateway) -> None:
    held = held_for(gw, "agent")
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=3 * held)
    statuses = [post(gw, body("agent")).status_code for _ in range(5)]
    assert statuses == [200] * 5  # each reserves its worst case only while it runs
    (counter,) = rows(gw, "SELECT reserved_micros, spent_micros FROM budget_counters")
    assert counter["reserved_micros"] == 0 and 0 < counter["spent_micros"] < 3 * held


def test_litellm_35524_a_model_without_a_price_is_refused_before_any_hold(gw: Gateway) -> None:
    from deepspace_lab.catalog import upsert_model
    run(gw, lambda s: upsert_model(s, name="unpriced-model", upstream_name=MODEL))
    response = post(gw, {"model": "unpriced-model", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_price"
    assert not rows(gw, "SELECT 1 FROM holds WHERE ref = :r", r=response.headers["X-Request-Id"])
    assert not rows(gw, "SELECT 1 FROM usage_records WHERE request_id = :r", r=response.headers["X-Request-Id"])


# -- counter drift, double counting and duplicates ------------------------------------------------

NOTHING = UsageOutcome(measured="none")


def _hold_with_budget(gw: Gateway, ref: str, *, now: datetime | None = None) -> Any:
    t = gw.tenant
    return run(gw, lambda s: place_hold(
        s, org_id=t.org_id, ref=ref, amount_micros=1000, now=now, request_id=ref,
        usage=UsageStart(request_id=ref, trace_id="0" * 32, model=MODEL, project_id=t.project_id,
                         api_key_id=t.api_key_id),
        budget_scopes=scopes_of(org_id=t.org_id, project_id=t.project_id, api_key_id=t.api_key_id)))


def test_litellm_28247_a_reseeded_or_replayed_hold_never_adds_twice(gw: Gateway) -> None:
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=10_000)
    first = _hold_with_budget(gw, "req_replayed_hold")
    again = _hold_with_budget(gw, "req_replayed_hold")
    assert again.replayed and again.id == first.id
    assert rows(gw, "SELECT reserved_micros FROM budget_counters") == [{"reserved_micros": 1000}]
    run(gw, lambda s: release_hold(s, ref="req_replayed_hold", outcome=NOTHING))


def test_litellm_30460_a_retried_settlement_does_not_double_apply(gw: Gateway) -> None:
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=10_000)
    _hold_with_budget(gw, "req_retried_settle")
    run(gw, lambda s: release_hold(s, ref="req_retried_settle", outcome=NOTHING))
    replay = run(gw, lambda s: release_hold(s, ref="req_retried_settle", outcome=NOTHING))
    assert replay.replayed
    assert rows(gw, "SELECT reserved_micros, spent_micros FROM budget_counters") == [
        {"reserved_micros": 0, "spent_micros": 0}]


def test_litellm_36926_reconciliation_catches_a_counter_that_disagrees_with_the_ledger(gw: Gateway) -> None:
    set_cap(gw, scope="org", scope_id=gw.tenant.org_id, limit=10**9)
    assert post(gw, body("counted")).status_code == 200
    with gw.db.begin() as conn:
        conn.execute(text("UPDATE budget_counters SET spent_micros = spent_micros * 2"))
    assert [p.check for p in run(gw, lambda s: check_invariants(s)).problems] == ["budget_counter"]
    with gw.db.begin() as conn:
        conn.execute(text("UPDATE budget_counters SET spent_micros = spent_micros / 2"))


def test_litellm_29576_a_new_period_starts_from_zero(gw: Gateway) -> None:
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=1500)
    today = datetime.now(UTC)
    _hold_with_budget(gw, "req_period_1", now=today)
    with pytest.raises(BudgetExceededError):
        _hold_with_budget(gw, "req_period_2", now=today)
    tomorrow = today + timedelta(days=1)
    _hold_with_budget(gw, "req_period_3", now=tomorrow)  # the next day has its own counter
    for ref in ("req_period_1", "req_period_3"):
        run(gw, lambda s, ref=ref: release_hold(s, ref=ref, now=tomorrow, outcome=NOTHING))


def test_litellm_pr30661_a_budget_is_one_counter_for_every_gateway_process(billed_gateways: Any) -> None:
    one = billed_gateways()
    two = billed_gateways()  # a second process on the same database
    first = usage_row(one, post(one, body("shared")).headers["X-Request-Id"])
    set_cap(one, scope="key", scope_id=one.tenant.api_key_id, limit=first["held_micros"] + first["cost_micros"])
    # the same key through both: the first two fit, the third's worst case would cross the cap
    codes = [post(gw, body("shared"), key=one.tenant.api_key).status_code for gw in (one, two, one)]
    assert codes == [200, 200, 429]


def test_litellm_15740_one_usage_row_per_request_is_a_database_rule(gw: Gateway) -> None:
    request_id = post(gw, body("once")).headers["X-Request-Id"]
    with pytest.raises(IntegrityError), gw.db.begin() as conn:
        conn.execute(text("INSERT INTO usage_records (request_id, trace_id, org_id, model, prompt_tokens, "
                          "completion_tokens, delivered_tokens, cost_micros, measured, status, held_micros, stream, "
                          "created_at) SELECT request_id, trace_id, org_id, model, 0, 0, 0, 0, 'none', 'released', 0, "
                          "stream, created_at FROM usage_records WHERE request_id = :r"), {"r": request_id})


def test_litellm_17814_read_only_calls_never_bill(gw: Gateway) -> None:
    auth = {"Authorization": f"Bearer {gw.tenant.api_key}"}
    for path in ("/deepspace/v1/models", "/deepspace/api/usage", "/deepspace/api/wallet"):
        assert httpx.get(gw.url + path, headers=auth).status_code == 200
    assert rows(gw, "SELECT 1 FROM holds") == [] and rows(gw, "SELECT 1 FROM usage_records") == []


def test_litellm_39455_a_retried_logical_request_has_one_usage_row(gw: Gateway) -> None:
    key = {"Idempotency-Key": "logical-call-1"}
    responses = [post(gw, body("retried"), **key) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(rows(gw, "SELECT 1 FROM usage_records WHERE org_id = :o", o=gw.tenant.org_id)) == 1


# -- budget-enforcement bypasses and false blocks ---------------------------------------------------

def test_litellm_12977_no_configuration_takes_billing_out_of_a_model_call(gw: Gateway) -> None:
    for step in ("budget_hold", "usage_capture"):
        assert step in gw.runtime.pipeline.chat_step_names
        with pytest.raises(ConfigError):
            Pipeline(gw.runtime.services, extensions=[step])


def test_litellm_27381_a_gateway_will_not_start_without_its_billing_steps(gw: Gateway) -> None:
    registry = {k: v for k, v in discover_steps().items() if k != "budget_hold"}
    with pytest.raises(ConfigError, match="budget_hold"):
        Pipeline(gw.runtime.services, registry=registry)


def test_litellm_11083_a_logged_in_user_meets_the_same_budget_as_a_key(gw: Gateway) -> None:
    password = "correct horse battery"

    async def member(session: Any) -> None:
        user = await create_user(session, email="jwt-user@example.org", password=password)
        await add_member(session, org_id=gw.tenant.org_id, email=user.email, role="member", acting_role="owner")

    run(gw, member)
    tokens = httpx.post(gw.url + "/deepspace/api/auth/login",
                        json={"email": "jwt-user@example.org", "password": password}).json()
    set_cap(gw, scope="project", scope_id=gw.tenant.project_id, limit=1)
    response = httpx.post(gw.base_url + "/chat/completions", json=body("jwt"), timeout=30,
                          headers={"Authorization": f"Bearer {tokens['access_token']}",
                                   "X-DeepSpace-Project": gw.tenant.project_id})
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"


def test_litellm_40020_deleting_a_cap_takes_effect_at_once_everywhere(gw: Gateway) -> None:
    from deepspace_lab.billing import delete_budget
    set_cap(gw, scope="key", scope_id=gw.tenant.api_key_id, limit=1)
    assert post(gw, body("capped")).status_code == 429
    run(gw, lambda s: delete_budget(s, org_id=gw.tenant.org_id, scope="key", scope_id=gw.tenant.api_key_id,
                                    period="day"))
    assert post(gw, body("uncapped")).status_code == 200


def test_litellm_20615_no_budget_means_no_budget_block_and_prices_are_validated(gw: Gateway) -> None:
    for _ in range(3):
        assert post(gw, body("unbudgeted")).status_code == 200
    with pytest.raises(InvalidAmountError):
        run(gw, lambda s: set_price(s, model_name=MODEL, input_micros_per_mtok=-1, output_micros_per_mtok=1))


def test_litellm_35369_a_free_model_stays_usable_with_an_empty_wallet(gw: Gateway) -> None:
    from deepspace_lab.catalog import upsert_model

    async def free_model(session: Any) -> None:
        await upsert_model(session, name="free-model", upstream_name=MODEL)
        await set_price(session, model_name="free-model", free=True, effective_at=datetime(2025, 1, 1, tzinfo=UTC))

    run(gw, free_model)
    tenant = tenant_with(gw, 0)
    response = post(gw, {"model": "free-model", "messages": [{"role": "user", "content": "hi"}]}, key=tenant.api_key)
    assert response.status_code == 200
    row = assert_billed_once(gw, response.headers["X-Request-Id"])
    assert row["cost_micros"] == 0 and row["status"] == "captured"
