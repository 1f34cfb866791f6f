"""The installed ``deepspace-lab`` command, driven as an operator would: subprocesses with a
controlled environment, on SQLite and on PostgreSQL."""

from __future__ import annotations

import argparse
import json
import signal
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from deepspace_lab.auth.passwords import verify_password
from deepspace_lab.cli import build_parser, main
from deepspace_lab.db.migrate import head_revision
from deepspace_lab.simulator import SIMULATED_MODELS

from ..helpers import TEST_SECRET
from .conftest import CLI, HELLO, MODEL, Proc, Processes, clean_environ, free_port, run_cli, run_json, sql

SIMULATED_IDS = [m["id"] for m in SIMULATED_MODELS]


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """The zero-config default: everything (database, secret key) in the data dir."""
    return clean_environ(DEEPSPACE_DATA_DIR=str(tmp_path / "data"), DEEPSPACE_LOG_LEVEL="WARNING",
                         DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS="0", HOME=str(tmp_path / "home"))


def sdk(base_url: str, key: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)


@dataclass
class Deployment:
    """One ``deepspace-lab init`` done on a fresh database; shared by a module's tests."""

    backend: str
    env: dict[str, str]
    url: str
    init: dict[str, Any]


def _deploy(backend: str, url: str, root: Path) -> Deployment:
    env = clean_environ(DEEPSPACE_DATA_DIR=str(root / "data"), DEEPSPACE_DATABASE_URL=url,
                        DEEPSPACE_SECRET_KEY=TEST_SECRET if backend == "postgresql" else None,
                        DEEPSPACE_SIMULATOR_TOKEN_LATENCY_MS="0", DEEPSPACE_LOG_LEVEL="WARNING",
                        HOME=str(root / "home"))
    return Deployment(backend, env, url, run_json(["init"], env))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """An initialised deployment on each backend (first ``init --json`` already run)."""
    root = tmp_path_factory.mktemp(f"deploy-{request.param}")
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_databases").create()
    else:
        url = f"sqlite:///{root / 'deepspace.sqlite'}"
    return _deploy(request.param, url, root)


@pytest.fixture(scope="module")
def sqlite_deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """The zero-config default, initialised: database and secret key in the data dir."""
    root = tmp_path_factory.mktemp("deploy-default")
    return _deploy("sqlite", f"sqlite:///{root / 'data' / 'deepspace.db'}", root)


# -- init ------------------------------------------------------------------------------------


def test_init_prints_credentials_once_then_changes_nothing(deployment: Deployment) -> None:
    first, env, url = deployment.init, deployment.env, deployment.url
    assert first["created"] is True
    assert first["email"] == "admin@localhost"
    assert first["org_id"].startswith("org_") and first["project_id"].startswith("prj_")
    assert first["api_key"].startswith("dsk_")
    password = first["password"]
    assert isinstance(password, str) and len(password) >= 8
    if deployment.backend == "sqlite":
        key_file = Path(first["secret_key_file"])
        assert key_file.parent == Path(env["DEEPSPACE_DATA_DIR"])
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) >= 32
    else:
        assert "secret_key_file" not in first  # the operator's DEEPSPACE_SECRET_KEY is used
    [admin] = sql(url, "SELECT email, password_hash, is_platform_admin FROM users")
    assert admin["is_platform_admin"] and verify_password(admin["password_hash"], password)

    second = run_json(["init"], env)
    assert second == {"created": False, "email": "admin@localhost", "org_id": first["org_id"],
                      "project_id": first["project_id"], "api_key": None}
    if deployment.backend == "sqlite":  # the text form, once
        text = run_cli(["init"], env)
        assert text.returncode == 0 and "Nothing was changed" in text.stdout and first["org_id"] in text.stdout
        assert password not in text.stdout and "dsk_" not in text.stdout
    assert len(sql(url, "SELECT id FROM users")) == 1
    assert len(sql(url, "SELECT id FROM orgs")) == 1
    assert len(sql(url, "SELECT id FROM api_keys WHERE name = 'init'")) == 1
    assert len(sql(url, "SELECT id FROM audit_logs WHERE kind = 'cli.init'")) == 1


def test_init_with_a_given_password_prints_none(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    result = run_json(["init", "--email", "Boss@Example.org", "--password", "correct horse battery",
                       "--org", "Physics", "--project", "Dark matter"], sqlite_env)
    assert result["created"] is True and "password" not in result
    assert result["email"] == "boss@example.org"
    db = f"sqlite:///{tmp_path / 'data' / 'deepspace.db'}"
    [user] = sql(db, "SELECT password_hash FROM users")
    assert verify_password(user["password_hash"], "correct horse battery")
    assert [r["name"] for r in sql(db, "SELECT name FROM orgs")] == ["Physics"]
    assert [r["name"] for r in sql(db, "SELECT name FROM projects")] == ["Dark matter"]


def test_init_rejects_a_short_password_then_inits_in_text(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(["init", "--password", "1234567"], sqlite_env)
    assert result.returncode == 2
    assert "at least 8 characters" in result.stderr
    assert not (tmp_path / "data" / "deepspace.db").exists()  # refused before touching anything

    result = run_cli(["init"], sqlite_env)
    assert result.returncode == 0, result.stderr
    assert "API key       dsk_" in result.stdout and "password      " in result.stdout
    assert "SIMULATED" in result.stdout and "shown only now" in result.stdout


def test_init_on_postgresql_without_secret_key_exits_2(pg_databases: Any, tmp_path: Path) -> None:
    url = pg_databases.create()
    env = clean_environ(DEEPSPACE_DATA_DIR=str(tmp_path / "data"), DEEPSPACE_DATABASE_URL=url)
    result = run_cli(["init"], env)
    assert result.returncode == 2
    assert "DEEPSPACE_SECRET_KEY" in result.stderr and result.stdout == ""
    as_json = run_cli(["init", "--json"], env)
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "secret_key_missing" and "DEEPSPACE_SECRET_KEY" in error["message"]
    # refused before touching anything: no schema, no key file
    assert sql(url, "SELECT to_regclass('public.alembic_version') AS t") == [{"t": None}]
    assert not (tmp_path / "data" / "secret_key").exists()


# -- migrate ---------------------------------------------------------------------------------


def test_four_concurrent_migrates_on_one_empty_database(cli_env: dict[str, str]) -> None:
    """The migration lock: all succeed, exactly one of them migrates, the others find it done."""
    procs = [subprocess.Popen([CLI, "migrate", "--json"], env=cli_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    results = [json.loads(out) for out, _err in outputs]
    head = head_revision()
    assert sorted(results, key=lambda r: not r["changed"]) == [
        {"before": None, "after": head, "changed": True},
        *[{"before": head, "after": head, "changed": False}] * 3,
    ]
    url = cli_env["DEEPSPACE_DATABASE_URL"]
    assert sql(url, "SELECT version_num FROM alembic_version") == [{"version_num": head}]
    assert sql(url, "SELECT COUNT(*) AS n FROM users") == [{"n": 0}]

    again = run_cli(["migrate"], cli_env)
    assert again.returncode == 0 and again.stdout.strip() == f"Already at {head}; nothing to do."


# -- doctor ----------------------------------------------------------------------------------


def test_doctor_ok_on_an_initialised_sqlite_setup(sqlite_deployment: Deployment) -> None:
    result = run_cli(["doctor"], sqlite_deployment.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BAD" not in result.stdout and "fix:" not in result.stdout
    for name in ("config", "database", "migrations", "prices", "redis", "upstream", "storage", "worker"):
        assert f"[ok ] {name}:" in result.stdout


def test_doctor_json_shape_with_the_real_redis(sqlite_deployment: Deployment, redis_url: str) -> None:
    report = run_json(["doctor"], dict(sqlite_deployment.env, DEEPSPACE_REDIS_URL=redis_url))
    assert set(report) == {"ok", "checks"} and report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["config", "database", "migrations", "prices", "redis",
                                                     "upstream", "storage", "worker"]
    for check in report["checks"]:
        assert set(check) == {"name", "ok", "message", "fix"}
        assert check["ok"] is True and check["message"] and check["fix"] == ""
    assert report["checks"][4]["message"] == "reachable"


def test_doctor_names_enabled_models_without_a_price(cli_env: dict[str, str]) -> None:
    run_json(["init"], cli_env)
    run_json(["models", "add", "unpriced", "--upstream-name", MODEL], cli_env)
    report = run_json(["doctor"], cli_env, expect_rc=1)
    (prices,) = [c for c in report["checks"] if c["name"] == "prices"]
    assert not prices["ok"] and "unpriced" in prices["message"] and "prices set" in prices["fix"]
    run_json(["prices", "set", "unpriced", "--free"], cli_env)
    assert run_json(["doctor"], cli_env)["ok"] is True


def test_doctor_unreachable_redis_is_bad_with_a_fix(sqlite_deployment: Deployment) -> None:
    env = dict(sqlite_deployment.env, DEEPSPACE_REDIS_URL="redis://127.0.0.1:1/0")
    result = run_cli(["doctor"], env, timeout=30)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    [index] = [i for i, line in enumerate(lines) if line.startswith("[BAD] redis")]
    assert lines[index + 1].strip().startswith("fix:") and "DEEPSPACE_REDIS_URL" in lines[index + 1]
    assert sum(line.startswith("[BAD]") for line in lines) == 1


def test_doctor_before_init_says_run_init(sqlite_env: dict[str, str]) -> None:
    report = run_json(["doctor"], sqlite_env, expect_rc=1)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert not checks["config"]["ok"] and "deepspace-lab init" in checks["config"]["fix"]
    assert not checks["migrations"]["ok"] and "deepspace-lab init" in checks["migrations"]["fix"]


def test_doctor_unreachable_postgresql(tmp_path: Path) -> None:
    env = clean_environ(DEEPSPACE_DATA_DIR=str(tmp_path / "data"), DEEPSPACE_SECRET_KEY=TEST_SECRET,
                        DEEPSPACE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    result = run_cli(["doctor"], env, timeout=30)
    assert result.returncode == 1
    assert "[BAD] database: cannot connect" in result.stdout
    fixes = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("fix:")]
    assert any("DEEPSPACE_DATABASE_URL" in line for line in fixes), result.stdout
    assert "postgres@" not in result.stdout  # the URL (a secret setting) is not echoed


# -- models and keys -------------------------------------------------------------------------


def test_models_add_and_list(deployment: Deployment) -> None:
    env = deployment.env
    added = run_json(["models", "add", "team-chat", "--upstream-name", MODEL, "--context-window", "4096",
                      "--description", "our alias"], env)
    assert added["created"] is True and added["upstream_name"] == MODEL
    assert added["model"]["id"] == "team-chat" and added["model"]["object"] == "model"
    again = run_json(["models", "add", "team-chat", "--upstream-name", "deepspace-simulated-long"], env)
    assert again["created"] is False and again["upstream_name"] == "deepspace-simulated-long"

    listed = {m["id"]: m for m in run_json(["models", "list"], env)}
    assert set(SIMULATED_IDS) | {"team-chat"} <= set(listed)  # init seeded the simulated ones
    assert all(listed[i]["upstream_name"] == i and listed[i]["object"] == "model" for i in SIMULATED_IDS)
    assert listed["team-chat"]["upstream_name"] == "deepspace-simulated-long"
    assert sql(deployment.url, "SELECT upstream_name FROM models WHERE name = 'team-chat'") == [
        {"upstream_name": "deepspace-simulated-long"}]
    if deployment.backend == "sqlite":  # the text form, once
        text = run_cli(["models", "list"], env)
        assert text.returncode == 0
        rows = {line.split()[0]: line.split()[-1] for line in text.stdout.splitlines() if "->" in line}
        assert rows["team-chat"] == "deepspace-simulated-long" and rows[MODEL] == MODEL


def test_keys_create_for_an_unknown_user_is_a_clear_error(sqlite_deployment: Deployment) -> None:
    error = run_json(["keys", "create", "--email", "nobody@example.org"], sqlite_deployment.env,
                     expect_rc=2)["error"]
    assert error["code"] == "user_not_found" and "nobody@example.org" in error["message"]


# -- gateway ---------------------------------------------------------------------------------


def test_gateway_serves_the_sdk_and_flushes_audit_rows_on_sigterm(
        deployment: Deployment, start_gateway: Callable[..., tuple[Proc, str]]) -> None:
    env, url = deployment.env, deployment.url
    created = run_json(["keys", "create", "--name", "notebook"], env)
    assert created["api_key"].startswith("dsk_") and created["api_key"] != deployment.init["api_key"]
    assert (created["org_id"], created["project_id"]) == (deployment.init["org_id"], deployment.init["project_id"])
    run_json(["models", "add", "gw-alias", "--upstream-name", MODEL], env)
    run_json(["prices", "set", "gw-alias", "--input-micros-per-mtok", "1000", "--output-micros-per-mtok", "2000"],
             env)  # a model without a price is refused
    # Audit rows are batched; with a minute-long interval only the shutdown flush can write them.
    proc, base_url = start_gateway(dict(env, DEEPSPACE_AUDIT_FLUSH_INTERVAL_MS="60000"))

    first_key = sdk(base_url, deployment.init["api_key"])  # the key init printed
    models = first_key.models.with_raw_response.list()
    assert set(SIMULATED_IDS) | {"gw-alias"} <= {m.id for m in models.parse()}
    client = sdk(base_url, created["api_key"])  # the key `keys create` printed
    plain = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    text = plain.parse().choices[0].message.content
    assert text.startswith("[simulated]")
    streamed = client.chat.completions.with_raw_response.create(model="gw-alias", messages=HELLO, stream=True)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    chunks = list(streamed.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    with pytest.raises(openai.AuthenticationError):
        sdk(base_url, created["api_key"][:-2] + "xx").models.list()
    traces = {models.headers["x-trace-id"]: ("/deepspace/v1/models", None, "init"),
              plain.headers["x-trace-id"]: ("/deepspace/v1/chat/completions", MODEL, "notebook"),
              streamed.headers["x-trace-id"]: ("/deepspace/v1/chat/completions", "gw-alias", "notebook")}
    assert len(traces) == 3

    query = ("SELECT a.trace_id, a.path, a.status_code, a.model, k.name AS key_name FROM audit_logs a "
             "JOIN api_keys k ON k.id = a.api_key_id WHERE a.kind = 'gateway.request'")
    assert [r for r in sql(url, query) if r["trace_id"] in traces] == []  # still buffered

    assert proc.stop(signal.SIGTERM) == 0, proc.describe()
    rows = [r for r in sql(url, query) if r["trace_id"] in traces]
    assert sorted(r["trace_id"] for r in rows) == sorted(traces)
    for row in rows:
        path, model, key_name = traces[row["trace_id"]]
        assert (row["path"], row["status_code"], row["key_name"]) == (path, 200, key_name)
        if model:
            assert row["model"] == model
    assert "Traceback" not in proc.stderr


def test_simulator_serves_the_simulated_models(spawn: Processes, tmp_path: Path) -> None:
    port = free_port()
    proc = spawn([CLI, "simulator", "--port", str(port)], clean_environ(DEEPSPACE_DATA_DIR=str(tmp_path / "d")))
    response = proc.wait_for(f"http://127.0.0.1:{port}/v1/models")
    assert [m["id"] for m in response.json()["data"]] == SIMULATED_IDS
    assert response.headers.get("X-DeepSpace-Simulated") == "true"
    reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": MODEL, "messages": HELLO})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"].startswith("[simulated]")
    assert "SIMULATED" in proc.stderr
    assert proc.stop(signal.SIGINT) == 0, proc.describe()
    assert not (tmp_path / "d").exists()  # the simulator needs no data dir or database


# -- --help ----------------------------------------------------------------------------------


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand the parser knows (so a new one is covered automatically)."""
    paths: list[tuple[str, ...]] = [()]

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths.append((*prefix, name))
                    walk(sub, (*prefix, name))

    walk(build_parser(), ())
    return paths


def test_the_console_script_help(tmp_path: Path) -> None:
    result = run_cli(["--help"], clean_environ(DEEPSPACE_DATA_DIR=str(tmp_path / "data")), timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: deepspace-lab")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line[4] != " "}
    assert {"init", "migrate", "doctor", "lab", "gateway", "simulator", "models", "keys"} <= listed
    assert not (tmp_path / "data").exists()  # --help touches nothing
    result = run_cli([], clean_environ(DEEPSPACE_DATA_DIR=str(tmp_path / "data")))
    assert result.returncode == 2 and "usage:" in result.stderr


# The entry point is proven above; every other --help runs the same ``main`` in-process (an
# interpreter start per command would cost more than the rest of this module).
COMMANDS = _command_paths()


def test_the_command_list_is_complete() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"init", "migrate", "doctor", "lab", "gateway", "simulator", "models", "models list",
            "models add", "keys", "keys create"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "deepspace-lab")
def test_help_exits_0(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: deepspace-lab" + "".join(f" {p}" for p in path))
