"""``deepspace-lab admin`` as its own process against a real gateway: the login page, who gets
in, the cookie (signed, HTTP-only, SameSite, holding no token), logout, and the cookie secret
it generates for itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from ..admin.conftest import AdminWorld
from ..cli.conftest import CLI, Proc, Processes, clean_environ, free_port
from ..identity.conftest import PASSWORD


def start_admin(spawn: Processes, gateway_url: str, data_dir: Path, *extra: str) -> tuple[Proc, str]:
    port = free_port()
    env = clean_environ(DEEPSPACE_DATA_DIR=str(data_dir), DEEPSPACE_LOG_LEVEL="INFO")
    proc = spawn([CLI, "admin", f"--port={port}", f"--gateway={gateway_url}", *extra], env, name="admin")
    url = f"http://127.0.0.1:{port}"
    proc.wait_for(url + "/login", timeout=60)
    return proc, url


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_login_cookie_and_logout(admin_world: AdminWorld, spawn: Processes, tmp_path: Path) -> None:
    w = admin_world
    proc, url = start_admin(spawn, w.gw.url, tmp_path / "data")
    secret_file = tmp_path / "data" / "admin_cookie_secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    with httpx.Client(base_url=url, timeout=30) as anon:
        first = anon.get("/")
        assert first.status_code == 302 and "/login" in first.headers["location"]
        page = anon.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        assert page.status_code == 200 and "登录" in page.text and 'name="password"' in page.text
        refused = anon.post("/login", data={"username": w.a.people["member"].email, "password": PASSWORD,
                                            "lang": "en"})
        assert refused.status_code == 403 and "for platform admins and org admins only" in refused.text
        assert "deepspace_admin" not in refused.cookies
        wrong = anon.post("/login", data={"username": w.platform.email, "password": "nope nope"})
        assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    with httpx.Client(base_url=url, timeout=30) as admin:
        signed_in = admin.post("/login", data={"username": w.platform.email, "password": PASSWORD})
        assert signed_in.status_code == 302 and signed_in.headers["location"] == "/"
        set_cookie = next(h for h in signed_in.headers.get_list("set-cookie") if h.startswith("deepspace_admin="))
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        cookie = admin.cookies["deepspace_admin"]
        assert "." not in cookie.split("|")[4]  # the signed value is a random session id, not a JWT
        app = admin.get("/")
        assert app.status_code == 200 and "bokeh" in app.text.lower()
        forged = httpx.get(url + "/", cookies={"deepspace_admin": cookie[:-4] + "0000"})
        assert forged.status_code == 302
        out = admin.get("/logout")
        assert out.status_code == 302 and out.headers["location"] == "/login"
        again = httpx.get(url + "/", cookies={"deepspace_admin": cookie})  # the old cookie, replayed
        assert again.status_code == 302 and "/login" in again.headers["location"]
    logs = proc.stdout + proc.stderr
    assert PASSWORD not in logs and "access_token" not in logs
