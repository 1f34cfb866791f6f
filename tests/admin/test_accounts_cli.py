"""The accounts area from the command line (``--json``), on SQLite and PostgreSQL: the same
answers as the Admin API, changes audited as ``cli:<os user>`` with before and after, refused
commands exit 2 with the stable code and write nothing."""

from __future__ import annotations

from sqlalchemy import text

from deepspace_lab.webhooks import open_secret

from ..helpers import TEST_SECRET
from .conftest import ADMIN_EMAIL, AdminWorld, Cli


def test_users_and_orgs_commands(admin_world: AdminWorld, cli: Cli) -> None:
    w = admin_world
    rc, found = cli("users", "list", "--q", "ADMIN-A")
    assert rc == 0 and [u["email"] for u in found["data"]] == ["admin-a@example.org"]
    rc, admins = cli("users", "list", "--platform-admin")
    assert [u["email"] for u in admins["data"]] == [ADMIN_EMAIL]
    rc, first = cli("users", "list", "--org", w.a.id, "--limit", "3")
    rc, rest = cli("users", "list", "--org", w.a.id, "--cursor", first["next_cursor"])
    assert {u["email"]: u["role"] for u in first["data"] + rest["data"]} == {
        p.email: role for role, p in w.a.people.items()} and rest["next_cursor"] is None
    rc, shown = cli("users", "show", "--email", w.a.people["member"].email)
    assert shown["memberships"] == [{"org_id": w.a.id, "org_name": "org a", "role": "member"}]

    rc, changed = cli("users", "role", "--org", w.a.id, "--email", w.a.people["member"].email, "--role", "admin")
    assert rc == 0 and (changed["before"], changed["role"]) == ("member", "admin")
    rc, refused = cli("users", "role", "--org", w.a.id, "--email", w.a.people["owner"].email, "--role", "viewer")
    assert rc == 2 and refused["error"]["code"] == "last_owner"
    [row] = w.gw.audit_rows(kind="cli.members.role")
    assert row["actor"].startswith("cli:") and (row["detail"]["before"], row["detail"]["after"]) == (
        {"role": "member"}, {"role": "admin"})

    rc, orgs = cli("orgs", "list", "--q", "org a")
    assert [(o["id"], o["member_count"]) for o in orgs["data"]] == [(w.a.id, 4)]
    rc, org = cli("orgs", "show", w.b.id)
    assert {m["email"] for m in org["members"]} == {p.email for p in w.b.people.values()}
    rc, missing = cli("orgs", "show", "org_nothere")
    assert rc == 2 and missing["error"]["code"] == "org_not_found"


def test_keys_list_across_orgs(admin_world: AdminWorld, cli: Cli) -> None:
    w = admin_world
    rc, keys = cli("keys", "list", "--all-orgs", "--org", w.b.id, "--live")
    assert rc == 0 and {k["id"] for k in keys["data"]} == {p.key_id for p in w.b.people.values()}
    assert "key_hash" not in str(keys) and not any(p.key in str(keys) for p in w.b.people.values())
    rc, mine = cli("keys", "list", "--all-orgs", "--user", w.a.people["viewer"].email)
    assert [k["id"] for k in mine["data"]] == [w.a.people["viewer"].key_id]
    rc, none = cli("keys", "list", "--all-orgs", "--revoked")
    assert none["data"] == []
    rc, refused = cli("keys", "list")
    assert rc == 2 and refused["error"]["code"] == "missing_field"


def test_webhooks_commands(admin_world: AdminWorld, cli: Cli) -> None:
    w = admin_world
    rc, hook = cli("webhooks", "create", "--org", w.a.id, "--url", "https://hooks.example.org/x",
                   "--events", "usage.anomaly,wallet.low_balance")
    assert rc == 0 and hook["secret"].startswith("whsec_") and hook["org_id"] == w.a.id
    with w.gw.db.connect() as conn:
        sealed = conn.execute(text("SELECT secret_encrypted FROM webhooks")).scalar_one()
    assert open_secret(TEST_SECRET, sealed) == hook["secret"]
    rc, listed = cli("webhooks", "list", "--org", w.a.id)
    assert [h["id"] for h in listed["data"]] == [hook["id"]] and "secret" not in listed["data"][0]
    rc, updated = cli("webhooks", "update", hook["id"], "--disable", "--events", "budget.threshold")
    assert (updated["enabled"], updated["events"]) == (False, ["budget.threshold"])
    rc, rotated = cli("webhooks", "rotate-secret", hook["id"])
    assert rotated["secret"] != hook["secret"]
    rc, gone = cli("webhooks", "delete", hook["id"])
    assert rc == 0 and gone["deleted"]["id"] == hook["id"]
    rc, bad = cli("webhooks", "create", "--url", "ftp://x", "--events", "usage.anomaly")
    assert rc == 2 and bad["error"]["code"] == "invalid_url"
    rc, bad = cli("webhooks", "update", hook["id"], "--enable")
    assert rc == 2 and bad["error"]["code"] == "webhook_not_found"
    rows = [r for k in ("create", "update", "rotate", "delete") for r in w.gw.audit_rows(kind=f"cli.webhooks.{k}")]
    assert len(rows) == 4 and rows[0]["detail"]["before"] is None and rows[3]["detail"]["after"] is None
    assert not any(s in str(rows) for s in (hook["secret"], rotated["secret"]))
