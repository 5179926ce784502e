"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import coordination.all_models  # noqa: F401  (registers every table)
from coordination.db import Base, make_engine
from coordination.migrate import upgrade_to_head_async
from tests.support.service import fresh_database_url


async def test_migrations_match_models(tmp_path: Path) -> None:
    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url)
        await upgrade_to_head_async(url)  # a second run (every `azurezo up`) is a no-op

        def diff(conn: Connection) -> list[object]:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))

        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                changes = await conn.run_sync(diff)
        finally:
            await engine.dispose()
        assert changes == [], f"models changed without a migration: {changes}"
