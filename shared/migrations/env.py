"""Alembic environment: migrations run on a connection handed over by shared.migrate."""

from __future__ import annotations

from alembic import context

from shared.models import Base

config = context.config
target_metadata = Base.metadata
connection = config.attributes.get("connection")

if connection is None:
    # The async engine needs a running loop; the project runs migrations through
    # `admin-assistant db upgrade` (shared.migrate), which lends its connection here.
    raise RuntimeError(
        "run migrations with 'admin-assistant db upgrade' (the alembic command line has no "
        "async connection to use)"
    )

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
