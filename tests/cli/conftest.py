"""Fixtures for tests that drive the installed ``deepspace-lab`` / ``jupyter`` commands as
subprocesses: a clean environment, free ports, readiness by polling, and teardown that always
kills what a test started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import TEST_SECRET

BIN = Path(sys.executable).parent
CLI = str(BIN / "deepspace-lab")
JUPYTER = str(BIN / "jupyter")
MODEL = "deepspace-simulated-chat"
HELLO = [{"role": "user", "content": "hello there"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environ(**extra: str | None) -> dict[str, str]:
    """This process's environment without any DEEPSPACE_* or JUPYTER_* setting, plus ``extra``
    (a None value removes the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEEPSPACE_", "JUPYTER_"))}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=dict(env), capture_output=True, text=True, timeout=timeout)


def run_json(args: Sequence[str], env: Mapping[str, str], *, expect_rc: int = 0) -> Any:
    result = run_cli([*args, "--json"], env)
    assert result.returncode == expect_rc, (args, result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


@dataclass
class Proc:
    """A started subprocess; its output goes to files (a pipe nobody reads could block it)."""

    name: str
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    _closed: list[Any] = field(default_factory=list, repr=False)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        return (f"{self.name} (pid {self.popen.pid}, rc {self.popen.poll()})\n--- stdout ---\n{self.stdout[-4000:]}"
                f"\n--- stderr ---\n{self.stderr[-4000:]}")

    def wait_for(self, url: str, *, timeout: float = 30, headers: Mapping[str, str] | None = None,
                 ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200) -> httpx.Response:
        """Poll ``url`` until ``ok(response)``; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"exited before {url} answered: {self.describe()}")
            try:
                response = httpx.get(url, headers=dict(headers or {}), timeout=2)
                if ok(response):
                    return response
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                last = exc
            time.sleep(0.05)
        pytest.fail(f"{url} not ready after {timeout}s (last: {last}): {self.describe()}")

    def wait_output(self, needle: str, *, timeout: float = 30) -> str:
        """Poll the captured stdout+stderr until it contains ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout + self.stderr
            if needle in text:
                return text
            if self.popen.poll() is not None:
                pytest.fail(f"exited before printing {needle!r}: {self.describe()}")
            time.sleep(0.05)
        pytest.fail(f"{needle!r} not printed after {timeout}s: {self.describe()}")

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 20) -> int:
        """Send ``sig`` and wait for the exit code (SIGKILL if it does not stop in time)."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                pytest.fail(f"did not stop within {timeout}s of signal {sig}: {self.describe()}")
        return int(self.popen.returncode)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Spawn children that take SIGINT as a shell would start them. An ignored SIGINT is inherited
    across exec (and a Python that starts with it ignored never installs its handler): when
    something in this test process had set SIG_IGN (ipykernel's app does, for one), a child
    stopped with SIGINT ignored it and was killed after the timeout."""
    ignored = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


class Processes:
    """Starts subprocesses; :meth:`close` kills every one still running (fixture teardown)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []

    def __call__(self, cmd: Sequence[str], env: Mapping[str, str], *, name: str | None = None,
                 cwd: Path | None = None) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        label = name or f"{Path(cmd[0]).name}-{len(self.started)}"
        out, err = self.log_dir / f"{label}.out", self.log_dir / f"{label}.err"
        with open(out, "wb") as out_f, open(err, "wb") as err_f, _sigint_not_ignored():
            popen = subprocess.Popen(list(cmd), env=dict(env), stdout=out_f, stderr=err_f, cwd=cwd,
                                     stdin=subprocess.DEVNULL)
        proc = Proc(label, popen, out, err)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.started:
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Processes]:
    """Start a subprocess; every one still running at teardown is killed."""
    procs = Processes(tmp_path / "proc-logs")
    yield procs
    procs.close()


@pytest.fixture
def cli_env(backend: str, fresh_db_url: Callable[[], str], tmp_path: Path) -> dict[str, str]:
    """Environment for the CLI on a fresh empty database of the current backend (with the secret
    key PostgreSQL requires; SQLite generates its own into the data dir)."""
    data_dir = tmp_path / "data"
    return clean_environ(
        DEEPSPACE_DATA_DIR=str(data_dir),
        DEEPSPACE_DATABASE_URL=fresh_db_url(),
        DEEPSPACE_SECRET_KEY=TEST_SECRET if backend == "postgresql" else None,
        DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS="0",
        DEEPSPACE_LOG_LEVEL="WARNING",
        HOME=str(tmp_path / "home"),
    )


def start_gateways(spawn: Processes, env: Mapping[str, str], count: int = 1, *,
                   timeout: float = 45) -> list[tuple[Proc, str]]:
    """Start ``count`` ``deepspace-lab gateway`` processes at once on free ports, then wait for
    each one's health URL; returns (process, OpenAI base URL) pairs."""
    started = []
    for _ in range(count):
        port = free_port()
        started.append((spawn([CLI, "gateway", "--port", str(port)], env, name=f"gateway-{port}"),
                        f"http://127.0.0.1:{port}"))
    for proc, root in started:
        proc.wait_for(root + "/deepspace/api/health", timeout=timeout)
    return [(proc, root + "/deepspace/v1") for proc, root in started]


@pytest.fixture
def start_gateway(spawn: Processes) -> Callable[..., tuple[Proc, str]]:
    """Start one ``deepspace-lab gateway`` and wait until it answers."""
    return lambda env: start_gateways(spawn, env)[0]


def sql(url: str, query: str, **params: Any) -> list[dict[str, Any]]:
    """Run one query on ``url`` with a sync engine (the CLI's database, read from outside)."""
    from sqlalchemy import text

    from deepspace_lab.db import make_sync_engine

    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query), params)]
    finally:
        engine.dispose()
