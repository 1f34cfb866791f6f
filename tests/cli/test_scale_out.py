"""Several ``deepspace-lab gateway`` processes over one PostgreSQL database and one Redis: the
deployment for more than one process. Requests through any of them are served and audited
exactly once; gateways started together on an empty database migrate it once, under the lock."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from openai import OpenAI

from deepspace_lab.db.migrate import head_revision

from ..conftest import REDIS_URL, _require
from ..helpers import TEST_SECRET
from .conftest import MODEL, Proc, Processes, clean_environ, run_json, sql, start_gateways

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    url: str
    gateways: list[tuple[Proc, str]]
    init: dict[str, Any]


@pytest.fixture(scope="module")
def cluster(pg_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three gateways started at the same moment on an EMPTY database (no migrate, no init):
    each migrates on start under the lock. Then ``init`` makes the admin and key."""
    redis_url = _require(REDIS_URL, "DEEPSPACE_TEST_REDIS_URL")
    root = tmp_path_factory.mktemp("cluster")
    url = pg_databases.create()
    env = clean_environ(DEEPSPACE_DATABASE_URL=url, DEEPSPACE_SECRET_KEY=TEST_SECRET, DEEPSPACE_REDIS_URL=redis_url,
                        DEEPSPACE_DATA_DIR=str(root / "data"), DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS="0",
                        DEEPSPACE_LOG_LEVEL="WARNING", HOME=str(root / "home"))
    assert sql(url, "SELECT to_regclass('public.alembic_version') AS t") == [{"t": None}]
    procs = Processes(root / "logs")
    try:
        gateways = start_gateways(procs, env, 3)
        yield Cluster(url, gateways, run_json(["init"], env))
    finally:
        procs.close()


def sdk(base_url: str, key: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)


def test_gateways_started_together_migrate_an_empty_database_once(cluster: Cluster) -> None:
    assert sql(cluster.url, "SELECT version_num FROM alembic_version") == [{"version_num": head_revision()}]
    assert cluster.init["created"] is True  # init found the schema the gateways made, and no admin
    for proc, base_url in cluster.gateways:
        assert proc.popen.poll() is None, proc.describe()
        assert MODEL in {m.id for m in sdk(base_url, cluster.init["api_key"]).models.list()}


def test_a_key_revoked_through_one_gateway_is_refused_by_every_other_on_the_next_request(
        cluster: Cluster) -> None:
    import httpx

    urls = [base_url.removesuffix("/v1") for _proc, base_url in cluster.gateways]
    admin = {"Authorization": f"Bearer {cluster.init['api_key']}"}
    created = httpx.post(urls[0] + "/api/keys", headers=admin, json={"name": "short-lived"}).json()
    key = {"Authorization": f"Bearer {created['api_key']}"}
    assert [httpx.get(u + "/api/me", headers=key).status_code for u in urls] == [200, 200, 200]
    assert httpx.delete(urls[1] + f"/api/keys/{created['id']}", headers=admin).status_code == 200
    assert [httpx.get(u + "/api/me", headers=key).status_code for u in urls] == [401, 401, 401]


def test_requests_alternate_across_gateways_and_each_is_audited_once(cluster: Cluster) -> None:
    """Same key through every process in turn; after a clean stop of all of them, every request
    has exactly one audit row, and each process wrote the rows of the requests it served.
    (Stops the cluster: keep this the module's last test.)"""
    clients = [sdk(base_url, cluster.init["api_key"]) for _proc, base_url in cluster.gateways]
    served: dict[str, int] = {}  # trace id -> index of the gateway that served it
    replies: dict[int, set[str]] = {}  # question -> the replies it got
    for i in range(9):
        which, question, stream = i % 3, i // 3, i % 2 == 1
        raw = clients[which].chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"question {question}"}], stream=stream)
        assert raw.status_code == 200
        served[raw.headers["x-trace-id"]] = which
        parsed = raw.parse()
        text = ("".join(c.choices[0].delta.content or "" for c in parsed if c.choices) if stream
                else parsed.choices[0].message.content)
        replies.setdefault(question, set()).add(text)
    assert len(served) == 9
    # the same question through different gateways gets the same (deterministic) reply
    assert all(len(texts) == 1 and next(iter(texts)).startswith("[simulated]") for texts in replies.values())

    for proc, _base_url in cluster.gateways:
        assert proc.stop(signal.SIGTERM) == 0, proc.describe()
        assert "Traceback" not in proc.stderr, proc.describe()

    rows = sql(cluster.url, "SELECT trace_id, status_code, model FROM audit_logs "
                            "WHERE kind = 'gateway.request' AND path = '/deepspace/v1/chat/completions'")
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_trace.setdefault(row["trace_id"], []).append(row)
    assert set(by_trace) == set(served)
    assert all(len(found) == 1 for found in by_trace.values()), by_trace
    assert all(found[0]["status_code"] == 200 and found[0]["model"] == MODEL for found in by_trace.values())
    assert sorted(served.values()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # all three processes served and audited
