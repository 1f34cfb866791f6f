"""credit codes: batches of redeemable codes (stored as HMACs)

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-26 01:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import deepspace_lab.db.base

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('credit_code_batches',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('amount_micros', sa.BigInteger(), nullable=False),
    sa.Column('code_count', sa.Integer(), nullable=False),
    sa.Column('expires_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('org_id', sa.String(length=40), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('revoked_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_micros > 0', name=op.f('ck_credit_code_batches_amount_positive')),
    sa.CheckConstraint('code_count > 0', name=op.f('ck_credit_code_batches_count_positive')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_credit_code_batches_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_code_batches'))
    )
    op.create_table('credit_codes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('redeemed_org_id', sa.String(length=40), nullable=True),
    sa.Column('redeemed_by', sa.String(length=40), nullable=True),
    sa.Column('redeemed_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('active', 'redeemed', 'revoked')", name=op.f('ck_credit_codes_known_state')),
    sa.ForeignKeyConstraint(['batch_id'], ['credit_code_batches.id'],
                            name=op.f('fk_credit_codes_batch_id_credit_code_batches')),
    sa.ForeignKeyConstraint(['redeemed_org_id'], ['orgs.id'], name=op.f('fk_credit_codes_redeemed_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_credit_codes_code_hash'))
    )
    with op.batch_alter_table('credit_codes', schema=None) as batch_op:
        batch_op.create_index('ix_credit_codes_batch_id_id', ['batch_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('credit_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_codes_batch_id_id')
    op.drop_table('credit_codes')
    op.drop_table('credit_code_batches')
