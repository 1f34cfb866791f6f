"""Fixtures shared by every test.

Storage tests run on SQLite and on PostgreSQL: the ``backend`` fixture is parametrised over
both. PostgreSQL comes from ``DEEPSPACE_TEST_DATABASE_URL`` (a server URL; each test session
creates and drops its own databases on it) and Redis from ``DEEPSPACE_TEST_REDIS_URL``;
``.ci/run`` sets both. Without them the PostgreSQL variants are skipped with a reason —
except under CI (``CI=true``), where a missing URL is an error.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url

import deepspace_lab.auth.passwords as _passwords
from deepspace_lab.bootstrap import seed_simulated_models
from deepspace_lab.config import Settings
from deepspace_lab.db.migrate import upgrade

from .helpers import TEST_SECRET, Gateway, make_tenant, start_gateway

PG_URL = os.environ.get("DEEPSPACE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("DEEPSPACE_TEST_REDIS_URL")


def _redis_for_this_worker(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets a Redis database of its own (the URL's number minus the
    worker's index), so no test sees another worker's queue, counters or streams."""
    from urllib.parse import urlsplit

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if url is None or not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) - int(worker[2:])
    if db < 0:
        raise RuntimeError(f"not enough Redis databases below {url} for xdist worker {worker}")
    return parts._replace(path=f"/{db}").geturl()


REDIS_URL = _redis_for_this_worker(REDIS_URL)

#: The production hasher (argon2id, argon2-cffi's RFC 9106 low-memory profile): ~0.17 s per hash
#: and per check, and the identity and admin worlds create a dozen users per test. Tests hash with
#: argon2id at its lowest cost instead (a check reads the cost from the stored hash, so sign-ins
#: get cheap too, in spawned gateways as well); ``tests/auth/test_passwords.py`` checks the
#: production parameters.
PRODUCTION_HASHER = _passwords._hasher
_passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(value: str | None, name: str) -> str:
    if value:
        return value
    if IN_CI:
        pytest.fail(f"{name} must be set under CI")
    pytest.skip(f"set {name} to run this on a real server (see README, 'Tests')")


class PgDatabases:
    """Creates throwaway databases on the test PostgreSQL server, drops them at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    def _admin(self) -> Any:
        import psycopg

        url = make_url(self.server_url).set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def create(self) -> str:
        name = f"dsl_test_{os.getpid()}_{secrets.token_hex(4)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, urls: list[str]) -> None:
        """Drop these databases now (a test's own, at its end: spread over the run, the drops
        never pile up into one teardown that outlasts the per-test timeout)."""
        names = [make_url(url).database for url in urls]
        with self._admin() as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created = [name for name in self.created if name not in names]

    def drop_all(self) -> None:
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases(_require(PG_URL, "DEEPSPACE_TEST_DATABASE_URL"))
    yield dbs
    dbs.drop_all()


@pytest.fixture
def redis_url() -> str:
    return _require(REDIS_URL, "DEEPSPACE_TEST_REDIS_URL")


@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Callable[[], str]:
    """A factory of empty databases on the current backend."""
    if backend == "sqlite":
        counter = iter(range(1000))
        return lambda: f"sqlite:///{tmp_path / f'db{next(counter)}.sqlite'}"
    pg: PgDatabases = request.getfixturevalue("pg_databases")
    made: list[str] = []

    def create() -> str:
        made.append(pg.create())
        return made[-1]

    request.addfinalizer(lambda: pg.drop(made))  # after the fixtures using them (gateways) closed
    return create


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        _require(PG_URL, "DEEPSPACE_TEST_DATABASE_URL")
    return str(request.param)


def make_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(data_dir), "database_url": db_url, "secret_key": TEST_SECRET,
        "audit_flush_interval_ms": 0, "simulator_token_latency_ms": 0, "upstream_timeout_s": 10,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings.from_env(values, environ={})


@pytest.fixture
def db_url(fresh_db_url: Callable[[], str]) -> str:
    """A migrated, empty database on the current backend."""
    url = fresh_db_url()
    upgrade(url)
    return url


@pytest.fixture
def settings_factory(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    return lambda **overrides: make_settings(db_url, tmp_path / "data", **overrides)


@pytest.fixture
def gateway_factory(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., Gateway]]:
    """Start in-process gateways (simulated upstream, synchronous audit) on the backend's db."""
    started: list[Gateway] = []

    def start(**overrides: Any) -> Gateway:
        settings = settings_factory(**overrides)
        asyncio.run(seed_simulated_models(settings))
        tenant = make_tenant(settings, email=f"u{len(started)}-{secrets.token_hex(3)}@example.org")
        gw = start_gateway(settings, tenant)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway]) -> Gateway:
    return gateway_factory()
