"""default archive configuration: at most one per user, the oldest of each user's to start

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_DEFAULT_CONFIG = "is_default"


def upgrade() -> None:
    with op.batch_alter_table('archive_configurations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_default', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_archive_configurations_one_default', ['owner_id'], unique=True, sqlite_where=sa.text(_DEFAULT_CONFIG), postgresql_where=sa.text(_DEFAULT_CONFIG))

    # The rule for new configurations (a user's first becomes the default) applied to the
    # configurations made before defaults existed: each user's oldest.
    configs = sa.table('archive_configurations', sa.column('id', sa.Integer()), sa.column('owner_id', sa.Integer()), sa.column('is_default', sa.Boolean()))
    oldest = sa.select(sa.func.min(configs.c.id)).group_by(configs.c.owner_id)
    op.execute(configs.update().where(configs.c.id.in_(oldest)).values(is_default=True))


def downgrade() -> None:
    with op.batch_alter_table('archive_configurations', schema=None) as batch_op:
        batch_op.drop_index('ix_archive_configurations_one_default', sqlite_where=sa.text(_DEFAULT_CONFIG), postgresql_where=sa.text(_DEFAULT_CONFIG))
        batch_op.drop_column('is_default')
