"""DESIGN §12.4: a kernel started by the Jupyter server gets the Gateway URL and a short-lived
token of its user, and none of the server's secrets — in single-user mode (the Gateway runs in
the server) and in remote mode (a shared Gateway; the server holds no database or upstream
secret and exchanges its user's JupyterHub token)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from jupyter_client import BlockingKernelClient

from ..identity.test_jupyter_users import FakeHub
from .conftest import CLI, JUPYTER, Processes, free_port, run_json
from .test_jupyter_extension import EXTENSION, OTHERS_OFF, TOKEN, Home, _root_flags, make_home, start_jupyter_server

pytestmark = pytest.mark.slow

PROBE = """
import json, os
from deepspace_lab.client import DeepSpaceClient
client = DeepSpaceClient()
me = client.me()
reply = client.chat("deepspace-simulated-chat", [{"role": "user", "content": "hi [sim:tokens=3]"}])
print("PROBE" + json.dumps({"env": sorted(k for k in os.environ if k.startswith("DEEPSPACE_")),
                            "url": client.base_url, "email": me["user"]["email"], "via": me["via"],
                            "reply": reply["choices"][0]["message"]["content"]}))
"""


def run_in_new_kernel(root: str, home: Home) -> dict[str, Any]:
    """Start a kernel through the server's REST API, run PROBE in it, shut it down."""
    headers = {"Authorization": f"token {TOKEN}"}
    kernel = httpx.post(root + "/api/kernels", json={"name": "python3"}, headers=headers, timeout=60).json()
    connection = Path(home.env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel['id']}.json"
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    out: list[str] = []
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(PROBE, timeout=60, output_hook=lambda msg: out.append(
            msg["content"].get("text", "") if msg["msg_type"] == "stream" else json.dumps(msg["content"])))
        assert reply["content"]["status"] == "ok", (reply["content"], out)
    finally:
        client.stop_channels()
        httpx.delete(f"{root}/api/kernels/{kernel['id']}", headers=headers, timeout=30)
    lines = [part for part in "\n".join(out).splitlines() if part.startswith("PROBE")]
    assert lines, out
    return dict(json.loads(lines[0].removeprefix("PROBE")))


def test_single_user_kernel_gets_the_url_and_a_token_and_no_secret(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    secret = (tmp_path / "data" / "secret_key").read_text().strip()
    # secrets given to the server through its environment must not reach kernels
    home.env.update(DEEPSPACE_SECRET_KEY=secret, DEEPSPACE_UPSTREAM_API_KEY="upstream-secret",
                    DEEPSPACE_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'deepspace.db'}",
                    DEEPSPACE_API_KEY="dsk_not_from_the_server")
    procs = Processes(tmp_path / "logs")
    try:
        _proc, root = start_jupyter_server(procs, home)
        probe = run_in_new_kernel(root, home)
    finally:
        procs.close()
    assert probe["env"] == ["DEEPSPACE_GATEWAY_URL", "DEEPSPACE_REFRESH_TOKEN", "DEEPSPACE_TOKEN"]
    assert httpx.URL(probe["url"]).port == httpx.URL(root).port
    assert probe["via"] == "jwt" and probe["email"] == "admin@localhost"
    assert probe["reply"].startswith("[simulated]")


@pytest.fixture
def hub() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


def test_remote_mode_kernel_gets_its_hub_users_token_from_the_shared_gateway(tmp_path: Path, hub: str) -> None:
    gateway_home = make_home(tmp_path / "gateway")
    org = run_json(["init"], gateway_home.env)["org_id"]
    procs = Processes(tmp_path / "logs")
    try:
        port = free_port()
        gateway = procs([CLI, "gateway", "--port", str(port)], dict(
            gateway_home.env, DEEPSPACE_JUPYTERHUB_API_URL=hub, DEEPSPACE_JUPYTER_USER_ORG=org), name="gateway")
        gateway_url = f"http://127.0.0.1:{port}"
        gateway.wait_for(gateway_url + "/deepspace/api/health/ready", timeout=60)
        server_home = make_home(tmp_path / "server", init=False)
        empty_data = tmp_path / "server" / "data"
        # settings an operator left on the server (remote mode needs none) must not reach kernels either
        server_home.env.update(DEEPSPACE_GATEWAY_URL=gateway_url, JUPYTERHUB_API_TOKEN="tok-alice",
                               DEEPSPACE_UPSTREAM_API_KEY="upstream-secret", DEEPSPACE_SECRET_KEY="s" * 48,
                               DEEPSPACE_DATABASE_URL=f"sqlite:///{empty_data / 'deepspace.db'}")
        port = free_port()
        server = procs([JUPYTER, "server", "--no-browser", f"--port={port}", f"--ServerApp.token={TOKEN}",
                        f"--ServerApp.jpserver_extensions={ {EXTENSION: True, **OTHERS_OFF}!r}",
                        f"--ServerApp.root_dir={tmp_path / 'server' / 'notebooks'}", *_root_flags()],
                       server_home.env, name="jupyter-remote")
        root = f"http://127.0.0.1:{port}"
        server.wait_for(root + "/api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=60)
        assert httpx.get(root + "/deepspace/api/health").status_code == 404  # no Gateway in this server
        probe = run_in_new_kernel(root, server_home)
    finally:
        procs.close()
    assert probe["url"] == gateway_url and probe["email"] == "alice@jupyter.invalid" and probe["via"] == "jwt"
    assert probe["env"] == ["DEEPSPACE_GATEWAY_URL", "DEEPSPACE_REFRESH_TOKEN", "DEEPSPACE_TOKEN"]
    assert not (empty_data / "deepspace.db").exists()
