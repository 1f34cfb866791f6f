"""The Gateway hosted by a real ``jupyter server`` (and by ``deepspace-lab lab``), driven over
HTTP from outside: the OpenAI SDK works, and Jupyter and gateway credentials stay apart."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from deepspace_lab.simulator import SIMULATED_MODELS

from .conftest import CLI, HELLO, JUPYTER, MODEL, Proc, Processes, clean_environ, free_port, run_json, sql

pytestmark = pytest.mark.slow

TOKEN = "TESTTOKEN"
REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "jupyter-config" / "jupyter_server_config.d" / "deepspace_lab.json"
EXTENSION = "deepspace_lab.server_extension"
# Other server extensions installed in this environment (JupyterLab, Panel, LSP, ...) are
# switched off for the plain ``jupyter server`` runs: they cost seconds of start-up and are not
# under test here. ``deepspace-lab lab`` below runs with all of them.
OTHERS_OFF = {name: False for name in ("jupyterlab", "panel.io.jupyter_server_extension", "jupyter_lsp",
                                       "notebook_shim", "jupyter_server_terminals")}


def _root_flags() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


@dataclass
class Home:
    """An isolated Jupyter + DeepSpace home: data dir initialised, Jupyter dirs in tmp."""

    root: Path
    env: dict[str, str]
    key: str


def make_home(root: Path, *, init: bool = True, **extra: str) -> Home:
    """Jupyter's config/data/runtime dirs and DeepSpace's data dir under ``root``; with ``init``
    ``deepspace-lab init --json`` has run and its key is kept."""
    for name in ("jupyter-config", "jupyter-data", "jupyter-runtime", "notebooks", "home"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env = clean_environ(
        DEEPSPACE_DATA_DIR=str(root / "data"), DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS="0",
        DEEPSPACE_LOG_LEVEL="WARNING", HOME=str(root / "home"),
        JUPYTER_CONFIG_DIR=str(root / "jupyter-config"), JUPYTER_DATA_DIR=str(root / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(root / "jupyter-runtime"), JUPYTER_PLATFORM_DIRS="1", **extra)
    return Home(root, env, run_json(["init"], env)["api_key"] if init else "")


def start_jupyter_server(spawn: Processes, home: Home, *extra: str, base_url: str = "/") -> tuple[Proc, str]:
    port = free_port()
    extensions = {EXTENSION: True, **OTHERS_OFF}
    proc = spawn([JUPYTER, "server", "--no-browser", f"--port={port}", f"--ServerApp.token={TOKEN}",
                  f"--ServerApp.jpserver_extensions={extensions!r}", f"--ServerApp.root_dir={home.root / 'notebooks'}",
                  f"--ServerApp.base_url={base_url}", *_root_flags(), *extra],
                 home.env, name=f"jupyter-{port}")
    root = f"http://127.0.0.1:{port}{base_url.rstrip('/')}"
    # /health answers as soon as the routes exist; /health/ready once the gateway has started.
    proc.wait_for(root + "/deepspace/api/health/ready", timeout=60)
    return proc, root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return make_home(tmp_path_factory.mktemp("jupyter-home"))


@pytest.fixture(scope="module")
def server(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    procs = Processes(tmp_path_factory.mktemp("jupyter-logs"))
    try:
        yield start_jupyter_server(procs, home)
    finally:
        procs.close()


def sdk(base_url: str, key: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)


def test_openai_sdk_through_jupyter(server: tuple[Proc, str], home: Home) -> None:
    _proc, root = server
    client = sdk(root + "/deepspace/v1", home.key)
    assert [m.id for m in client.models.list()] == [m["id"] for m in SIMULATED_MODELS]
    reply = client.chat.completions.create(model=MODEL, messages=HELLO)
    text = reply.choices[0].message.content
    assert text.startswith("[simulated]")
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text


def test_post_needs_no_xsrf_cookie(server: tuple[Proc, str], home: Home) -> None:
    """A plain POST with only the Bearer key: no _xsrf cookie, header or argument."""
    _proc, root = server
    with httpx.Client() as client:
        response = client.post(root + "/deepspace/v1/chat/completions", json={"model": MODEL, "messages": HELLO},
                               headers={"Authorization": f"Bearer {home.key}"})
        assert response.status_code == 200, response.text
        assert not client.cookies  # nothing was needed, nothing was set
    assert response.json()["choices"][0]["message"]["content"].startswith("[simulated]")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Trace-Id"])


@pytest.mark.parametrize("authorization", [f"token {TOKEN}", f"Bearer {TOKEN}"])
def test_the_jupyter_token_is_not_a_gateway_credential(server: tuple[Proc, str], authorization: str) -> None:
    _proc, root = server
    for method, path, body in (("GET", "/deepspace/v1/models", None),
                               ("POST", "/deepspace/v1/chat/completions", {"model": MODEL, "messages": HELLO})):
        response = httpx.request(method, root + path, json=body, headers={"Authorization": authorization})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["type"]
    # the ?token= query parameter Jupyter accepts is no gateway credential either
    assert httpx.get(root + "/deepspace/v1/models", params={"token": TOKEN}).status_code == 401


def test_a_gateway_key_grants_no_jupyter_access(server: tuple[Proc, str], home: Home) -> None:
    _proc, root = server
    for authorization in (f"Bearer {home.key}", f"token {home.key}"):
        denied = httpx.get(root + "/api/contents", headers={"Authorization": authorization})
        assert denied.status_code in (401, 403), denied.text
    allowed = httpx.get(root + "/api/contents", headers={"Authorization": f"token {TOKEN}"})
    assert allowed.status_code == 200 and allowed.json()["type"] == "directory"


def test_health_answers_without_credentials(server: tuple[Proc, str]) -> None:
    _proc, root = server
    health = httpx.get(root + "/deepspace/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["upstream"] == "simulated"
    ready = httpx.get(root + "/deepspace/api/health/ready").json()
    assert ready["status"] == "ready" and ready["checks"]["database"] == "ok"


def test_the_extension_links_cleanly(server: tuple[Proc, str]) -> None:
    proc, _root = server
    log = proc.stderr + proc.stdout
    assert f"{EXTENSION} | extension was successfully linked" in log
    assert "error linking extension" not in log


def test_the_extension_shows_in_jupyter_server_extension_list(home: Home, tmp_path: Path) -> None:
    """With the shipped ``jupyter_server_config.d`` file in place (as a wheel install puts it), the
    extension is listed as enabled and validates."""
    config_dir = tmp_path / "jupyter-config"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    (config_dir / "jupyter_server_config.d" / SHIPPED_CONFIG.name).write_text(SHIPPED_CONFIG.read_text())
    assert json.loads(SHIPPED_CONFIG.read_text())["ServerApp"]["jpserver_extensions"] == {EXTENSION: True}
    env = dict(home.env, JUPYTER_CONFIG_DIR=str(config_dir))
    result = subprocess.run([JUPYTER, "server", "extension", "list"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert f"{EXTENSION} enabled" in output
    assert re.search(rf"- Validating {re.escape(EXTENSION)}\.\.\.\s+{re.escape(EXTENSION)} \S* ?OK", output), output


def test_routes_move_under_the_base_url(home: Home, spawn: Processes) -> None:
    _proc, root = start_jupyter_server(spawn, home, base_url="/user/alice/")
    assert root.endswith("/user/alice")
    client = sdk(root + "/deepspace/v1", home.key)
    assert MODEL in {m.id for m in client.models.list()}
    assert client.chat.completions.create(model=MODEL, messages=HELLO).choices[0].message.content
    assert httpx.get(root + "/deepspace/api/health").status_code == 200
    server_root = root.removesuffix("/user/alice")
    assert httpx.get(server_root + "/deepspace/api/health").status_code == 404
    assert httpx.get(server_root + "/deepspace/v1/models",
                     headers={"Authorization": f"Bearer {home.key}"}).status_code == 404


def test_deepspace_lab_lab_first_run(spawn: Processes, tmp_path: Path) -> None:
    """``deepspace-lab lab``: JupyterLab with every installed extension, the first-run key printed,
    and the gateway answering under it with that key."""
    home = make_home(tmp_path, init=False, JUPYTER_TOKEN="LABTOKEN")  # `lab` does the first run
    if _root_flags():  # running as root (containers): JupyterLab refuses without allow_root
        (tmp_path / "jupyter-config" / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"allow_root": True}}))
    port = free_port()
    proc = spawn([CLI, "lab", "--no-browser", "--port", str(port)], home.env, name="lab",
                 cwd=tmp_path / "notebooks")
    out = proc.wait_output("API key (shown once): ", timeout=60)
    key = re.search(r"API key \(shown once\): (dsk_\S+)", out)
    assert key is not None, out
    assert f"OpenAI base URL: http://127.0.0.1:{port}/deepspace/v1" in out
    root = f"http://127.0.0.1:{port}"
    proc.wait_for(root + "/deepspace/api/health/ready", timeout=90)

    client = sdk(root + "/deepspace/v1", key.group(1))
    assert MODEL in {m.id for m in client.models.list()}
    assert client.chat.completions.create(model=MODEL, messages=HELLO).choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        sdk(root + "/deepspace/v1", "LABTOKEN").models.list()
    lab = httpx.get(root + "/lab", headers={"Authorization": "token LABTOKEN"})
    assert lab.status_code == 200 and "JupyterLab" in lab.text

    # `lab` also runs a Worker (DESIGN §12.9): an export job gets done, and the worker stops with lab
    auth = {"Authorization": f"Bearer {key.group(1)}"}
    job = httpx.post(root + "/deepspace/api/exports", headers=auth, json={"dataset": "usage"}).json()
    deadline = time.monotonic() + 60
    while job["state"] != "done":
        assert job["state"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.1)
        job = httpx.get(root + f"/deepspace/api/jobs/{job['id']}", headers=auth).json()
    db_url = f"sqlite:///{tmp_path / 'data' / 'deepspace.db'}"
    worker_pid = int(sql(db_url, "SELECT worker FROM jobs")[0]["worker"].rsplit(":")[1])
    assert proc.stop(signal.SIGTERM) == 0, proc.describe()
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)


def test_deepspace_lab_lab_forwards_jupyter_options(spawn: Processes, tmp_path: Path) -> None:
    home = make_home(tmp_path, init=False)
    port = free_port()
    proc = spawn([CLI, "lab", "--no-browser", "--port", str(port), "--ServerApp.token=FORWARDED",
                  *(["--ServerApp.allow_root=True"] if _root_flags() else [])], home.env, name="lab-forward",
                 cwd=tmp_path / "notebooks")
    root = f"http://127.0.0.1:{port}"
    proc.wait_for(root + "/deepspace/api/health/ready", timeout=90)
    assert httpx.get(root + "/api/contents", headers={"Authorization": "token FORWARDED"}).status_code == 200


def test_the_jupyter_user_gets_a_deepspace_token_in_single_user_mode(server: tuple[Proc, str], home: Home) -> None:
    _proc, root = server
    url = root + "/deepspace/api/jupyter/token"
    assert httpx.post(url).status_code in (401, 403)  # Jupyter's own auth guards it
    assert httpx.post(url, headers={"Authorization": f"Bearer {home.key}"}).status_code in (401, 403)
    response = httpx.post(url, headers={"Authorization": f"token {TOKEN}"})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = httpx.get(root + "/deepspace/api/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user"]["email"] == "admin@localhost" and me["user"]["is_platform_admin"] is True
