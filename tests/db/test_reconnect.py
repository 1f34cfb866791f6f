"""A PostgreSQL restart under a running gateway: the requests after it are served.

The engine has no pre-ping (``db.engine``): a dead pooled connection is found out by the
statement that uses it, and SQLAlchemy then replaces every connection opened before; the raw
pools (key reads, ledger) reconnect and send their statement once more. So a restart costs at
most the request that finds it out, never a stream of failures. The restart is played by
terminating every backend of the gateway's database and waiting until they are gone.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from deepspace_lab.db.rawpool import conninfo_of

from ..helpers import Gateway

HELLO = {"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "hello"}]}


def terminate_backends(url: str) -> int:
    with psycopg.connect(conninfo_of(url), autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_database_restart_costs_at_most_the_request_that_finds_it(
        gateway_factory: Callable[..., Gateway], backend: str) -> None:
    gw = gateway_factory()
    headers = {"Authorization": f"Bearer {gw.tenant.api_key}"}

    def requests(n: int, *, first: str) -> list[int]:
        """``n`` requests in turn, a chat completion (raw pools, ledger, audit) and a wallet
        read (a session on the engine's pool), starting with ``first``."""
        kinds = ["chat", "wallet"] if first == "chat" else ["wallet", "chat"]
        with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as client:
            return [client.post("/deepspace/v1/chat/completions", json=HELLO).status_code
                    if kinds[i % 2] == "chat" else client.get("/deepspace/api/wallet").status_code
                    for i in range(n)]

    assert requests(6, first="chat") == [200] * 6  # every pool has connections now
    for first in ("wallet", "chat", "wallet"):
        assert terminate_backends(gw.settings.database_url) >= 2
        statuses = requests(10, first=first)
        assert statuses[0] in (200, 500) and statuses[1:] == [200] * 9, statuses
