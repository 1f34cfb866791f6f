"""workflows: definitions, versions, runs, step runs, events

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 01:12:25.195550
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import deepspace_lab.db.base

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workflow_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('project_id', sa.String(length=40), nullable=False),
    sa.Column('workflow_id', sa.String(length=40), nullable=True),
    sa.Column('version_id', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('trace_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('api_key_id', sa.String(length=40), nullable=True),
    sa.Column('key_generation', sa.Integer(), nullable=False),
    sa.Column('budget_micros', sa.BigInteger(), nullable=True),
    sa.Column('cost_micros', sa.BigInteger(), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('forked_from', sa.String(length=40), nullable=True),
    sa.Column('started_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('running', 'cancelling', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_workflow_runs_known_state')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_workflow_runs_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_runs'))
    )
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_runs_org_id_created_at', ['org_id', 'created_at'], unique=False)
        batch_op.create_index('ix_workflow_runs_org_id_state', ['org_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_runs_trace_id'), ['trace_id'], unique=False)

    op.create_table('workflows',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('project_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_workflows_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflows')),
    sa.UniqueConstraint('org_id', 'project_id', 'name', name='uq_workflows_project_name')
    )
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflows_org_id'), ['org_id'], unique=False)

    op.create_table('step_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('inputs', sa.JSON(), nullable=True),
    sa.Column('outputs', sa.JSON(), nullable=True),
    sa.Column('artifacts', sa.JSON(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_micros', sa.BigInteger(), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_detail', sa.JSON(), nullable=True),
    sa.Column('reused_from', sa.String(length=40), nullable=True),
    sa.Column('started_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')", name=op.f('ck_step_runs_known_state')),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_step_runs_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_runs')),
    sa.UniqueConstraint('run_id', 'step_id', name='uq_step_runs_run_step')
    )
    op.create_table('workflow_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_workflow_events_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_events'))
    )
    with op.batch_alter_table('workflow_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_events_run_id'), ['run_id'], unique=False)

    op.create_table('workflow_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workflow_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', deepspace_lab.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_workflow_versions_workflow_id_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_versions')),
    sa.UniqueConstraint('workflow_id', 'version', name='uq_workflow_versions_version')
    )
    with op.batch_alter_table('workflow_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_versions_org_id'), ['org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('workflow_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_versions_org_id'))

    op.drop_table('workflow_versions')
    with op.batch_alter_table('workflow_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_events_run_id'))

    op.drop_table('workflow_events')
    op.drop_table('step_runs')
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflows_org_id'))

    op.drop_table('workflows')
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_runs_trace_id'))
        batch_op.drop_index('ix_workflow_runs_org_id_state')
        batch_op.drop_index('ix_workflow_runs_org_id_created_at')

    op.drop_table('workflow_runs')
