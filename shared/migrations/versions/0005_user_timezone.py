"""user time zone: the zone the web pages show times in

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        # NULL: show times in the browser's zone (UTC without JavaScript).
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('timezone')
