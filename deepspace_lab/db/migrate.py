"""Migrations with Alembic, safe when several processes start at once.

One process migrates while holding a lock; the others wait for it, then find nothing
left to do. PostgreSQL: a session-level advisory lock. SQLite: an exclusive ``flock`` on a
file beside the database (SQLite files are local, so a file lock is enough).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from .engine import make_sync_engine, sqlite_path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Arbitrary constant naming our advisory lock ("dsl-mig" in ASCII).
PG_LOCK_KEY = 0x64736C2D6D6967


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str) -> str | None:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(url: str) -> tuple[str | None, str | None]:
    """Migrate ``url`` to head under the lock. Returns (revision before, revision after)."""
    db_file = sqlite_path(url)
    lock = _file_lock(db_file.with_name(db_file.name + ".migrate-lock")) if db_file else contextlib.nullcontext()
    engine = make_sync_engine(url)
    try:
        with lock, engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
                conn.commit()
            try:
                before = MigrationContext.configure(conn).get_current_revision()
                command.upgrade(alembic_config(conn), "head")
                conn.commit()
                after = MigrationContext.configure(conn).get_current_revision()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                    conn.commit()
        return before, after
    finally:
        engine.dispose()
