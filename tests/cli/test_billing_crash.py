"""A gateway killed between hold and capture: its hold stays open until its lease lapses,
then ``deepspace-lab billing reconcile`` releases it once and marks the usage row — the
caller is charged nothing, the ledger stays consistent (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..helpers import wait_for
from .conftest import MODEL, Processes, run_cli, run_json, sql, start_gateways


def test_a_killed_gateways_hold_is_released_by_reconciliation_once_its_lease_lapses(
        cli_env: dict[str, str], spawn: Processes) -> None:
    env = {**cli_env, "DEEPSPACE_HOLD_LEASE_S": "1"}
    init = run_json(["init"], env)
    url = env["DEEPSPACE_DATABASE_URL"]
    ((proc, base_url),) = start_gateways(spawn, env)
    body = {"model": MODEL, "stream": True,
            "messages": [{"role": "user", "content": "long [sim:tokens=400] [sim:token_latency_ms=50]"}]}
    with httpx.stream("POST", base_url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {init['api_key']}"}) as response:
        request_id = response.headers["X-Request-Id"]
        lines = response.iter_lines()
        next(lines)
        # the stream outlives a lease: the gateway renews it while the request is alive
        wait_for(lambda: sql(url, "SELECT lease_expires_at > created_at + interval '1 second' AS renewed "
                                  "FROM holds WHERE ref = :r" if "postgresql" in url else
                             "SELECT julianday(lease_expires_at) - julianday(created_at) > 1.0 / 86400 AS renewed "
                             "FROM holds WHERE ref = :r", r=request_id)[0]["renewed"])
        proc.kill()  # SIGKILL: no shutdown, no capture, no release
    (hold,) = sql(url, "SELECT state, amount_micros FROM holds WHERE ref = :r", r=request_id)
    assert hold["state"] == "open"
    assert sql(url, "SELECT status FROM usage_records WHERE request_id = :r", r=request_id) == [{"status": "pending"}]

    reports: list[Any] = []

    def reconciled() -> bool:
        result = run_cli(["billing", "reconcile", "--json"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        reports.append(json.loads(result.stdout))
        return bool(reports[-1]["expired_holds"])

    wait_for(reconciled, timeout_s=30)
    assert [h["released_micros"] for h in reports[-1]["expired_holds"]] == [hold["amount_micros"]]
    assert sql(url, "SELECT state FROM holds WHERE ref = :r", r=request_id) == [{"state": "expired"}]
    (row,) = sql(url, "SELECT status, measured, cost_micros, error_code FROM usage_records WHERE request_id = :r",
                 r=request_id)
    assert row == {"status": "expired", "measured": "unknown", "cost_micros": 0, "error_code": "lease_expired"}
    wallet = run_json(["wallet", "show", "--org", init["org_id"]], env)["wallet"]
    assert (wallet["balance_micros"], wallet["frozen_micros"]) == (init["credit_micros"], 0)
    again = run_json(["billing", "reconcile"], env)  # released once: nothing more to do
    assert again["ok"] and again["expired_holds"] == []
