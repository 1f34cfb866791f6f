"""Alembic environment. Run through :mod:`deepspace_lab.db.migrate`, which passes an open,
locked connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from deepspace_lab.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
