"""Logins, refresh rotation, logout, lockout and the JWT checks."""

from __future__ import annotations

import time

import jwt
from sqlalchemy import text

from ..helpers import TEST_SECRET
from .conftest import World


def test_login_gives_a_token_that_works_in_the_default_project(world: World) -> None:
    tokens = world.login("member-a@example.org")
    assert tokens["token_type"] == "bearer" and 0 < tokens["expires_in"] <= 900
    me = world.call("GET", "/me", token=tokens["access_token"]).json()
    assert me["via"] == "jwt" and me["role"] == "member" and me["org_id"] == world.a.id
    assert me["project_id"] == world.a.project_id and me["scopes"] is None


def test_wrong_password_and_unknown_email_get_the_same_answer_and_are_audited(world: World) -> None:
    wrong = world.call("POST", "/auth/login", json={"email": "member-a@example.org", "password": "nope-nope"})
    unknown = world.call("POST", "/auth/login", json={"email": "ghost@example.org", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"]
    (row,) = world.gw.audit_rows(trace_id=wrong.headers["X-Trace-Id"])
    assert row["kind"] == "auth.login" and row["error_code"] == "invalid_credentials"
    assert "nope-nope" not in str(row["detail"])
    ok = world.call("POST", "/auth/login", json={"email": "member-a@example.org", "password": "correct horse battery"})
    (row,) = world.gw.audit_rows(trace_id=ok.headers["X-Trace-Id"])
    assert row["status_code"] == 200 and "correct horse" not in str(row["detail"])
    assert "access_token" not in str(row["detail"])


def test_five_failures_lock_the_account_even_for_the_right_password(world: World) -> None:
    for _ in range(5):
        assert world.call("POST", "/auth/login", json={"email": "viewer-a@example.org",
                                                       "password": "guess-guess"}).status_code == 401
    locked = world.call("POST", "/auth/login", json={"email": "viewer-a@example.org",
                                                      "password": "correct horse battery"})
    assert locked.status_code == 401 and locked.json()["error"]["code"] == "account_locked"
    assert int(locked.headers["Retry-After"]) > 800


def test_an_address_that_keeps_guessing_is_slowed_down(world: World) -> None:
    codes = [world.call("POST", "/auth/login", json={"email": f"nobody{i}@example.org", "password": "x" * 9}
                        ).status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    limited = world.call("POST", "/auth/login", json={"email": "owner-a@example.org",
                                                       "password": "correct horse battery"})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "login_rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_family(world: World) -> None:
    first = world.login("admin-a@example.org")
    second = world.call("POST", "/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert world.call("GET", "/me", token=second["access_token"]).status_code == 200
    reused = world.call("POST", "/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "refresh_token_reused"
    # the thief's replay revoked the legitimate session too
    assert world.call("GET", "/me", token=second["access_token"]).status_code == 401
    assert world.call("POST", "/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401


def test_logout_stops_the_access_token_on_the_next_request(world: World) -> None:
    tokens = world.login("owner-a@example.org")
    assert world.call("POST", "/auth/logout", token=tokens["access_token"]).status_code == 204
    after = world.call("GET", "/me", token=tokens["access_token"])
    assert after.status_code == 401 and after.json()["error"]["code"] == "session_revoked"
    assert world.call("POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_logout_is_not_for_api_keys(world: World) -> None:
    response = world.call("POST", "/auth/logout", key=world.a.people["owner"].key)
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_a_session"


def _claims(world: World) -> dict[str, object]:
    token = world.login("member-a@example.org")["access_token"]
    return dict(jwt.decode(token, TEST_SECRET, algorithms=["HS256"]))


def test_forged_tokens_are_refused(world: World) -> None:
    claims = _claims(world)
    none_alg = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    wrong_key = jwt.encode(claims, "not-the-secret-key-but-long-enough-32b", algorithm="HS256")
    expired = jwt.encode(dict(claims, exp=int(time.time()) - 5), TEST_SECRET, algorithm="HS256")
    other_alg = jwt.encode(claims, TEST_SECRET, algorithm="HS512")
    for token, code in ((none_alg, "invalid_token"), (wrong_key, "invalid_token"), (expired, "token_expired"),
                        (other_alg, "invalid_token")):
        response = world.call("GET", "/me", token=token)
        assert response.status_code == 401 and response.json()["error"]["code"] == code, token


def test_disabling_a_user_stops_their_tokens_and_keys_at_once(world: World) -> None:
    person = world.a.people["member"]
    tokens = world.login(person.email)
    with world.gw.db.begin() as conn:
        conn.execute(text("UPDATE users SET status = 'disabled' WHERE id = :u"), {"u": person.user_id})
    assert world.call("GET", "/me", token=tokens["access_token"]).status_code == 401
    assert world.call("GET", "/me", key=person.key).status_code == 401
    assert world.call("POST", "/auth/login", json={"email": person.email,
                                                    "password": "correct horse battery"}).status_code == 401


def test_a_token_acts_in_the_project_it_names_and_only_in_its_orgs(world: World) -> None:
    token = world.login("owner-a@example.org")["access_token"]
    other = world.call("POST", "/projects", token=token, json={"name": "second"}).json()["id"]
    me = world.call("GET", "/me", token=token, headers={"X-DeepSpace-Project": other}).json()
    assert me["project_id"] == other
    foreign = world.call("GET", "/me", token=token, headers={"X-DeepSpace-Project": world.b.project_id})
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "project_not_found"


def test_a_key_cannot_be_pointed_at_another_project(world: World) -> None:
    response = world.call("GET", "/me", key=world.a.people["owner"].key,
                          headers={"X-DeepSpace-Project": world.b.project_id})
    assert response.status_code == 403 and response.json()["error"]["code"] == "key_project_mismatch"
