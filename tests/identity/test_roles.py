"""The permission matrix, through the API: roles, key scopes and their intersection."""

from __future__ import annotations

import pytest

from deepspace_lab.auth import Principal, authorize
from deepspace_lab.auth.permissions import MATRIX, ROLES, role_allows
from deepspace_lab.errors import PermissionDenied

from .conftest import World

MODEL = "deepspace-simulated-chat"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(MATRIX))
def test_authorize_follows_the_matrix(role: str, action: str) -> None:
    for via_key in (False, True):
        p = Principal(user_id="u", org_id="o", project_id="p", role=role, api_key_id="k" if via_key else None,
                      scopes=("chat", "knowledge", "workflows", "account"))
        if role_allows(role, action):
            authorize(p, action)
        else:
            with pytest.raises(PermissionDenied):
                authorize(p, action)


def test_a_key_without_the_scope_is_refused_even_for_an_owner() -> None:
    p = Principal(user_id="u", org_id="o", project_id="p", role="owner", api_key_id="k", scopes=("knowledge",))
    with pytest.raises(PermissionDenied):
        authorize(p, "chat")
    authorize(p, "knowledge")


def test_admin_actions_need_a_platform_admin_and_an_admin_scope() -> None:
    admin = Principal(user_id="u", org_id="o", project_id="p", role="owner", is_platform_admin=True)
    authorize(admin, "admin.write")
    with pytest.raises(PermissionDenied):
        authorize(Principal(user_id="u", org_id="o", project_id="p", role="owner"), "admin.read")
    read_key = Principal(user_id="u", org_id="o", project_id="p", role="owner", is_platform_admin=True,
                         api_key_id="k", scopes=("admin-read",))
    authorize(read_key, "admin.read")
    with pytest.raises(PermissionDenied):
        authorize(read_key, "admin.write")


def test_viewer_reads_but_does_not_act(world: World) -> None:
    viewer = world.a.people["viewer"].key
    assert world.call("POST", "/deepspace/v1/chat/completions", key=viewer, json=CHAT).status_code == 403
    assert world.call("POST", "/conversations", key=viewer, json={}).status_code == 403
    assert world.call("GET", "/conversations", key=viewer).status_code == 200
    assert world.call("GET", "/members", key=viewer).status_code == 200
    assert world.call("POST", "/keys", key=viewer, json={}).status_code == 403


def test_member_chats_and_keeps_own_keys_but_does_not_administer(world: World) -> None:
    member = world.a.people["member"]
    assert world.call("POST", "/deepspace/v1/chat/completions", key=member.key, json=CHAT).status_code == 200
    created = world.call("POST", "/keys", key=member.key, json={"name": "mine", "scopes": ["chat"]})
    assert created.status_code == 201 and created.json()["api_key"].startswith("dsk_")
    listed = world.call("GET", "/keys", key=member.key).json()["data"]
    assert {k["user_id"] for k in listed} == {member.user_id} and all("api_key" not in k for k in listed)
    assert world.call("DELETE", f"/keys/{world.a.people['admin'].key_id}", key=member.key).status_code == 404
    assert world.call("POST", "/members", key=member.key,
                      json={"email": "viewer-b@example.org", "role": "viewer"}).status_code == 403
    assert world.call("POST", "/projects", key=member.key, json={"name": "x"}).status_code == 403


def test_admin_administers_but_cannot_make_owners(world: World) -> None:
    admin = world.a.people["admin"].key
    added = world.call("POST", "/members", key=admin, json={"email": "viewer-b@example.org", "role": "member"})
    assert added.status_code == 201 and added.json()["role"] == "member"
    (row,) = world.gw.audit_rows(trace_id=added.headers["X-Trace-Id"])
    assert row["kind"] == "api.members.add" and row["actor"] == f"key:{world.a.people['admin'].key_id}"
    assert world.call("POST", "/projects", key=admin, json={"name": "x"}).status_code == 201
    assert len(world.call("GET", "/keys", key=admin).json()["data"]) == 4
    promote = world.call("PATCH", f"/members/{world.a.people['member'].user_id}", key=admin, json={"role": "owner"})
    assert promote.status_code == 403 and promote.json()["error"]["code"] == "owner_required"
    demote_owner = world.call("PATCH", f"/members/{world.a.people['owner'].user_id}", key=admin,
                              json={"role": "member"})
    assert demote_owner.status_code == 403


def test_the_last_owner_stays(world: World) -> None:
    owner = world.a.people["owner"]
    response = world.call("PATCH", f"/members/{owner.user_id}", key=owner.key, json={"role": "admin"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "last_owner"
    assert world.call("DELETE", f"/members/{owner.user_id}", key=owner.key).status_code == 409
    promoted = world.call("PATCH", f"/members/{world.a.people['admin'].user_id}", key=owner.key,
                          json={"role": "owner"})
    assert promoted.status_code == 200
    (row,) = world.gw.audit_rows(trace_id=promoted.headers["X-Trace-Id"])
    assert row["detail"]["before"] == {"role": "admin"} and row["detail"]["after"] == {"role": "owner"}
    assert world.call("PATCH", f"/members/{owner.user_id}", key=owner.key, json={"role": "admin"}).status_code == 200


def test_key_rights_are_scopes_intersected_with_the_current_role(world: World) -> None:
    member = world.a.people["member"]
    knowledge_only = world.call("POST", "/keys", key=member.key, json={"scopes": ["knowledge"]}).json()["api_key"]
    refused = world.call("POST", "/deepspace/v1/chat/completions", key=knowledge_only, json=CHAT)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    # demote the member: their chat-scoped key stops chatting on the very next request
    owner = world.a.people["owner"].key
    assert world.call("PATCH", f"/members/{member.user_id}", key=owner, json={"role": "viewer"}).status_code == 200
    assert world.call("POST", "/deepspace/v1/chat/completions", key=member.key, json=CHAT).status_code == 403
    # and a removed member's key stops working at all
    assert world.call("DELETE", f"/members/{member.user_id}", key=owner).status_code == 204
    assert world.call("GET", "/me", key=member.key).status_code == 401


def test_admin_scopes_are_only_for_platform_admins(world: World) -> None:
    response = world.call("POST", "/keys", key=world.a.people["owner"].key, json={"scopes": ["admin"]})
    assert response.status_code == 403 and response.json()["error"]["code"] == "admin_scope_denied"
    unknown = world.call("POST", "/keys", key=world.a.people["owner"].key, json={"scopes": ["root"]})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "invalid_scope"


def test_revoked_and_expired_keys_are_refused_on_the_next_request(world: World) -> None:
    owner = world.a.people["owner"].key
    created = world.call("POST", "/keys", key=owner, json={"name": "temp"}).json()
    assert world.call("GET", "/me", key=created["api_key"]).status_code == 200
    revoked = world.call("DELETE", f"/keys/{created['id']}", key=owner)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert world.call("GET", "/me", key=created["api_key"]).status_code == 401
    (row,) = world.gw.audit_rows(trace_id=revoked.headers["X-Trace-Id"])
    assert row["kind"] == "api.keys.revoke" and created["api_key"] not in str(row["detail"])
    past = world.call("POST", "/keys", key=owner, json={"expires_at": "2000-01-01T00:00:00Z"})
    assert past.status_code == 400


@pytest.mark.parametrize("expires_at", ["", "tomorrow", "2030-01-01T00:00:00", "9999-12-31T23:59:59-01:00"],
                         ids=["empty", "words", "no-zone", "past-year-9999-in-utc"])
def test_a_key_expiry_that_is_not_a_zoned_time_is_a_clear_400(world: World, expires_at: str) -> None:
    owner = world.a.people["owner"].key
    before = world.call("GET", "/keys", key=owner).json()["data"]
    response = world.call("POST", "/keys", key=owner, json={"expires_at": expires_at})
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_value", "expires_at")
    assert world.call("GET", "/keys", key=owner).json()["data"] == before
    later = world.call("POST", "/keys", key=owner, json={"expires_at": "2999-01-01T02:00:00+02:00"})
    assert later.status_code == 201 and later.json()["expires_at"].startswith("2999-01-01T00:00:00")


def test_a_key_name_longer_than_200_is_refused_not_cut(world: World) -> None:
    owner = world.a.people["owner"].key
    response = world.call("POST", "/keys", key=owner, json={"name": "n" * 201})
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_value", "name")
    assert all(k["name"] != "n" * 200 for k in world.call("GET", "/keys", key=owner).json()["data"])
    made = world.call("POST", "/keys", key=owner, json={"name": "é" * 200})
    assert made.status_code == 201 and made.json()["name"] == "é" * 200


def test_an_empty_project_id_for_a_new_key_is_refused_not_taken_as_mine(world: World) -> None:
    owner = world.a.people["owner"].key
    before = world.call("GET", "/keys", key=owner).json()["data"]
    response = world.call("POST", "/keys", key=owner, json={"project_id": ""})
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_value", "project_id")
    assert world.call("GET", "/keys", key=owner).json()["data"] == before
