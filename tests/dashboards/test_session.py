"""Signing in to the console: through the Gateway's login, then the Admin API decides — a
platform admin sees every org, an org admin their own, anyone else is refused; tokens stay in
the server-side session (renewed by the client) and out of the logs."""

from __future__ import annotations

import logging

import pytest

from deepspace_lab.dashboards import AdminRefused, SessionStore, sign_in

from ..admin.conftest import AdminWorld
from ..cli.conftest import free_port
from ..identity.conftest import PASSWORD
from .conftest import run


def test_a_platform_admin_signs_in_with_every_org_in_scope(admin_world: AdminWorld,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    w = admin_world

    async def scenario() -> None:
        caplog.set_level(logging.DEBUG)
        session = await sign_in(w.gw.url, w.platform.email, PASSWORD)
        try:
            ident = session.identity
            assert (ident.email, ident.is_platform_admin, ident.scope) == (w.platform.email, True, None)
            creds = session.client.config.credentials
            assert creds.kind == "token" and creds.access_token and creds.refresh_token
            for secret in (creds.access_token, creds.refresh_token, PASSWORD):
                assert secret not in caplog.text
            # an access token that is gone is renewed through the client, with the refresh token
            old_refresh = creds.refresh_token
            creds.access_token = None
            matrix = await session.client.admin_permissions()
            assert "org_admin.read" in {a["action"] for a in matrix["actions"]}
            assert creds.access_token and creds.refresh_token != old_refresh  # refresh tokens rotate
        finally:
            await session.close()

    run(scenario)


def test_an_org_admin_signs_in_limited_to_their_org(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        for role in ("admin", "owner"):
            session = await sign_in(w.gw.url, w.a.people[role].email, PASSWORD)
            try:
                ident = session.identity
                assert (ident.is_platform_admin, ident.scope, ident.role, ident.org_name) == (False, w.a.id, role,
                                                                                             "org a")
            finally:
                await session.close()

    run(scenario)


def test_members_viewers_and_wrong_passwords_are_refused(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        for role in ("member", "viewer"):
            with pytest.raises(AdminRefused) as refused:
                await sign_in(w.gw.url, w.a.people[role].email, PASSWORD)
            assert refused.value.reason == "refused_not_admin"
        with pytest.raises(AdminRefused) as refused:
            await sign_in(w.gw.url, w.platform.email, "not the password")
        assert refused.value.reason == "refused_credentials"
        with pytest.raises(AdminRefused) as refused:
            await sign_in(w.gw.url, "", "")
        assert refused.value.reason == "refused_missing"
        with pytest.raises(AdminRefused) as refused:
            await sign_in(f"http://127.0.0.1:{free_port()}", w.platform.email, PASSWORD)
        assert refused.value.reason == "refused_unreachable"

    run(scenario)
    # the refused member's Gateway login was ended at once, not left open
    member = w.a.people["member"].user_id
    logins = [r for r in w.gw.audit_rows(kind="auth.login") if r["status_code"] == 200]
    logouts = w.gw.audit_rows(kind="auth.logout")
    assert len(logins) == len(logouts) == 2  # member and viewer: in, checked, out
    assert all(r["status_code"] == 204 for r in logouts)  # ended, as the caller was told
    assert member in {r["user_id"] for r in logouts}


def test_the_session_store_forgets_idle_and_ended_sessions() -> None:
    class Fake:
        pass

    store = SessionStore(idle_ttl_s=0.0)
    sid = store.add(Fake())  # type: ignore[arg-type]
    assert len(sid) >= 40 and store.get(sid) is None  # idle longer than the TTL
    store = SessionStore()
    sid = store.add(Fake())  # type: ignore[arg-type]
    assert store.get(sid) is not None and store.get("forged") is None and store.get(None) is None
    assert store.pop(sid) is not None and store.get(sid) is None
