"""Jupyter users become DeepSpace users: remote mode's Hub-token exchange on the gateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ..helpers import Gateway, make_tenant

HUB_TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


class FakeHub(BaseHTTPRequestHandler):
    """JupyterHub's `GET /hub/api/user`: who owns this token."""

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("token ")
        name = HUB_TOKENS.get(token)
        body = (b'{"name": "%s", "kind": "user"}' % name.encode()) if name and self.path == "/hub/api/user" else b"{}"
        self.send_response(200 if name else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


@pytest.fixture
def remote(gateway_factory: Any, settings_factory: Any, hub: str) -> Gateway:
    org = make_tenant(settings_factory(), email="hub-owner@example.org")
    return gateway_factory(jupyterhub_api_url=hub, jupyter_user_org=org.org_id, jupyter_user_role="member")


def exchange(gw: Gateway, token: str) -> httpx.Response:
    return httpx.post(gw.url + "/deepspace/api/auth/jupyterhub", json={"hub_token": token})


def test_a_hub_user_is_made_on_first_use_and_found_after(remote: Gateway) -> None:
    first = exchange(remote, "tok-alice")
    assert first.status_code == 200, first.text
    me = httpx.get(remote.url + "/deepspace/api/me",
                   headers={"Authorization": f"Bearer {first.json()['access_token']}"}).json()
    assert me["role"] == "member" and me["via"] == "jwt"
    again = exchange(remote, "tok-alice").json()["access_token"]
    me_again = httpx.get(remote.url + "/deepspace/api/me", headers={"Authorization": f"Bearer {again}"}).json()
    assert me_again["user"]["id"] == me["user"]["id"]
    with remote.db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM users WHERE external_id = 'jupyter:alice'")).scalar() == 1
    (row,) = remote.audit_rows(trace_id=first.headers["X-Trace-Id"])
    assert row["kind"] == "auth.jupyterhub" and row["detail"]["jupyter_user"] == "alice"
    assert "tok-alice" not in str(row["detail"])


def test_a_token_the_hub_does_not_know_is_refused(remote: Gateway) -> None:
    response = exchange(remote, "tok-mallory")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_hub_token"
    with remote.db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM users WHERE external_id IS NOT NULL")).scalar() == 0


def test_without_hub_settings_the_exchange_is_off(gateway: Gateway) -> None:
    response = exchange(gateway, "tok-alice")
    assert response.status_code == 404 and response.json()["error"]["code"] == "jupyterhub_not_configured"


def test_an_unreachable_hub_is_a_503_not_a_401(gateway_factory: Any, settings_factory: Any) -> None:
    org = make_tenant(settings_factory(), email="o@example.org")
    gw = gateway_factory(jupyterhub_api_url="http://127.0.0.1:1/hub/api", jupyter_user_org=org.org_id)
    response = exchange(gw, "tok-alice")
    assert response.status_code == 503 and response.json()["error"]["code"] == "jupyterhub_unreachable"
