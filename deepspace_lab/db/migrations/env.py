"""Alembic environment. Run through :mod:`deepspace_lab.db.migrate`, which passes an open,
locked connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from deepspace_lab.schema import metadata

connection = context.config.attributes["connection"]


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate leaves alone the tables Huey makes for its PostgreSQL queue (huey_*)."""
    return not (type_ == "table" and name is not None and name.startswith("huey_"))


context.configure(
    connection=connection,
    target_metadata=metadata,
    include_name=_ours,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
