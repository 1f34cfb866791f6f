"""What the worker benchmarks share: a scratch database to fill and drop, and the SQL that
spreads generated rows evenly over a span of time on either database."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from deepspace_lab.db.migrate import upgrade


@contextmanager
def scratch_database(backend: str, pg_url: str, prefix: str, folder: Path | None = None) -> Iterator[str]:
    """The URL of a new, migrated database: a SQLite file (in ``folder``, else a new temporary
    one) or a PostgreSQL database made on ``pg_url``'s server and dropped afterwards."""
    if backend == "sqlite":
        where = folder or Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        url = f"sqlite:///{where / 'deepspace.db'}"
        upgrade(url)
        yield url
        return
    name = f"{prefix.replace('-', '_')}_{secrets.token_hex(4)}"
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spread_sql(dialect: str) -> tuple[str, str]:
    """(a query of ``i`` in ``0 … :n - 1``, the time of row ``s.i``: ``:start`` + i × ``:span`` / ``:n``
    seconds). Parameters ``n``, ``span``, ``start`` (an aware datetime) and, for SQLite,
    ``start_naive`` (``start`` as ``YYYY-MM-DD HH:MM:SS``)."""
    if dialect == "postgresql":
        return ("SELECT generate_series(0, :n - 1) AS i",
                "(CAST(:start AS timestamptz) + make_interval(secs => (s.i::bigint * :span) / :n))")
    # the text form SQLAlchemy writes (microseconds always six digits), so that comparisons hold
    return ("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :n) SELECT i FROM s",
            "strftime('%Y-%m-%d %H:%M:%S', :start_naive, '+' || ((s.i * :span) / :n) || ' seconds') || '.000000'")
