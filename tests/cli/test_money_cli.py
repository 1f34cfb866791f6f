"""``deepspace-lab models|codes|transactions|wallet list`` as an operator drives them, on SQLite and
PostgreSQL: the same services as the Admin API, ``--json`` answers, an audit row per change."""

from __future__ import annotations

import json
from typing import Any

from .conftest import MODEL, run_json, sql


def audit(env: dict[str, str], kind: str) -> list[dict[str, Any]]:
    rows = sql(env["DEEPSPACE_DATABASE_URL"], f"SELECT actor, detail FROM audit_logs WHERE kind = '{kind}' ORDER BY id")
    return [dict(r, detail=json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]) for r in rows]


def test_models_codes_transactions_and_wallets(cli_env: dict[str, str]) -> None:
    env = cli_env
    org = run_json(["init"], env)["org_id"]

    run_json(["models", "add", "team-chat", "--upstream-name", MODEL, "--modalities", "text,image"], env)
    off = run_json(["models", "disable", "team-chat"], env)["model"]
    assert off["enabled"] is False and off["modalities"] == ["text", "image"]
    changed = run_json(["models", "update", "team-chat", "--context-window", "4096"], env)["model"]
    assert (changed["context_window"], changed["enabled"]) == (4096, False)
    assert {m["id"]: m["enabled"] for m in run_json(["models", "list"], env)}["team-chat"] is False
    [row] = audit(env, "cli.models.disable")
    assert (row["detail"]["before"]["enabled"], row["detail"]["after"]["enabled"]) == (True, False)
    assert run_json(["models", "enable", "nope"], env, expect_rc=2)["error"]["code"] == "model_not_found"

    made = run_json(["codes", "create", "--count", "2", "--micros", "1_500_000", "--note", "workshop"], env)
    batch, codes = made["batch"], made["codes"]
    assert len(codes) == 2 and batch["states"]["active"] == 2
    assert codes[0] not in json.dumps(audit(env, "cli.codes.create"))
    redeemed = run_json(["codes", "redeem", codes[0], "--org", org], env)
    assert redeemed["entry"]["amount_micros"] == 1_500_000 and batch["id"] in redeemed["entry"]["reason"]
    again = run_json(["codes", "redeem", codes[0], "--org", org], env, expect_rc=2)
    assert again["error"]["code"] == "code_redeemed"
    revoked = run_json(["codes", "revoke", "--batch", batch["id"]], env)
    assert revoked["states"] == {"active": 0, "redeemed": 1, "revoked": 1, "expired": 0}
    listed = run_json(["codes", "list", "--batch", batch["id"], "--state", "revoked"], env)["data"]
    assert [c["prefix"] for c in listed] == [codes[1][:8]]
    assert [b["id"] for b in run_json(["codes", "list"], env)["data"]] == [batch["id"]]

    entries = run_json(["transactions", "list", "--org", org, "--type", "credit"], env)
    assert [e["ref"] for e in entries["data"]][0] == redeemed["entry"]["ref"]
    first = run_json(["transactions", "list", "--limit", "1"], env)
    assert len(first["data"]) == 1 and first["next_cursor"]
    rest = run_json(["transactions", "list", "--cursor", first["next_cursor"]], env)
    assert rest["data"][0]["id"] < first["data"][0]["id"]

    wallets = run_json(["wallet", "list"], env)["data"]
    assert [(w["org_id"], w["balance_micros"] >= 1_500_000) for w in wallets] == [(org, True)]
