"""domain: calendar mailboxes, appointment fields and recurrence, immutable archive copies,
overlap rules, replace mode, timesheets, action items

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_OPEN_ITEM = "state = 'open'"


def upgrade() -> None:
    with op.batch_alter_table('calendars', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mailbox', sa.String(length=320), nullable=True))

    with op.batch_alter_table('archive_configurations', schema=None) as batch_op:
        # Configurations made before overlap rules existed archived every overlap: they keep
        # doing so (new ones default to resolving overlaps).
        batch_op.add_column(sa.Column('allow_overlaps', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('mode', sa.String(length=8), nullable=False, server_default='append'))
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), nullable=False, server_default='general'))
        batch_op.add_column(sa.Column('timesheet_categories', sa.JSON(), nullable=False, server_default='[]'))

    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('show_as', sa.String(length=20), nullable=False, server_default='busy'))
        batch_op.add_column(sa.Column('importance', sa.String(length=8), nullable=False, server_default='normal'))
        batch_op.add_column(sa.Column('sensitivity', sa.String(length=16), nullable=False, server_default='normal'))
        batch_op.add_column(sa.Column('is_all_day', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('recurrence', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('series_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('original_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('archive_config_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('archive_event_id', sa.String(length=300), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_appointments_series_id_appointments'), 'appointments', ['series_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_appointments_archive_config_id_archive_configurations'), 'archive_configurations', ['archive_config_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_appointments_archive_config_start', ['archive_config_id', 'start_at'], unique=False)
        batch_op.create_index('ix_appointments_series_id', ['series_id'], unique=False)

    # Private rows were the only sensitivity there was.
    op.execute("UPDATE appointments SET sensitivity = 'private' WHERE is_private")
    # Rows archived before copies were marked: a copy is a row of a configuration's archive
    # calendar that came from a run (archived_from_id) or shares an event id with its source.
    op.execute(
        "UPDATE appointments SET archived_at = created_at, archive_config_id = ("
        " SELECT min(c.id) FROM archive_configurations c"
        " WHERE c.archive_calendar_id = appointments.calendar_id)"
        " WHERE EXISTS (SELECT 1 FROM archive_configurations c"
        " WHERE c.archive_calendar_id = appointments.calendar_id)"
        " AND (archived_from_id IS NOT NULL OR EXISTS (SELECT 1 FROM appointments s"
        " JOIN archive_configurations c ON c.source_calendar_id = s.calendar_id"
        " WHERE c.archive_calendar_id = appointments.calendar_id"
        " AND s.provider_event_id = appointments.provider_event_id))"
    )

    with op.batch_alter_table('action_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=8), nullable=False, server_default='append'))
        batch_op.add_column(sa.Column('added', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('updated', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('removed', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('unchanged', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE action_log SET added = archived, unchanged = duplicate")

    op.create_table('action_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config_id', sa.Integer(), nullable=False),
    sa.Column('action_log_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('conflict_key', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('appointments', sa.JSON(), nullable=False),
    sa.Column('recommendation', sa.JSON(), nullable=False),
    sa.Column('resolution', sa.JSON(), nullable=True),
    sa.Column('resolved_by', sa.String(length=320), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_log_id'], ['action_log.id'], name=op.f('fk_action_items_action_log_id_action_log'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['config_id'], ['archive_configurations.id'], name=op.f('fk_action_items_config_id_archive_configurations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_items'))
    )
    with op.batch_alter_table('action_items', schema=None) as batch_op:
        batch_op.create_index('ix_action_items_config_state', ['config_id', 'state'], unique=False)
        batch_op.create_index('ix_action_items_one_open', ['config_id', 'conflict_key'], unique=True, sqlite_where=sa.text(_OPEN_ITEM), postgresql_where=sa.text(_OPEN_ITEM))

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_actor', ['actor'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_actor')
    with op.batch_alter_table('action_items', schema=None) as batch_op:
        batch_op.drop_index('ix_action_items_one_open', sqlite_where=sa.text(_OPEN_ITEM), postgresql_where=sa.text(_OPEN_ITEM))
        batch_op.drop_index('ix_action_items_config_state')
    op.drop_table('action_items')
    with op.batch_alter_table('action_log', schema=None) as batch_op:
        for column in ('unchanged', 'removed', 'updated', 'added', 'mode'):
            batch_op.drop_column(column)
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_series_id')
        batch_op.drop_index('ix_appointments_archive_config_start')
        batch_op.drop_constraint(batch_op.f('fk_appointments_archive_config_id_archive_configurations'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_appointments_series_id_appointments'), type_='foreignkey')
        for column in ('archive_event_id', 'archive_config_id', 'archived_at', 'original_start', 'series_id', 'recurrence', 'is_all_day', 'sensitivity', 'importance', 'show_as'):
            batch_op.drop_column(column)
    with op.batch_alter_table('archive_configurations', schema=None) as batch_op:
        for column in ('timesheet_categories', 'purpose', 'mode', 'allow_overlaps'):
            batch_op.drop_column(column)
    with op.batch_alter_table('calendars', schema=None) as batch_op:
        batch_op.drop_column('mailbox')
