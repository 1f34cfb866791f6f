"""webhooks: subscriptions of an org (or global) with their sealed signing secret

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 01:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import deepspace_lab.db.base

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('secret_rotated_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_webhooks_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks'))
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_org_id_created_at', ['org_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_index('ix_webhooks_org_id_created_at')
    op.drop_table('webhooks')
