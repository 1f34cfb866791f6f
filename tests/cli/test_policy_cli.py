"""``deepspace-lab policy set|list|delete`` driven as an operator would, on SQLite and
PostgreSQL: what each command prints, what it stores, one audit row per change (none when
nothing changes), and refused commands that exit non-zero with a stable code and write nothing."""

from __future__ import annotations

import json
from typing import Any

from .conftest import MODEL, run_cli, run_json, sql


def init(env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = run_json(["init"], env)
    assert result["created"] is True
    return result


def url_of(env: dict[str, str]) -> str:
    return env["DEEPSPACE_DATABASE_URL"]


def audit_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    rows = sql(url_of(env), "SELECT kind, actor, org_id, detail FROM audit_logs "
                            "WHERE kind IN ('cli.policy.set', 'cli.policy.delete') ORDER BY id")
    for row in rows:  # JSON comes back as text from SQLite through a raw query
        if isinstance(row["detail"], str):
            row["detail"] = json.loads(row["detail"])
    return rows


def policy_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    return sql(url_of(env), "SELECT id, kind, scope, scope_id, subject, ended_at, ended_by FROM policies ORDER BY id")


def epoch(env: dict[str, str]) -> int:
    return int(sql(url_of(env), "SELECT epoch FROM policy_epoch")[0]["epoch"])


def test_set_replace_no_change_and_delete_each_audited_once(cli_env: dict[str, str], backend: str) -> None:
    deployment = init(cli_env)
    org, project = deployment["org_id"], deployment["project_id"]
    assert epoch(cli_env) == 0 and audit_rows(cli_env) == []

    first = run_json(["policy", "set", "rate-limit", "--org", org, "--rpm", "60"], cli_env)
    policy = first["policy"]
    assert (first["before"], first["changed"]) == (None, True)
    assert {k: policy[k] for k in ("kind", "org_id", "scope", "scope_id", "subject", "spec", "in_force",
                                    "ended_at", "ended_by")} == {
        "kind": "rate_limit", "org_id": org, "scope": "org", "scope_id": org, "subject": None,
        "spec": {"rpm": 60, "tpm": 0, "concurrency": 0}, "in_force": True, "ended_at": None, "ended_by": None}
    actor = policy["actor"]
    assert actor.startswith("cli:") and len(actor) > 4
    [audit] = audit_rows(cli_env)
    assert (audit["kind"], audit["actor"], audit["org_id"]) == ("cli.policy.set", actor, org)
    assert audit["detail"] == {"policy_id": policy["id"], "before": None, "after": policy}
    assert epoch(cli_env) == 1

    # the same again: nothing changes, nothing audited
    if backend == "sqlite":  # the text form, once
        text = run_cli(["policy", "set", "rate-limit", "--org", org, "--rpm", "60"], cli_env)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith("Already in force: #") and "rpm 60" in text.stdout
    else:
        same = run_json(["policy", "set", "rate-limit", "--org", org, "--rpm", "60", "--tpm", "0"], cli_env)
        assert same == {"policy": policy, "before": policy, "changed": False}
    assert len(audit_rows(cli_env)) == 1 and epoch(cli_env) == 1

    # other limits: a new version, the old one closed, before/after audited
    second = run_json(["policy", "set", "rate-limit", "--org", org, "--rpm", "120", "--tpm", "5000"], cli_env)
    new = second["policy"]
    assert second["changed"] is True and second["before"] == policy
    assert new["id"] != policy["id"] and new["spec"] == {"rpm": 120, "tpm": 5000, "concurrency": 0}
    audit = audit_rows(cli_env)[-1]
    assert audit["kind"] == "cli.policy.set"
    assert audit["detail"] == {"policy_id": new["id"], "before": policy, "after": new}

    rule = run_json(["policy", "set", "ip-rule", "--global", "--cidr", "203.0.113.7/24", "--action", "deny"],
                    cli_env)["policy"]
    assert (rule["scope"], rule["scope_id"], rule["org_id"]) == ("global", "", None)
    assert (rule["subject"], rule["spec"]) == ("203.0.113.0/24", {"action": "deny"})
    audit = audit_rows(cli_env)[-1]
    assert (audit["org_id"], audit["detail"]["after"]) == (None, rule)

    models = run_json(["policy", "set", "models", "--org", org, "--project", project,
                       "--allow", f"{MODEL}, {MODEL}"], cli_env)["policy"]
    assert (models["kind"], models["scope"], models["scope_id"], models["org_id"]) == (
        "model_policy", "project", project, org)
    assert models["spec"] == {"allow": [MODEL]}
    assert audit_rows(cli_env)[-1]["detail"]["after"] == models

    deleted = run_json(["policy", "delete", str(new["id"])], cli_env)["deleted"]
    assert deleted == new  # as it was
    audit = audit_rows(cli_env)[-1]
    assert (audit["kind"], audit["actor"], audit["org_id"]) == ("cli.policy.delete", actor, org)
    assert audit["detail"] == {"policy_id": new["id"], "before": new, "after": None}

    # five changes: five audit rows, five epochs; what the table keeps
    assert [a["kind"] for a in audit_rows(cli_env)] == ["cli.policy.set"] * 4 + ["cli.policy.delete"]
    assert epoch(cli_env) == 5
    stored = {r["id"]: r for r in policy_rows(cli_env)}
    assert sorted(stored) == sorted([policy["id"], new["id"], rule["id"], models["id"]])
    assert stored[policy["id"]]["ended_at"] is not None and stored[policy["id"]]["ended_by"] == actor
    assert stored[new["id"]]["ended_at"] is not None and stored[new["id"]]["ended_by"] == actor
    assert stored[rule["id"]]["ended_at"] is None and stored[models["id"]]["ended_at"] is None


def list_json(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    result = run_cli(["policy", "list", *args, "--json"], env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return list(json.loads(result.stdout))


def test_list_in_force_and_history(cli_env: dict[str, str]) -> None:
    org = init(cli_env)["org_id"]
    old = run_json(["policy", "set", "rate-limit", "--org", org, "--concurrency", "3"], cli_env)["policy"]
    new = run_json(["policy", "set", "rate-limit", "--org", org, "--concurrency", "4"], cli_env)["policy"]
    rule = run_json(["policy", "set", "ip-rule", "--global", "--cidr", "2001:db8::/32", "--action", "allow"],
                    cli_env)["policy"]

    assert list_json(cli_env) == [new, rule]
    history = list_json(cli_env, "--history")
    assert [p["id"] for p in history] == [old["id"], new["id"], rule["id"]]
    assert history[0]["in_force"] is False and history[0]["ended_by"] == old["actor"]
    assert history[0]["spec"] == old["spec"] and history[0]["ended_at"] is not None
    assert history[1:] == [new, rule]
    assert list_json(cli_env, "--org", org, "--kind", "rate-limit") == [new]


def refused(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run a command that must be refused: exit 2, the error as JSON on stdout."""
    result = run_cli([*args, "--json"], env)
    assert result.returncode == 2, (args, result.returncode, result.stdout, result.stderr)
    error = json.loads(result.stdout)["error"]
    assert error["message"] and "Traceback" not in result.stderr, (args, result.stderr)
    return dict(error)


def test_refused_commands_exit_2_with_a_stable_code_and_write_nothing(cli_env: dict[str, str]) -> None:
    deployment = init(cli_env)
    org, project = deployment["org_id"], deployment["project_id"]
    kept = run_json(["policy", "set", "rate-limit", "--org", org, "--rpm", "60"], cli_env)["policy"]
    state = (policy_rows(cli_env), audit_rows(cli_env), epoch(cli_env))
    assert len(state[0]) == len(state[1]) == state[2] == 1
    key = sql(url_of(cli_env), "SELECT id FROM api_keys")[0]["id"]

    cases: list[tuple[list[str], str, str | None]] = [
        (["policy", "set", "ip-rule", "--global", "--cidr", "10.0.0.0/33", "--action", "deny"], "invalid_cidr",
         "cidr"),
        (["policy", "set", "rate-limit", "--org", "org_nope", "--rpm", "5"], "org_not_found", "org"),
        (["policy", "set", "rate-limit", "--org", org, "--rpm", "0", "--tpm", "0"], "invalid_policy", None),
        (["policy", "set", "ip-rule", "--global", "--org", org, "--cidr", "10.0.0.0/8", "--action", "deny"],
         "invalid_scope", "org"),
        (["policy", "set", "rate-limit", "--org", org, "--project", project, "--key", key, "--rpm", "5"],
         "invalid_scope", "key"),
        (["policy", "set", "models", "--org", org, "--allow", f"{MODEL},no-such-model"], "unknown_model", "allow"),
        (["policy", "delete", "999"], "policy_not_found", "id"),
        (["policy", "delete", str(kept["id"]), "--org", "org_other"], "policy_not_found", "id"),
    ]
    for args, code, param in cases:
        error = refused(cli_env, *args)
        assert (error["code"], error["param"]) == (code, param), args
        assert (policy_rows(cli_env), audit_rows(cli_env), epoch(cli_env)) == state, args
