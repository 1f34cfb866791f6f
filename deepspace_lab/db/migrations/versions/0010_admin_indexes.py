"""admin indexes: keyset pages of usage records and audit rows by (created_at, id) behind each
common filter, and a partial index of the error rows (the overview's error counts)

Each new index ends in (created_at, id) so that a page at any depth is one index range
(``(created_at, id) < (:t, :id)`` as a row value), chosen by EXPLAIN on PostgreSQL with a
million usage records (bench/admin/README.md). Indexes on (created_at), (org_id, created_at)
and (org_id) alone are dropped: the new ones start with the same columns and serve them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

FILTERS = {
    "usage_records": ("org_id", "project_id", "user_id", "api_key_id", "model"),
    "audit_logs": ("org_id", "user_id", "api_key_id", "model", "client_ip"),
}
ERRORS = "status_code >= 400"


def upgrade() -> None:
    for table, columns in FILTERS.items():
        op.create_index(f"ix_{table}_created_at_id", table, ["created_at", "id"])
        for column in columns:
            op.create_index(f"ix_{table}_{column}_created_at_id", table, [column, "created_at", "id"])
    op.create_index("ix_audit_logs_errors_created_at_id", "audit_logs", ["created_at", "id"],
                    postgresql_where=sa.text(ERRORS), sqlite_where=sa.text(ERRORS))
    op.drop_index("ix_usage_records_created_at", table_name="usage_records")
    op.drop_index("ix_usage_records_org_id_created_at", table_name="usage_records")
    op.drop_index("ix_audit_logs_created_at", table_name="audit_logs")
    op.drop_index("ix_audit_logs_org_id", table_name="audit_logs")


def downgrade() -> None:
    op.create_index("ix_audit_logs_org_id", "audit_logs", ["org_id"])
    op.create_index("ix_audit_logs_created_at", "audit_logs", ["created_at"])
    op.create_index("ix_usage_records_org_id_created_at", "usage_records", ["org_id", "created_at"])
    op.create_index("ix_usage_records_created_at", "usage_records", ["created_at"])
    op.drop_index("ix_audit_logs_errors_created_at_id", table_name="audit_logs")
    for table, columns in FILTERS.items():
        for column in columns:
            op.drop_index(f"ix_{table}_{column}_created_at_id", table_name=table)
        op.drop_index(f"ix_{table}_created_at_id", table_name=table)
