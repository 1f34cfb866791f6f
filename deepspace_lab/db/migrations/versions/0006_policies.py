"""policies (rate limits, IP rules, model policy) with history, and the policy epoch

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import deepspace_lab.db.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=True),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('scope_id', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=64), server_default='', nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('ended_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('rate_limit', 'ip_rule', 'model_policy')", name=op.f('ck_policies_known_kind')),
    sa.CheckConstraint("scope IN ('global', 'org', 'project', 'key')", name=op.f('ck_policies_known_scope')),
    sa.CheckConstraint("(scope = 'global') = (org_id IS NULL)", name=op.f('ck_policies_global_has_no_org')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_policies_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policies'))
    )
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.create_index('ix_policies_org_id_id', ['org_id', 'id'], unique=False)
        batch_op.create_index('uq_policies_current', ['kind', 'scope', 'scope_id', 'subject'], unique=True,
                              postgresql_where=sa.text('ended_at IS NULL'),
                              sqlite_where=sa.text('ended_at IS NULL'))

    op.create_table('policy_epoch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_policy_epoch_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_epoch'))
    )
    op.execute("INSERT INTO policy_epoch (id, epoch) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table('policy_epoch')
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.drop_index('uq_policies_current', postgresql_where=sa.text('ended_at IS NULL'),
                            sqlite_where=sa.text('ended_at IS NULL'))
        batch_op.drop_index('ix_policies_org_id_id')
    op.drop_table('policies')
