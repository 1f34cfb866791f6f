"""Admin API, system: API keys across orgs (filters, pages, revoke; never a secret) and webhooks
(CRUD, secrets shown once and sealed at rest, rotation, org admins on their own org's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from deepspace_lab.webhooks import open_secret, signature

from ..helpers import TEST_SECRET
from .conftest import AdminWorld
from .test_accounts import ADMIN, _all_pages, _code


def test_keys_across_orgs_with_filters_and_no_secrets(admin_world: AdminWorld) -> None:
    w = admin_world
    admin = {"key": w.platform.read_key}
    everything = _all_pages(w, "/keys", admin, limit=3)
    ids = [k["id"] for k in everything]
    assert len(ids) == len(set(ids)) == 11  # 4 + 4 people, 2 platform keys, the fixture tenant's
    dumped = str(everything)
    assert "key_hash" not in dumped and not any(p.key in dumped for p in [*w.a.people.values(),
                                                                            *w.b.people.values()])
    in_a = _all_pages(w, "/keys", admin, org_id=w.a.id)
    assert {k["id"] for k in in_a} == {p.key_id for p in w.a.people.values()}
    assert {k["org_id"] for k in in_a} == {w.a.id}
    mine = _all_pages(w, "/keys", admin, user_id=w.b.people["viewer"].user_id)
    assert [(k["id"], k["user_email"]) for k in mine] == [(w.b.people["viewer"].key_id, w.b.people["viewer"].email)]
    assert _all_pages(w, "/keys", admin, project_id=w.b.project_id, revoked="true") == []
    assert _code(w.call("GET", ADMIN + "/keys", **admin, params={"revoked": "1"})) == (400, "invalid_value")
    # platform-wide: an org's own admin may not list every org's keys
    assert _code(w.call("GET", ADMIN + "/keys", token=w.token(w.a.people["owner"]))) == (403, "permission_denied")


def test_revoking_any_orgs_key_refuses_its_next_request(admin_world: AdminWorld) -> None:
    w = admin_world
    victim = w.b.people["member"]
    assert w.call("GET", "/me", key=victim.key).status_code == 200
    assert w.call("DELETE", f"{ADMIN}/keys/{victim.key_id}", key=w.platform.read_key).status_code == 403
    revoked = w.call("DELETE", f"{ADMIN}/keys/{victim.key_id}", key=w.platform.key)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] and revoked.json()["org_id"] == w.b.id
    assert w.call("GET", "/me", key=victim.key).status_code == 401
    assert [k["id"] for k in _all_pages(w, "/keys", {"key": w.platform.key}, revoked="true")] == [victim.key_id]
    [row] = w.gw.audit_rows(kind="admin.keys.revoke", status_code=200)
    assert (row["detail"]["before"], row["detail"]["after"], row["detail"]["target_org_id"]) == (
        {"revoked": False}, {"revoked": True}, w.b.id)
    assert victim.key not in str(row)
    assert _code(w.call("DELETE", f"{ADMIN}/keys/key_nothere", key=w.platform.key)) == (404, "api_key_not_found")


def _sealed(w: AdminWorld, webhook_id: str) -> str:
    with w.gw.db.connect() as conn:
        return str(conn.execute(text("SELECT secret_encrypted FROM webhooks WHERE id = :id"),
                                {"id": webhook_id}).scalar_one())


def test_webhooks_crud_secret_shown_once_sealed_and_rotated(admin_world: AdminWorld) -> None:
    w = admin_world
    admin_a = {"token": w.token(w.a.people["admin"])}
    created = w.call("POST", ADMIN + "/webhooks", **admin_a,
                     json={"url": "https://hooks.example.org/a", "events": ["wallet.low_balance", "budget.threshold"]})
    assert created.status_code == 201, created.text
    hook: dict[str, Any] = created.json()
    secret = hook.pop("secret")
    assert secret.startswith("whsec_") and hook["org_id"] == w.a.id and hook["enabled"] is True
    assert hook["events"] == ["budget.threshold", "wallet.low_balance"]
    sealed = _sealed(w, hook["id"])
    assert secret not in sealed and open_secret(TEST_SECRET, sealed) == secret
    assert signature(secret, timestamp=1, body=b"{}").startswith("sha256=")
    assert w.call("GET", f"{ADMIN}/webhooks/{hook['id']}", **admin_a).json() == hook
    assert _all_pages(w, "/webhooks", admin_a) == [hook]

    changed = w.call("PATCH", f"{ADMIN}/webhooks/{hook['id']}", **admin_a, json={"enabled": False,
                                                                                "events": ["usage.anomaly"]})
    assert changed.status_code == 200 and (changed.json()["enabled"], changed.json()["events"]) == (
        False, ["usage.anomaly"])
    rotated = w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/rotate-secret", **admin_a).json()
    assert rotated["secret"] != secret and open_secret(TEST_SECRET, _sealed(w, hook["id"])) == rotated["secret"]
    assert w.call("DELETE", f"{ADMIN}/webhooks/{hook['id']}", **admin_a).status_code == 204
    assert _code(w.call("GET", f"{ADMIN}/webhooks/{hook['id']}", **admin_a)) == (404, "webhook_not_found")

    rows = [r for kind in ("create", "update", "rotate", "delete")
            for r in w.gw.audit_rows(kind=f"admin.webhooks.{kind}")]
    assert [r["status_code"] for r in rows] == [201, 200, 200, 204]
    assert all(r["error_code"] is None and r["org_id"] == w.a.id for r in rows)
    assert rows[0]["detail"]["before"] is None and rows[0]["detail"]["after"]["url"] == "https://hooks.example.org/a"
    assert rows[1]["detail"]["before"]["enabled"] is True and rows[1]["detail"]["after"]["enabled"] is False
    assert rows[2]["detail"]["before"] == {"secret_rotated_at": None} and rows[2]["detail"]["after"][
        "secret_rotated_at"]
    assert rows[3]["detail"]["after"] is None
    assert not any(s in str(rows) for s in (secret, rotated["secret"]))


def test_webhook_input_is_checked(admin_world: AdminWorld) -> None:
    w = admin_world
    post = lambda body: w.call("POST", ADMIN + "/webhooks", key=w.platform.key, json=body)  # noqa: E731
    for body, code in (
            ({"url": "ftp://x.example.org", "events": ["usage.anomaly"]}, "invalid_url"),
            ({"url": "https://user:pw@x.example.org", "events": ["usage.anomaly"]}, "invalid_url"),
            ({"url": "https://", "events": ["usage.anomaly"]}, "invalid_url"),
            ({"url": "https://x.example.org:99999", "events": ["usage.anomaly"]}, "invalid_url"),
            ({"url": "https://x.example.org", "events": []}, "invalid_events"),
            ({"url": "https://x.example.org", "events": ["everything"]}, "unknown_event"),
            ({"url": "https://x.example.org", "events": ["usage.anomaly"], "enabled": "yes"}, "invalid_type"),
            ({"url": "https://x.example.org", "events": ["usage.anomaly"], "secret": "mine"}, "unknown_field"),
            ({"url": "https://x.example.org", "events": ["usage.anomaly"], "org_id": 5}, "invalid_type"),
            ({"events": ["usage.anomaly"]}, "missing_field")):
        assert _code(post(body))[0] == 400 and _code(post(body))[1] == code, body
    assert _code(post({"url": "https://x.example.org", "events": ["usage.anomaly"], "org_id": "org_nothere"})) == (
        404, "org_not_found")
    with w.gw.db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM webhooks")).scalar_one() == 0


def test_global_webhooks_are_the_platform_admins_and_org_admins_stay_in_their_org(admin_world: AdminWorld) -> None:
    w = admin_world
    global_hook = w.call("POST", ADMIN + "/webhooks", key=w.platform.key,
                         json={"url": "http://ops.example.org/hook", "events": ["usage.anomaly"]}).json()
    assert global_hook["org_id"] is None
    a_hook = w.call("POST", ADMIN + "/webhooks", key=w.platform.key,
                    json={"url": "http://a.example.org/hook", "events": ["usage.anomaly"], "org_id": w.a.id}).json()
    admin_b = {"token": w.token(w.b.people["admin"])}
    assert _all_pages(w, "/webhooks", admin_b) == []
    for hook in (global_hook, a_hook):
        assert w.call("GET", f"{ADMIN}/webhooks/{hook['id']}", **admin_b).status_code == 404
        assert w.call("PATCH", f"{ADMIN}/webhooks/{hook['id']}", **admin_b, json={"enabled": False}
                      ).status_code == 404
        assert w.call("POST", f"{ADMIN}/webhooks/{hook['id']}/rotate-secret", **admin_b).status_code == 404
        assert w.call("DELETE", f"{ADMIN}/webhooks/{hook['id']}", **admin_b).status_code == 404
    refused = w.call("POST", ADMIN + "/webhooks", **admin_b,
                     json={"url": "http://b.example.org", "events": ["usage.anomaly"], "org_id": w.a.id})
    assert refused.status_code == 404
    mine = w.call("POST", ADMIN + "/webhooks", **admin_b, json={"url": "http://b.example.org",
                                                                "events": ["usage.anomaly"]}).json()
    assert mine["org_id"] == w.b.id
    everything = {h["id"] for h in _all_pages(w, "/webhooks", {"key": w.platform.read_key}, limit=1)}
    assert everything == {global_hook["id"], a_hook["id"], mine["id"]}
    assert [h["id"] for h in _all_pages(w, "/webhooks", {"key": w.platform.key}, org_id=w.a.id)] == [a_hook["id"]]
    assert w.call("PATCH", f"{ADMIN}/webhooks/{a_hook['id']}", key=w.platform.key, json={}).status_code == 400
