"""Alembic environment: runs on the connection handed over by ``coordination.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import coordination.all_models  # noqa: F401  (registers every table on Base.metadata)
from coordination.db import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through coordination.migrate (it provides the connection)")
_run(connection)
