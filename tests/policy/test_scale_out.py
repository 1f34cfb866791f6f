"""Rate limits across gateway processes: the acceptance tests of the rate-limit issue.

Real ``deepspace-lab gateway`` processes over one PostgreSQL database, policies set with the
real CLI, requests over HTTP:

- two gateways sharing the test Redis, in front of a *counting upstream* run in this process
  (it tracks the requests in flight and can hold them at a gate, so a test decides when the
  admitted requests end instead of racing them);
- two gateways on a private ``redis-server`` (one ``open``, one ``closed`` on an outage) that
  a test stops and starts again.

Every test has its own org (created with the CLI), so counters never collide.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..cli.conftest import CLI, MODEL, Proc, Processes, clean_environ, free_port, run_cli, run_json, sql
from ..conftest import IN_CI, REDIS_URL, _require, make_settings
from ..helpers import TEST_SECRET, make_tenant
from .redis_proc import RedisServer

pytestmark = pytest.mark.slow

#: The counting upstream's simulated work per request (not synchronisation: tests that need
#: requests to stay in flight hold them at the upstream's gate).
WORK_S = 0.15
#: What the counting upstream reports: prompt tokens, and reply tokens (capped by max_tokens).
PROMPT_TOKENS = 9
REPLY_TOKENS = 40
GATE_TIMEOUT_S = 30.0
TENANTS = ("burst", "concurrency", "refused_rpm", "tpm", "outage", "zero", "change")


# -- the counting upstream ----------------------------------------------------------------------


class CountingUpstream:
    """An OpenAI-style upstream that counts the requests in flight (and the most at once).

    A request is in flight from the moment its body is read until just before the last bytes
    of its answer are written, so the gateway can never have finished one that is still
    counted here. With a gate, requests wait at it (after being counted) until it opens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0
        self.work_s = WORK_S
        self.gate: threading.Event | None = None
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                              "owned_by": "counting-upstream"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gate = upstream._enter()
                left = False
                try:
                    if gate is not None:
                        gate.wait(GATE_TIMEOUT_S)
                    time.sleep(upstream.work_s)  # the upstream's simulated work
                    reply = min(body.get("max_tokens") or REPLY_TOKENS, REPLY_TOKENS)
                    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": reply,
                             "total_tokens": PROMPT_TOKENS + reply}
                    base = {"id": "chatcmpl-counting", "created": 1735689600, "model": body["model"]}
                    if not body.get("stream"):
                        left = upstream._leave()
                        self._send(200, base | {"object": "chat.completion", "usage": usage, "choices": [{
                            "index": 0, "message": {"role": "assistant", "content": "tok " * reply},
                            "finish_reason": "stop"}]})
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()  # HTTP/1.0: the stream ends when the connection closes

                    def event(payload: dict[str, Any]) -> None:
                        self.wfile.write(b"data: " + json.dumps(base | {"object": "chat.completion.chunk"}
                                                                 | payload).encode() + b"\n\n")

                    event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]})
                    for _ in range(reply):
                        event({"choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]})
                    left = upstream._leave()
                    event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    if (body.get("stream_options") or {}).get("include_usage"):
                        event({"choices": [], "usage": usage})
                    self.wfile.write(b"data: [DONE]\n\n")
                finally:
                    if not left:
                        upstream._leave()

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _enter(self) -> threading.Event | None:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.gate

    def _leave(self) -> bool:
        with self._lock:
            self.in_flight -= 1
        return True

    def reset(self, *, gated: bool = False, work_s: float = WORK_S) -> None:
        """Counters back to zero; with ``gated``, requests wait until :meth:`open_gate`."""
        self.open_gate()
        with self._lock:
            self.calls, self.max_in_flight = 0, self.in_flight
            self.work_s = work_s
            self.gate = threading.Event() if gated else None

    def open_gate(self) -> None:
        with self._lock:
            gate, self.gate = self.gate, None
        if gate is not None:
            gate.set()

    def close(self) -> None:
        self.open_gate()
        self.server.shutdown()
        self.server.server_close()


# -- the deployment -----------------------------------------------------------------------------


@dataclass
class Tenant:
    org_id: str
    project_id: str
    api_key: str


@dataclass
class Deployment:
    db_url: str
    env: dict[str, str]  #: the CLI's environment
    gateways: list[str]  #: OpenAI base URLs of the two gateways on the counting upstream
    upstream: CountingUpstream
    redis: RedisServer  #: the private Redis of the outage gateways
    outage: dict[str, str]  #: failure mode -> OpenAI base URL, gateways on the private Redis
    tenants: dict[str, Tenant] = field(default_factory=dict)


def _tenant(db_url: str, root: Path, name: str) -> Tenant:
    """An org with a project, an API key and credit, made in this process: what these tests
    check is the gateways and the `policy` commands, not the commands that make orgs (they have
    their own tests), and 21 CLI processes cost more than the rest of the setup."""
    made = make_tenant(make_settings(db_url, root / "tenants"), email=f"rate-{name}@example.org")
    return Tenant(made.org_id, made.project_id, made.api_key)


@pytest.fixture(scope="module")
def deployment(pg_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Four gateways started at once on an empty database (they migrate it under the lock);
    meanwhile ``init`` makes the admin and one org per test is made with the CLI."""
    redis_url = _require(REDIS_URL, "DEEPSPACE_TEST_REDIS_URL")
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server must be installed under CI")
        pytest.skip("redis-server is not installed")
    root = tmp_path_factory.mktemp("rate-limits")
    db_url = pg_databases.create()
    env = clean_environ(DEEPSPACE_DATABASE_URL=db_url, DEEPSPACE_SECRET_KEY=TEST_SECRET,
                        DEEPSPACE_DATA_DIR=str(root / "data"), DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS="0",
                        DEEPSPACE_LOG_LEVEL="WARNING", HOME=str(root / "home"))
    upstream = CountingUpstream()
    private = RedisServer(root)
    procs = Processes(root / "logs")
    try:
        private.start()
        envs = {
            "counting-0": env | {"DEEPSPACE_REDIS_URL": redis_url, "DEEPSPACE_UPSTREAM_BASE_URL": upstream.url},
            "counting-1": env | {"DEEPSPACE_REDIS_URL": redis_url, "DEEPSPACE_UPSTREAM_BASE_URL": upstream.url},
            "open": env | {"DEEPSPACE_REDIS_URL": private.url, "DEEPSPACE_RATE_LIMIT_FAILURE_MODE": "open"},
            "closed": env | {"DEEPSPACE_REDIS_URL": private.url, "DEEPSPACE_RATE_LIMIT_FAILURE_MODE": "closed"},
        }
        started: dict[str, tuple[Proc, str]] = {}
        for name, gw_env in envs.items():
            port = free_port()
            started[name] = (procs([CLI, "gateway", "--port", str(port)], gw_env, name=f"gateway-{name}"),
                             f"http://127.0.0.1:{port}")
        run_json(["init"], env)  # migrated, with the operator the CLI acts as
        with ThreadPoolExecutor(len(TENANTS)) as pool:  # while the gateways start
            tenants = dict(zip(TENANTS, pool.map(lambda n: _tenant(db_url, root, n), TENANTS), strict=True))
        for proc, root_url in started.values():
            proc.wait_for(root_url + "/deepspace/api/health", timeout=45)
        base = {name: root_url + "/deepspace/v1" for name, (_proc, root_url) in started.items()}
        yield Deployment(db_url, env, [base["counting-0"], base["counting-1"]], upstream, private,
                         {"open": base["open"], "closed": base["closed"]}, tenants)
    finally:
        upstream.open_gate()
        procs.close()
        private.stop()
        upstream.close()


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with an ungated upstream and never leaves requests held at its gate."""
    if "deployment" not in request.fixturenames:
        yield
        return
    upstream: CountingUpstream = request.getfixturevalue("deployment").upstream
    upstream.reset()
    yield
    upstream.open_gate()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    with httpx.Client(timeout=60, limits=limits) as client:
        yield client


# -- helpers ------------------------------------------------------------------------------------


def chat(http: httpx.Client, base_url: str, tenant: Tenant, *, content: str = "hello there",
         stream: bool = False, max_tokens: int | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return http.post(base_url + "/chat/completions", json=body,
                     headers={"Authorization": f"Bearer {tenant.api_key}"})


def set_rate_limit(d: Deployment, tenant: Tenant, **limits: int) -> dict[str, Any]:
    args = ["policy", "set", "rate-limit", "--org", tenant.org_id]
    for name, value in limits.items():
        args += [f"--{name}", str(value)]
    policy: dict[str, Any] = run_json(args, d.env)["policy"]
    return policy


def error_code(response: httpx.Response) -> str | None:
    try:
        code: str | None = response.json()["error"]["code"]
        return code
    except (ValueError, KeyError, TypeError):
        return None


def assert_rate_limited(response: httpx.Response, what: str) -> None:
    """429 ``rate_limited`` with a Retry-After, refused by the limit named ``what``."""
    assert response.status_code == 429, (response.status_code, response.text)
    assert error_code(response) == "rate_limited", response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert what in response.json()["error"]["message"], response.text


def fire(pool: ThreadPoolExecutor, count: int, request: Callable[[int], httpx.Response]
         ) -> list[Future[httpx.Response]]:
    """Start ``request(0)`` ... ``request(count - 1)`` at once on ``pool``."""
    return [pool.submit(request, i) for i in range(count)]


def over_both(http: httpx.Client, d: Deployment, tenant: Tenant, **body: Any) -> Callable[[int], httpx.Response]:
    """A request to fire: request ``i`` goes through gateway ``i % 2``."""
    return lambda i: chat(http, d.gateways[i % 2], tenant, **body)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll ``condition`` until it holds (fails after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout_s}s: {what}"
        time.sleep(0.01)


def hold_until_settled(d: Deployment, futures: list[Future[httpx.Response]]) -> list[httpx.Response]:
    """With the upstream gated: wait until every request is either answered (refused) or
    held at the upstream, open the gate, and return the answers in order."""
    wait_until(lambda: sum(f.done() for f in futures) + d.upstream.in_flight == len(futures),
               "every request refused or held at the upstream")
    d.upstream.open_gate()
    return [f.result(timeout=60) for f in futures]


def usage_rows(d: Deployment, tenant: Tenant) -> list[dict[str, Any]]:
    """The org's usage rows once all are settled (capture or release ends a pending row)."""
    query = ("SELECT request_id, status, prompt_tokens, completion_tokens, stream FROM usage_records "
             "WHERE org_id = :org ORDER BY id")
    wait_until(lambda: all(r["status"] != "pending" for r in sql(d.db_url, query, org=tenant.org_id)),
               "usage rows settled")
    return sql(d.db_url, query, org=tenant.org_id)


def audit_row(d: Deployment, request_id: str) -> dict[str, Any]:
    """The gateway's audit row of a request (rows are written in batches: poll for it)."""
    query = ("SELECT status_code, error_code, detail FROM audit_logs "
             "WHERE kind = 'gateway.request' AND request_id = :r")
    wait_until(lambda: bool(sql(d.db_url, query, r=request_id)), f"audit row of {request_id}")
    (row,) = sql(d.db_url, query, r=request_id)
    return row


def token_bound(content: str, max_tokens: int) -> int:
    """What a one-message request counts against a TPM limit at admission: the prompt's upper
    bound (UTF-8 bytes + 8 per message + 16) plus max_tokens."""
    return len(content.encode()) + 8 + 16 + max_tokens


# -- 1. a burst across two processes ------------------------------------------------------------


def test_new_api_969_a_burst_over_two_gateways_admits_exactly_the_rpm(deployment: Deployment,
                                                                      http: httpx.Client) -> None:
    """200 requests at once over two processes against ``--rpm 60``: exactly 60 served (and
    billed), 140 refused with 429 ``rate_limited`` that never reached billing."""
    d, tenant = deployment, deployment.tenants["burst"]
    set_rate_limit(d, tenant, rpm=60)
    with ThreadPoolExecutor(50) as pool:
        responses = [f.result() for f in fire(pool, 200, over_both(http, d, tenant))]

    assert Counter(r.status_code for r in responses) == {200: 60, 429: 140}
    for response in responses:
        if response.status_code == 429:
            assert_rate_limited(response, "requests per minute")
    # each process got 100 requests and refused some: one counter, not one per process
    refused_by = Counter(i % 2 for i, r in enumerate(responses) if r.status_code == 429)
    assert refused_by[0] >= 40 and refused_by[1] >= 40, refused_by
    assert d.upstream.calls == 60

    rows = usage_rows(d, tenant)
    served = {r.headers["X-Request-Id"] for r in responses if r.status_code == 200}
    assert {r["request_id"] for r in rows} == served and len(rows) == 60
    assert all(r["status"] == "captured" for r in rows)
    holds = sql(d.db_url, "SELECT state, count(*) AS n FROM holds WHERE org_id = :org GROUP BY state",
                org=tenant.org_id)
    assert holds == [{"state": "captured", "n": 60}]


# -- 2. a concurrency limit across processes ----------------------------------------------------


def test_new_api_2071_litellm_16011_a_concurrency_limit_holds_across_two_gateways(deployment: Deployment,
                                                                                 http: httpx.Client) -> None:
    """``--concurrency 5`` set with the CLI, 120 requests at once over two processes (new-api
    #2071: the setting had no effect and users reached 100+ in flight; LiteLLM #16011: each
    process counted its own): the upstream never sees more than 5 at once and sees exactly 5
    (both processes shared one limit under contention); the others get 429; once they end, all
    5 slots are free again."""
    d, tenant = deployment, deployment.tenants["concurrency"]
    set_rate_limit(d, tenant, concurrency=5)
    d.upstream.reset(gated=True)
    with ThreadPoolExecutor(120) as pool:
        responses = hold_until_settled(d, fire(pool, 120, over_both(http, d, tenant)))

    assert d.upstream.max_in_flight == 5 and d.upstream.calls == 5
    assert Counter(r.status_code for r in responses) == {200: 5, 429: 115}
    for response in responses:
        if response.status_code == 429:
            assert_rate_limited(response, "concurrent requests")

    # the slots were released: 5 at once fit again, over both processes
    d.upstream.reset(gated=True)
    with ThreadPoolExecutor(5) as pool:
        again = hold_until_settled(d, fire(pool, 5, over_both(http, d, tenant)))
    assert [r.status_code for r in again] == [200] * 5 and d.upstream.max_in_flight == 5


# -- 3. refused by one limit, consumes none of the others ---------------------------------------


def test_litellm_39309_a_request_refused_for_concurrency_consumes_no_rpm(deployment: Deployment,
                                                                         http: httpx.Client) -> None:
    """``--rpm 10 --concurrency 1``: the requests refused while one is in flight do not count
    per minute, so 9 more are admitted after it (10 in the minute), and the 11th is refused."""
    d, tenant = deployment, deployment.tenants["refused_rpm"]
    set_rate_limit(d, tenant, rpm=10, concurrency=1)
    d.upstream.reset(gated=True)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(chat, http, d.gateways[0], tenant, content="the long one")
        wait_until(lambda: d.upstream.in_flight == 1 or first.done(), "the first request at the upstream")
        try:
            refused = [f.result(timeout=15) for f in fire(pool, 6, over_both(http, d, tenant))]
        finally:
            d.upstream.open_gate()
        assert first.result(timeout=30).status_code == 200
    for response in refused:
        assert_rate_limited(response, "concurrent requests")

    d.upstream.reset(work_s=0)
    statuses = [chat(http, d.gateways[i % 2], tenant, content=f"after {i}").status_code for i in range(9)]
    assert statuses == [200] * 9  # 1 + 9 = the 10 per minute: the 6 refused ones counted nothing
    assert_rate_limited(chat(http, d.gateways[1], tenant, content="eleventh"), "requests per minute")
    assert len(usage_rows(d, tenant)) == 10


# -- 4. tokens per minute under streaming -------------------------------------------------------


def test_tokens_per_minute_hold_under_streaming_and_are_corrected_to_what_was_used(
        deployment: Deployment, http: httpx.Client) -> None:
    """``--tpm 300``, streams of one short message with max_tokens 50: each counts its upper
    bound at admission, so 3 of 12 concurrent streams fit; at capture each is corrected to
    the tokens really used, so later requests fit where the bounds alone would not."""
    d, tenant = deployment, deployment.tenants["tpm"]
    content, max_tokens, tpm = "hi", 50, 300
    bound = token_bound(content, max_tokens)  # 76
    assert tpm // bound == 3
    set_rate_limit(d, tenant, tpm=tpm)
    d.upstream.reset(gated=True)
    with ThreadPoolExecutor(12) as pool:
        responses = hold_until_settled(d, fire(pool, 12, over_both(http, d, tenant, content=content, stream=True,
                                                                  max_tokens=max_tokens)))

    assert d.upstream.max_in_flight == 3
    assert Counter(r.status_code for r in responses) == {200: 3, 429: 9}
    for response in responses:
        if response.status_code == 429:
            assert_rate_limited(response, "tokens per minute")
        else:
            assert response.text.rstrip().endswith("data: [DONE]") and '"usage"' in response.text
    rows = usage_rows(d, tenant)
    assert len(rows) == 3 and all(r["stream"] and r["status"] == "captured" for r in rows)
    assert all(r["prompt_tokens"] + r["completion_tokens"] < bound for r in rows)

    # From the recorded figures: a request fits iff what the window counts (the corrected
    # tokens of those admitted) plus its own bound stays within the limit.
    admitted = len(rows)
    outcomes = []
    for _ in range(5):
        used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in usage_rows(d, tenant))
        assert used <= tpm
        fits = used + bound <= tpm
        response = chat(http, d.gateways[admitted % 2], tenant, content=content, stream=True, max_tokens=max_tokens)
        outcomes.append((used, fits, response.status_code))
        if not fits:
            assert_rate_limited(response, "tokens per minute")
            break
        assert response.status_code == 200, outcomes
        # the bounds alone (every admitted request at its bound) would have refused this one
        assert (admitted + 1) * bound > tpm, outcomes
        admitted += 1
    assert [fits for _used, fits, _status in outcomes] == [True, True, False], outcomes  # 147, 196, 245 used
    total = sum(r["prompt_tokens"] + r["completion_tokens"] for r in usage_rows(d, tenant))
    assert total == admitted * (PROMPT_TOKENS + REPLY_TOKENS) <= tpm


# -- 5. Redis stopped and started again ---------------------------------------------------------


def test_new_api_6412_redis_stopped_and_started_again_in_both_failure_modes(deployment: Deployment,
                                                                           http: httpx.Client) -> None:
    """Gateways on a private Redis, one ``open`` and one ``closed``: while Redis is down the
    open one admits (noted in the audit row) and the closed one answers 503
    ``rate_limiter_unavailable`` (never a 500); once Redis is back, empty, both serve and
    enforce limits again without a restart, even when it came back between two requests."""
    d, tenant = deployment, deployment.tenants["outage"]
    set_rate_limit(d, tenant, rpm=1000)
    modes = ("open", "closed")
    assert [chat(http, d.outage[m], tenant).status_code for m in modes] == [200, 200]

    d.redis.stop()
    try:
        during = {m: [chat(http, d.outage[m], tenant, content=f"outage {i}") for i in range(3)] for m in modes}
    finally:
        d.redis.start()
    for response in during["open"]:
        assert response.status_code == 200, response.text
        row = audit_row(d, response.headers["X-Request-Id"])
        assert row["status_code"] == 200 and row["detail"]["rate_limit"] == "unavailable", row
    for response in during["closed"]:
        assert response.status_code == 503, response.text
        assert error_code(response) == "rate_limiter_unavailable"
        assert int(response.headers["Retry-After"]) >= 1

    # back (empty, on the same port), without restarting any gateway
    after = [chat(http, d.outage[m], tenant, content="back") for m in modes]
    assert [r.status_code for r in after] == [200, 200], [r.text for r in after]
    assert "rate_limit" not in (audit_row(d, after[0].headers["X-Request-Id"])["detail"] or {})

    # restarted between two requests (the gateways' pooled connections are dead): still served
    d.redis.stop()
    d.redis.start()
    after = [chat(http, d.outage[m], tenant, content="bounced") for m in reversed(modes)]
    assert [r.status_code for r in after] == [200, 200], [r.text for r in after]
    assert "rate_limit" not in (audit_row(d, after[1].headers["X-Request-Id"])["detail"] or {})

    # and limits are enforced again: the fresh window counts those 2, so rpm 3 admits 1 more
    set_rate_limit(d, tenant, rpm=3)
    assert chat(http, d.outage["closed"], tenant, content="third").status_code == 200
    assert_rate_limited(chat(http, d.outage["open"], tenant, content="fourth"), "requests per minute")
    assert_rate_limited(chat(http, d.outage["closed"], tenant, content="fifth"), "requests per minute")


# -- 6. zero means no limit ---------------------------------------------------------------------


def test_new_api_pr_1026_zero_means_no_limit_and_all_zeros_is_refused(deployment: Deployment,
                                                                      http: httpx.Client) -> None:
    """All zeros is refused by the CLI (``invalid_policy``, nothing set); ``--rpm 0
    --concurrency 3`` sets a concurrency limit only: sequential requests are not limited."""
    d, tenant = deployment, deployment.tenants["zero"]
    result = run_cli(["policy", "set", "rate-limit", "--org", tenant.org_id, "--rpm", "0", "--tpm", "0",
                      "--concurrency", "0", "--json"], d.env)
    assert result.returncode != 0, result.stdout
    assert json.loads(result.stdout)["error"]["code"] == "invalid_policy", result.stdout
    assert run_json(["policy", "list", "--org", tenant.org_id], d.env) == []

    policy = set_rate_limit(d, tenant, rpm=0, concurrency=3)
    assert policy["spec"] == {"rpm": 0, "tpm": 0, "concurrency": 3}
    limits = http.get(d.gateways[0].removesuffix("/v1") + "/api/limits",
                      headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert limits.status_code == 200, limits.text
    assert [(r["limit"], r["max"]) for r in limits.json()["rate_limits"]] == [("concurrent_requests", 3)]

    d.upstream.reset(work_s=0)
    statuses = [chat(http, d.gateways[i % 2], tenant, content=f"free {i}").status_code for i in range(30)]
    assert statuses == [200] * 30


# -- 7. a change acts on the next request in every process --------------------------------------


def test_a_policy_change_takes_effect_on_the_next_request_in_every_gateway(deployment: Deployment,
                                                                           http: httpx.Client) -> None:
    """``--rpm 2`` set with the CLI: the next requests through both gateways admit exactly 2
    together; ``policy delete``: the very next request through either gateway is admitted."""
    d, tenant = deployment, deployment.tenants["change"]
    d.upstream.reset(work_s=0)
    # both processes have read the policies (none for this org) and serve
    assert [chat(http, gw, tenant).status_code for gw in d.gateways] == [200, 200]

    policy = set_rate_limit(d, tenant, rpm=2)
    responses = [chat(http, d.gateways[i % 2], tenant, content=f"limited {i}") for i in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429, 429]
    for response in responses[2:]:
        assert_rate_limited(response, "requests per minute")

    deleted = run_json(["policy", "delete", str(policy["id"])], d.env)
    assert deleted["deleted"]["id"] == policy["id"]
    assert [chat(http, gw, tenant).status_code for gw in reversed(d.gateways)] == [200, 200]
