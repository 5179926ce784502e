"""The audit trail cannot be rewritten, even by SQL that bypasses the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from coordination.db import make_engine
from coordination.migrate import upgrade_to_head_async
from tests.support.service import fresh_database_url

INSERT = text(
    "INSERT INTO audit_entries (at, actor_user_id, actor_national_id, via_bot, action, object_type) "
    "VALUES (CURRENT_TIMESTAMP, '@a:b', '810000000001', false, 'patient.read', 'patient')"
)


@pytest.mark.parametrize("statement", ["UPDATE audit_entries SET action = 'x'", "DELETE FROM audit_entries"])
async def test_migrated_trail_refuses_update_and_delete(tmp_path: Path, statement: str) -> None:
    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url)
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(INSERT)
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT action FROM audit_entries"))).scalars().all() == [
                    "patient.read"
                ]
        finally:
            await engine.dispose()


async def test_test_schemas_get_the_same_guard(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(INSERT)
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM audit_entries"))
    finally:
        await engine.dispose()
