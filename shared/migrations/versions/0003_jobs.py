"""jobs: scheduled archive runs, their runs, and the live schedulers

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = "0002"
branch_labels = None
depends_on = None

_ACTIVE_RUN = "status IN ('queued', 'running')"


def upgrade() -> None:

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('archive_config_id', sa.Integer(), nullable=False),
    sa.Column('schedule', sa.String(length=100), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('misfire', sa.String(length=16), nullable=False),
    sa.Column('days_back', sa.Integer(), nullable=True),
    sa.Column('days_forward', sa.Integer(), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['archive_config_id'], ['archive_configurations.id'], name=op.f('fk_jobs_archive_config_id_archive_configurations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_jobs_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_archive_config_id'), ['archive_config_id'], unique=False)
        batch_op.create_index('ix_jobs_enabled_next_run_at', ['enabled', 'next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_owner_id'), ['owner_id'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('action_log_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_log_id'], ['action_log.id'], name=op.f('fk_job_runs_action_log_id_action_log'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_runs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    sa.UniqueConstraint('job_id', 'scheduled_for', 'attempt', name=op.f('uq_job_runs_job_id'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_runs_job_id_id', ['job_id', 'id'], unique=False)
        batch_op.create_index('ix_job_runs_one_active', ['job_id'], unique=True, sqlite_where=sa.text(_ACTIVE_RUN), postgresql_where=sa.text(_ACTIVE_RUN))
        batch_op.create_index('ix_job_runs_status_heartbeat_at', ['status', 'heartbeat_at'], unique=False)

    op.create_table('scheduler_instances',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_tick_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lag_s', sa.Float(), nullable=True),
    sa.Column('running', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduler_instances'))
    )


def downgrade() -> None:
    op.drop_table('scheduler_instances')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_runs_status_heartbeat_at')
        batch_op.drop_index('ix_job_runs_one_active', sqlite_where=sa.text(_ACTIVE_RUN), postgresql_where=sa.text(_ACTIVE_RUN))
        batch_op.drop_index('ix_job_runs_job_id_id')

    op.drop_table('job_runs')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_owner_id'))
        batch_op.drop_index('ix_jobs_enabled_next_run_at')
        batch_op.drop_index(batch_op.f('ix_jobs_archive_config_id'))

    op.drop_table('jobs')
