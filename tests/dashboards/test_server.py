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


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_file_downloads_through_the_console_in_pieces_for_its_signed_in_admin(
        admin_world: AdminWorld, spawn: Processes, tmp_path: Path) -> None:
    """``/files/{id}`` streams a file of the admin's org from the Gateway with the admin's own
    credentials (the link an export or statement shows): exactly the stored bytes, as an
    attachment. No console session is 401; another org's file is the Gateway's 404."""
    from deepspace_lab.client import DeepSpaceClient

    w = admin_world
    big = bytes(range(256)) * 12_000  # ~3 MB, more than one piece
    with DeepSpaceClient(base_url=w.gw.url, access_token=w.token(w.platform)) as ops:
        mine = ops.upload_file("usage export.csv", big, content_type="text/csv")
    with DeepSpaceClient(base_url=w.gw.url, api_key=w.a.people["member"].key) as member:
        theirs = member.upload_file("theirs.csv", b"a,b\n", content_type="text/csv")
    _proc, url = start_admin(spawn, w.gw.url, tmp_path / "data")
    assert httpx.get(f"{url}/files/{mine['id']}", timeout=30).status_code == 401
    with httpx.Client(base_url=url, timeout=30) as admin:
        assert admin.post("/login", data={"username": w.platform.email, "password": PASSWORD}).status_code == 302
        with admin.stream("GET", f"/files/{mine['id']}") as got:
            assert got.status_code == 200
            assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''usage%20export.csv"
            assert got.headers["content-type"].startswith("text/csv")
            assert int(got.headers["content-length"]) == len(big)
            assert b"".join(got.iter_bytes()) == big
        other = admin.get(f"/files/{theirs['id']}")
        assert other.status_code == 404 and "file_not_found" in other.text
