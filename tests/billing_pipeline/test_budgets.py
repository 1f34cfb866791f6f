"""Budget caps per org, project and key, set with ``deepspace-lab budget``: checked with the
hold, in one transaction — a cap reached is 429 ``budget_exceeded`` with ``Retry-After`` at
the next period, and nothing is reserved anywhere (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from deepspace_lab.billing.budgets import next_period_start, period_start
from deepspace_lab.cli import main

from ..helpers import TEST_SECRET, Gateway
from .conftest import body, post, rows, usage_row


@pytest.fixture
def cli(gw: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    for name in [n for n in os.environ if n.startswith("DEEPSPACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DEEPSPACE_DATABASE_URL", gw.settings.database_url)
    monkeypatch.setenv("DEEPSPACE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("DEEPSPACE_DATA_DIR", str(gw.settings.data_dir))

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--json"])
        out = capsys.readouterr()
        return code, json.loads(out.out or out.err)

    return run


def one_request_cost(gw: Gateway) -> tuple[int, int]:
    """(hold, cost) of the request the tests repeat, measured on a first request."""
    response = post(gw, body("budgeted"))
    assert response.status_code == 200
    row = usage_row(gw, response.headers["X-Request-Id"])
    return row["held_micros"], row["cost_micros"]


def counters(gw: Gateway) -> dict[str, dict[str, int]]:
    return {r["scope"]: r for r in rows(gw, "SELECT b.scope, c.reserved_micros, c.spent_micros FROM budget_counters c "
                                            "JOIN budgets b ON b.id = c.budget_id")}


def test_a_key_budget_admits_what_fits_then_refuses_with_retry_after(gw: Gateway, cli: Any) -> None:
    held, cost = one_request_cost(gw)
    t = gw.tenant
    # Room for exactly two more: the second's worst case still fits after the first's capture.
    code, out = cli("budget", "set", "--org", t.org_id, "--scope", "key", "--id", t.api_key_id, "--period", "day",
                    "--micros", str(held + cost))
    assert code == 0 and out["budget"]["limit_micros"] == held + cost and out["before"] is None
    statuses = [post(gw, body("budgeted")) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[2]
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and refused.headers["x-should-retry"] == "false"
    now = datetime.now(UTC)
    until = (next_period_start("day", now) - now).total_seconds()
    assert until - 5 <= int(refused.headers["Retry-After"]) <= until + 5
    assert not rows(gw, "SELECT 1 FROM usage_records WHERE request_id = :r", r=refused.headers["X-Request-Id"])
    assert not rows(gw, "SELECT 1 FROM holds WHERE ref = :r", r=refused.headers["X-Request-Id"])
    assert counters(gw)["key"] == {"scope": "key", "reserved_micros": 0, "spent_micros": 2 * cost}
    code, listed = cli("budget", "list", "--org", t.org_id)
    assert [(b["scope"], b["spent_micros"], b["remaining_micros"]) for b in listed] == [("key", 2 * cost, held - cost)]


def test_reaching_one_cap_leaves_no_reservation_on_the_others(gw: Gateway, cli: Any) -> None:
    held, cost = one_request_cost(gw)
    t = gw.tenant
    cli("budget", "set", "--org", t.org_id, "--scope", "org", "--period", "month", "--micros", str(100 * held))
    cli("budget", "set", "--org", t.org_id, "--scope", "project", "--id", t.project_id, "--period", "day",
        "--micros", str(held - 1))  # below one request's worst case
    response = post(gw, body("budgeted"))
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"
    assert "project" in response.json()["error"]["message"]
    assert all(c["reserved_micros"] == 0 and c["spent_micros"] == 0 for c in counters(gw).values())
    # Raise the project's cap: the next request reserves on both and settles both.
    code, out = cli("budget", "set", "--org", t.org_id, "--scope", "project", "--id", t.project_id, "--period",
                    "day", "--micros", str(10 * held))
    assert code == 0 and out["before"]["limit_micros"] == held - 1
    assert post(gw, body("budgeted")).status_code == 200
    assert {s: (c["reserved_micros"], c["spent_micros"]) for s, c in counters(gw).items()} == {
        "org": (0, cost), "project": (0, cost)}


def test_budget_changes_are_audited_and_bad_input_is_refused(gw: Gateway, cli: Any) -> None:
    t = gw.tenant
    cli("budget", "set", "--org", t.org_id, "--scope", "org", "--period", "day", "--micros", "1000")
    code, out = cli("budget", "delete", "--org", t.org_id, "--scope", "org", "--period", "day")
    assert code == 0 and out["deleted"]["limit_micros"] == 1000
    kinds = [r["kind"] for r in gw.audit_rows() if r["kind"].startswith("cli.budget")]
    assert kinds == ["cli.budget.set", "cli.budget.delete"]
    assert cli("budget", "set", "--org", t.org_id, "--scope", "key", "--id", "key_nope", "--period", "day",
               "--micros", "5")[0] != 0
    assert cli("budget", "set", "--org", t.org_id, "--scope", "org", "--period", "day", "--micros", "-5")[0] != 0
    assert cli("budget", "delete", "--org", t.org_id, "--scope", "org", "--period", "day")[0] != 0
    assert rows(gw, "SELECT 1 FROM budgets") == []
    assert post(gw, body("free to go")).status_code == 200


def test_periods_are_utc_days_and_months() -> None:
    at = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_start("day", at) == datetime(2026, 12, 31, tzinfo=UTC)
    assert next_period_start("day", at) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_period_start("month", at) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_period_start("month", at - timedelta(days=40)) == datetime(2026, 12, 1, tzinfo=UTC)
    local = datetime(2026, 3, 1, 1, 0, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    assert period_start("month", local) == datetime(2026, 3, 1, tzinfo=UTC)
