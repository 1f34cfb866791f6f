"""billing pipeline

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import deepspace_lab.db.base

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('budgets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('scope_id', sa.String(length=40), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('limit_micros', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('updated_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("period IN ('day', 'month')", name=op.f('ck_budgets_known_period')),
    sa.CheckConstraint("scope IN ('org', 'project', 'key')", name=op.f('ck_budgets_known_scope')),
    sa.CheckConstraint('limit_micros >= 0', name=op.f('ck_budgets_limit_not_negative')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_budgets_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budgets')),
    sa.UniqueConstraint('scope', 'scope_id', 'period', name=op.f('uq_budgets_scope_scope_id_period'))
    )
    with op.batch_alter_table('budgets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_budgets_org_id'), ['org_id'], unique=False)

    op.create_table('budget_counters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('budget_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_start', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reserved_micros', sa.BigInteger(), nullable=False),
    sa.Column('spent_micros', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('reserved_micros >= 0', name=op.f('ck_budget_counters_reserved_not_negative')),
    sa.CheckConstraint('spent_micros >= 0', name=op.f('ck_budget_counters_spent_not_negative')),
    sa.ForeignKeyConstraint(['budget_id'], ['budgets.id'], name=op.f('fk_budget_counters_budget_id_budgets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_counters')),
    sa.UniqueConstraint('budget_id', 'period_start', name=op.f('uq_budget_counters_budget_id_period_start'))
    )
    op.create_table('hold_budget_counters',
    sa.Column('hold_id', sa.String(length=40), nullable=False),
    sa.Column('counter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['counter_id'], ['budget_counters.id'], name=op.f('fk_hold_budget_counters_counter_id_budget_counters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_hold_budget_counters_hold_id_holds')),
    sa.PrimaryKeyConstraint('hold_id', 'counter_id', name=op.f('pk_hold_budget_counters'))
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default=sa.text("'pending'"), nullable=False))
        batch_op.add_column(sa.Column('held_micros', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('stream', sa.Boolean(), server_default=sa.text('(false)'), nullable=False))
        batch_op.add_column(sa.Column('error_code', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('settled_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_usage_records_org_id_id', ['org_id', 'id'], unique=False)
        batch_op.create_index('ix_usage_records_org_id_created_at', ['org_id', 'created_at'], unique=False)
        batch_op.create_check_constraint(
            'known_measured', "measured IN ('pending', 'upstream', 'drained', 'estimated', 'none', 'unknown')")
        batch_op.create_check_constraint('known_status', "status IN ('pending', 'captured', 'released', 'expired')")



def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_constraint('ck_usage_records_known_status', type_='check')
        batch_op.drop_constraint('ck_usage_records_known_measured', type_='check')
        batch_op.drop_index('ix_usage_records_org_id_created_at')
        batch_op.drop_index('ix_usage_records_org_id_id')
        batch_op.drop_column('settled_at')
        batch_op.drop_column('error_code')
        batch_op.drop_column('stream')
        batch_op.drop_column('held_micros')
        batch_op.drop_column('status')

    op.drop_table('hold_budget_counters')
    op.drop_table('budget_counters')
    with op.batch_alter_table('budgets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_budgets_org_id'))

    op.drop_table('budgets')
