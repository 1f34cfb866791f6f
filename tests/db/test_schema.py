"""The schema: migrations reach head on both backends, money is BIGINT, ledger refs unique."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from deepspace_lab.db import make_sync_engine
from deepspace_lab.db.migrate import current_revision, head_revision, upgrade
from deepspace_lab.schema import metadata

SPEC_TABLES = {"users", "orgs", "org_members", "api_keys", "wallets", "transactions", "prices", "usage_records",
               "conversations", "messages", "audit_logs", "projects", "models", "holds"}


def test_upgrade_creates_every_table_and_is_idempotent(fresh_db_url: Any) -> None:
    url = fresh_db_url()
    assert upgrade(url) == (None, head_revision())
    assert upgrade(url) == (head_revision(), head_revision())
    engine = make_sync_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert SPEC_TABLES <= tables
    assert set(metadata.tables) <= tables
    assert current_revision(url) == head_revision()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    """Autogenerate finds nothing to do: the migration and the ORM agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_money_columns_are_bigint_on_postgresql(pg_databases: Any) -> None:
    db_url = pg_databases.create()
    upgrade(db_url)
    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE column_name LIKE '%micros%'")).all()
    finally:
        engine.dispose()
    assert rows and all(r.data_type == "bigint" for r in rows)


def test_a_ledger_entry_is_unique_per_ref_and_type(db_url: str) -> None:
    engine = make_sync_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email, name, status, is_platform_admin, created_at) "
                              "VALUES ('u1', 'a@b.c', '', 'active', false, CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO orgs (id, name, slug, created_at) "
                              "VALUES ('o1', 'o', 'o', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO wallets (id, org_id, balance_micros, frozen_micros, overdraft_limit_micros, "
                              "created_at) VALUES ('w1', 'o1', 0, 0, 0, CURRENT_TIMESTAMP)"))
        insert = text("INSERT INTO transactions (org_id, wallet_id, type, ref, amount_micros, created_at) "
                      "VALUES ('o1', 'w1', :t, 'req_1', 5, CURRENT_TIMESTAMP)")
        with engine.begin() as conn:
            conn.execute(insert, {"t": "hold"})
            conn.execute(insert, {"t": "capture"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"t": "hold"})
    finally:
        engine.dispose()
