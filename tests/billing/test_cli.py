"""The operator's billing commands, run in-process against the backend's database."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from deepspace_lab.billing import place_hold
from deepspace_lab.cli import build_parser, main
from deepspace_lab.cli._common import actor
from deepspace_lab.db import make_sync_engine, utcnow

from ..helpers import TEST_SECRET
from .conftest import Ledger

Run = Callable[..., tuple[int, Any]]


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' settings come from the environment: point them at the test database."""
    for name in [n for n in os.environ if n.startswith("DEEPSPACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DEEPSPACE_DATABASE_URL", db_url)
    monkeypatch.setenv("DEEPSPACE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("DEEPSPACE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def cli(cli_env: None, capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli("wallet", "show", ...)`` → (exit code, parsed JSON output)."""

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--json"])
        return code, json.loads(capsys.readouterr().out)

    return run


def rows(url: str, sql: str) -> list[dict[str, Any]]:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_credit_debit_show_and_overdraft(cli: Run, ledger: Ledger) -> None:
    org = ledger.run(ledger.new_org())
    code, out = cli("wallet", "credit", "--org", org, "--micros", "5_000_000", "--reason", "invoice 42",
                    "--ref", "inv-42")
    assert code == 0 and out["entry"]["type"] == "credit" and out["wallet"]["balance_micros"] == 5_000_000
    code, again = cli("wallet", "credit", "--org", org, "--micros", "5000000", "--reason", "invoice 42",
                      "--ref", "inv-42")
    assert code == 0 and again["entry"]["replayed"] and again["wallet"]["balance_micros"] == 5_000_000
    code, out = cli("wallet", "debit", "--org", org, "--micros", "1000000", "--reason", "chargeback")
    assert code == 0 and out["wallet"]["balance_micros"] == 4_000_000
    code, out = cli("wallet", "overdraft", "--org", org, "--micros", "250000", "--reason", "trusted customer")
    assert code == 0 and out["wallet"]["overdraft_limit_micros"] == 250_000 and out["before"][
        "overdraft_limit_micros"] == 0
    code, out = cli("wallet", "show", "--org", org, "--entries", "5")
    assert code == 0 and out["wallet"] == {"org_id": org, "wallet_id": out["wallet"]["wallet_id"],
                                           "balance_micros": 4_000_000, "frozen_micros": 0,
                                           "overdraft_limit_micros": 250_000, "available_micros": 4_250_000}
    assert [e["type"] for e in out["entries"]] == ["debit", "credit"]

    audit = rows(ledger.url, "SELECT kind, actor, trace_id, detail FROM audit_logs ORDER BY id")
    assert [a["kind"] for a in audit] == ["cli.wallet.credit", "cli.wallet.credit", "cli.wallet.debit",
                                          "cli.wallet.overdraft"]
    assert {a["actor"] for a in audit} == {actor()} and actor().startswith("cli:")
    first = audit[0]["detail"] if isinstance(audit[0]["detail"], dict) else json.loads(audit[0]["detail"])
    assert (first["before"]["balance_micros"], first["after"]["balance_micros"]) == (0, 5_000_000)
    entry = rows(ledger.url, "SELECT trace_id FROM transactions WHERE ref = 'inv-42'")[0]
    assert entry["trace_id"] == audit[0]["trace_id"]  # the audit row and the entry share a trace


@pytest.mark.parametrize(("args", "code"), [
    (["wallet", "credit", "--org", "org_nope", "--micros", "5", "--reason", "x"], "org_not_found"),
    (["wallet", "debit", "--org", "org_nope", "--micros", "5", "--reason", "x"], "org_not_found"),
    (["wallet", "show", "--org", "org_nope"], "org_not_found"),
    (["wallet", "overdraft", "--org", "org_nope", "--micros", "5", "--reason", "x"], "org_not_found"),
    (["wallet", "credit", "--org", "ORG", "--micros", "-5", "--reason", "x"], "invalid_amount"),
    (["wallet", "credit", "--org", "ORG", "--micros", "0", "--reason", "x"], "invalid_amount"),
    (["wallet", "credit", "--org", "ORG", "--micros", "1.5", "--reason", "x"], "invalid_amount"),
    (["wallet", "credit", "--org", "ORG", "--micros", "5", "--reason", " "], "invalid_reason"),
    (["wallet", "debit", "--org", "ORG", "--micros", "-1", "--reason", "x"], "invalid_amount"),
    (["wallet", "debit", "--org", "ORG", "--micros", "101", "--reason", "x"], "insufficient_funds"),
    (["wallet", "overdraft", "--org", "ORG", "--micros", "-1", "--reason", "x"], "invalid_amount"),
    (["prices", "set", "m", "--input-micros-per-mtok", "-3"], "invalid_amount"),
    (["prices", "set", "m", "--effective-at", "next tuesday"], "invalid_time"),
])
def test_bad_commands_fail_with_a_stable_code_and_write_nothing(
    cli: Run, ledger: Ledger, args: list[str], code: str
) -> None:
    org = ledger.run(ledger.new_wallet(balance_micros=100))
    before = rows(ledger.url, "SELECT COUNT(*) AS n FROM transactions")[0]["n"]
    exit_code, out = cli(*[org if a == "ORG" else a for a in args])
    assert exit_code == 2 and out["error"]["code"] == code
    assert rows(ledger.url, "SELECT COUNT(*) AS n FROM transactions")[0]["n"] == before
    assert rows(ledger.url, "SELECT COUNT(*) AS n FROM audit_logs")[0]["n"] == 0
    assert rows(ledger.url, "SELECT COUNT(*) AS n FROM prices")[0]["n"] == 0
    assert ledger.balances(org) == (100, 0)


def test_prices_set_list_and_free(cli: Run, ledger: Ledger) -> None:
    code, out = cli("prices", "set", "gpt-x", "--input-micros-per-mtok", "1000000", "--output-micros-per-mtok",
                    "4000000", "--effective-at", "2026-01-01T00:00:00Z")
    assert code == 0 and out["created"] and out["before"] is None
    code, again = cli("prices", "set", "gpt-x", "--input-micros-per-mtok", "1000000", "--output-micros-per-mtok",
                      "4000000", "--effective-at", "2026-01-01T00:00:00Z")
    assert code == 0 and not again["created"] and again["price"]["id"] == out["price"]["id"]
    code, newer = cli("prices", "set", "gpt-x", "--input-micros-per-mtok", "2000000", "--output-micros-per-mtok",
                      "8000000", "--effective-at", "2026-06-01T00:00:00")
    assert code == 0 and newer["before"]["id"] == out["price"]["id"]
    future = utcnow().year + 1
    cli("prices", "set", "gpt-x", "--input-micros-per-mtok", "9", "--effective-at", f"{future}-01-01T00:00:00Z")
    code, free = cli("prices", "set", "local-llm", "--free")
    assert code == 0 and free["price"]["free"]
    code, listed = cli("prices", "list")
    assert code == 0
    assert [(p["model"], p["current"]) for p in listed] == [
        ("gpt-x", False), ("gpt-x", True), ("gpt-x", False), ("local-llm", True)]
    code, only = cli("prices", "list", "local-llm")
    assert [p["model"] for p in only] == ["local-llm"]
    kinds = [r["kind"] for r in rows(ledger.url, "SELECT kind FROM audit_logs ORDER BY id")]
    assert kinds == ["cli.prices.set"] * 4  # the replayed command wrote nothing


def test_reconcile_exits_0_when_sound_and_1_with_a_report(cli: Run, ledger: Ledger, db_url: str) -> None:
    org = ledger.run(ledger.new_wallet(balance_micros=100))
    ledger.do(place_hold, org_id=org, ref="stale", amount_micros=40, lease_s=1, now=utcnow().replace(year=2020))
    code, report = cli("billing", "reconcile")
    assert code == 0 and report["ok"] and [h["ref"] for h in report["expired_holds"]] == ["stale"]
    assert ledger.balances(org) == (100, 0)

    engine = make_sync_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE wallets SET balance_micros = balance_micros + 1"))
        code, report = cli("billing", "reconcile")
        assert code == 1 and not report["ok"] and report["problems"][0]["check"] == "wallet_total"
    finally:
        with engine.begin() as conn:  # put it back, for the autouse invariant check
            conn.execute(text("UPDATE wallets SET balance_micros = balance_micros - 1"))
        engine.dispose()
    audit = rows(db_url, "SELECT kind FROM audit_logs")
    assert [a["kind"] for a in audit] == ["cli.billing.reconcile"] * 2


def test_text_output_is_readable(cli_env: None, capsys: pytest.CaptureFixture[str], ledger: Ledger) -> None:
    org = ledger.run(ledger.new_org())
    assert main(["wallet", "credit", "--org", org, "--micros", "2500000", "--reason", "welcome"]) == 0
    assert "balance 2.500000 credits (2500000 micros)" in capsys.readouterr().out
    assert main(["wallet", "credit", "--org", org, "--micros", "-1", "--reason", "oops"]) == 2
    assert "error: `amount_micros` must be between 1" in capsys.readouterr().err


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(group.choices)


def test_every_billing_command_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    commands = _actions(build_parser())
    for name in ("wallet", "prices", "billing"):
        for action in _actions(commands[name]):
            assert f"| `{name} {action}" in readme or f"/ `{name} {action}" in readme, f"{name} {action}"
