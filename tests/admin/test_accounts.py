"""Admin API, accounts: users (search, keyset pages, one user, disable / enable, roles) and orgs,
for platform admins everywhere and for org admins on their own org only; every change audited
with before and after."""

from __future__ import annotations

from typing import Any

from ..helpers import TENANT_CREDIT_MICROS
from .conftest import ADMIN_EMAIL, AdminWorld

ADMIN = "/deepspace/admin/api"


def _all_pages(w: AdminWorld, path: str, credential: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = w.call("GET", ADMIN + path, **credential, params={**params, **({"cursor": cursor} if cursor
                                                                                   else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def _code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_users_search_filters_and_keyset_pages(admin_world: AdminWorld) -> None:
    w = admin_world
    admin = {"key": w.platform.read_key}
    everyone = _all_pages(w, "/users", admin, limit=2)
    emails = [u["email"] for u in everyone]
    # two orgs of four roles, the platform admin and the gateway fixture's own tenant
    assert len(emails) == len(set(emails)) == 10
    assert "password_hash" not in str(everyone)
    assert [u["email"] for u in _all_pages(w, "/users", admin, q="ADMIN-A")] == ["admin-a@example.org"]
    assert [u["email"] for u in _all_pages(w, "/users", admin, platform_admin="true")] == [ADMIN_EMAIL]
    assert len(_all_pages(w, "/users", admin, platform_admin="false")) == 9
    in_a = _all_pages(w, "/users", admin, org_id=w.a.id)
    assert {u["email"]: u["role"] for u in in_a} == {p.email: role for role, p in w.a.people.items()}
    assert _all_pages(w, "/users", admin, q="%") == []  # a LIKE wildcard is searched for, not matched

    for params, code in (({"status": "gone"}, "invalid_value"), ({"platform_admin": "yes"}, "invalid_value"),
                         ({"cursor": "nope"}, "invalid_cursor"), ({"limit": "0"}, "invalid_value"),
                         ({"sort": "email"}, "unknown_parameter"), ({"q": ""}, "invalid_value"),
                         ({"org_id": ""}, "invalid_value"), ({"org_id": "a b"}, "invalid_value")):
        assert _code(w.call("GET", ADMIN + "/users", **admin, params=params)) == (400, code), params


def test_one_user_with_memberships_and_org_admins_see_only_their_org(admin_world: AdminWorld) -> None:
    w = admin_world
    member_a = w.a.people["member"]
    shown = w.call("GET", f"{ADMIN}/users/{member_a.user_id}", key=w.platform.key).json()
    assert shown["email"] == member_a.email and shown["memberships"] == [
        {"org_id": w.a.id, "org_name": "org a", "role": "member"}]

    admin_b = {"token": w.token(w.b.people["admin"])}
    listed = _all_pages(w, "/users", admin_b)
    assert {u["email"] for u in listed} == {p.email for p in w.b.people.values()}
    assert w.call("GET", ADMIN + "/users", **admin_b, params={"org_id": w.a.id}).status_code == 404
    assert _code(w.call("GET", f"{ADMIN}/users/{member_a.user_id}", **admin_b)) == (404, "user_not_found")
    assert _code(w.call("GET", f"{ADMIN}/users/{w.platform.user_id}", **admin_b)) == (404, "user_not_found")


def test_disable_stops_keys_and_sessions_at_once_and_enable_restores_them(admin_world: AdminWorld) -> None:
    w = admin_world
    victim = w.a.people["member"]
    session = w.token(victim)
    assert w.call("GET", "/me", key=victim.key).status_code == 200
    disabled = w.call("POST", f"{ADMIN}/users/{victim.user_id}/disable", key=w.platform.key)
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert w.call("GET", "/me", key=victim.key).status_code == 401
    assert w.call("GET", "/me", token=session).status_code == 401
    assert w.call("POST", "/auth/login", json={"email": victim.email, "password": "correct horse battery"}
                  ).status_code in (401, 403)
    assert _all_pages(w, "/users", {"key": w.platform.key}, status="disabled")[0]["email"] == victim.email

    assert w.call("POST", f"{ADMIN}/users/{victim.user_id}/enable", key=w.platform.key).json()["status"] == "active"
    assert w.call("GET", "/me", key=victim.key).status_code == 200
    rows = w.gw.audit_rows(kind="admin.users.disable") + w.gw.audit_rows(kind="admin.users.enable")
    assert [(r["status_code"], r["detail"]["before"], r["detail"]["after"]) for r in rows] == [
        (200, {"status": "active"}, {"status": "disabled"}), (200, {"status": "disabled"}, {"status": "active"})]
    assert all(r["detail"]["target_user_id"] == victim.user_id for r in rows)
    # a body is refused, not ignored; the read-only key may not write
    assert _code(w.call("POST", f"{ADMIN}/users/{victim.user_id}/disable", key=w.platform.key,
                        json={"why": "x"})) == (400, "unknown_field")
    assert w.call("POST", f"{ADMIN}/users/{victim.user_id}/disable", key=w.platform.read_key).status_code == 403


def test_org_admins_disable_only_their_own_orgs_users_below_them(admin_world: AdminWorld) -> None:
    w = admin_world
    admin_a = w.a.people["admin"]
    token = {"token": w.token(admin_a)}
    post = lambda who, verb="disable": w.call("POST", f"{ADMIN}/users/{who}/{verb}", **token)  # noqa: E731
    assert post(w.a.people["viewer"].user_id).json()["status"] == "disabled"
    assert _code(post(w.a.people["owner"].user_id)) == (403, "owner_required")
    assert _code(post(admin_a.user_id)) == (403, "cannot_disable_self")
    assert _code(post(w.b.people["member"].user_id)) == (404, "user_not_found")
    # a user who is also in org b is not org a's alone
    added = w.call("POST", "/members", key=w.b.people["owner"].key, json={"email": w.a.people["member"].email,
                                                                          "role": "viewer"})
    assert added.status_code == 201, added.text
    assert _code(post(w.a.people["member"].user_id)) == (403, "user_beyond_org")
    assert w.call("GET", "/me", key=w.a.people["member"].key).status_code == 200
    assert w.call("GET", "/me", key=w.b.people["viewer"].key).status_code == 200


def test_member_roles_follow_the_members_rules(admin_world: AdminWorld) -> None:
    w = admin_world
    path = lambda org, who: f"{ADMIN}/orgs/{org}/members/{who}"  # noqa: E731
    member, owner = w.a.people["member"], w.a.people["owner"]
    changed = w.call("PATCH", path(w.a.id, member.user_id), key=w.platform.key, json={"role": "admin"})
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    [row] = w.gw.audit_rows(kind="admin.members.role")
    assert (row["detail"]["before"], row["detail"]["after"], row["detail"]["target_org_id"]) == (
        {"role": "member"}, {"role": "admin"}, w.a.id)

    admin_a = {"token": w.token(w.a.people["admin"])}
    assert _code(w.call("PATCH", path(w.a.id, member.user_id), **admin_a, json={"role": "owner"})) == (
        403, "owner_required")
    assert w.call("PATCH", path(w.a.id, member.user_id), **admin_a, json={"role": "viewer"}).json()["role"] == "viewer"
    assert _code(w.call("PATCH", path(w.a.id, owner.user_id), key=w.platform.key, json={"role": "member"})) == (
        409, "last_owner")
    assert _code(w.call("PATCH", path(w.a.id, member.user_id), key=w.platform.key, json={"role": "boss"})) == (
        400, "invalid_role")
    assert _code(w.call("PATCH", path(w.a.id, member.user_id), key=w.platform.key, json={"role": "admin", "x": 1})
                 ) == (400, "unknown_field")
    admin_b = {"token": w.token(w.b.people["admin"])}
    assert w.call("PATCH", path(w.a.id, member.user_id), **admin_b, json={"role": "admin"}).status_code == 404
    roles = {m["user_id"]: m["role"] for m in w.call("GET", "/members", key=owner.key).json()["data"]}
    assert roles[member.user_id] == "viewer"


def test_orgs_list_and_one_org(admin_world: AdminWorld) -> None:
    w = admin_world
    orgs = {o["id"]: o for o in _all_pages(w, "/orgs", {"key": w.platform.read_key}, limit=1)}
    assert len(orgs) == 4 and w.gw.tenant.org_id in orgs
    a = orgs[w.a.id]
    assert (a["name"], a["member_count"], a["project_count"], a["balance_micros"], a["frozen_micros"]) == (
        "org a", 4, 1, TENANT_CREDIT_MICROS, 0)
    assert [o["id"] for o in _all_pages(w, "/orgs", {"key": w.platform.key}, q="ORG B")] == [w.b.id]

    detail = w.call("GET", f"{ADMIN}/orgs/{w.a.id}", key=w.platform.key).json()
    assert w.a.project_id in {p["id"] for p in detail["projects"]}
    assert {m["email"]: m["role"] for m in detail["members"]} == {p.email: r for r, p in w.a.people.items()}

    owner_b = {"token": w.token(w.b.people["owner"])}
    assert [o["id"] for o in _all_pages(w, "/orgs", owner_b)] == [w.b.id]
    assert _code(w.call("GET", f"{ADMIN}/orgs/{w.a.id}", **owner_b)) == (404, "org_not_found")
    assert _code(w.call("GET", f"{ADMIN}/orgs/org_nothere", key=w.platform.key)) == (404, "org_not_found")
