"""Database errors that reach the logs carry no patient data (bound parameters are hidden)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from coordination.db import make_engine


async def test_database_errors_do_not_echo_bound_parameters(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (name VARCHAR(50) PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), {"n": "DUPONT Marie"})
        with pytest.raises(IntegrityError) as caught:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), {"n": "DUPONT Marie"})
        assert "DUPONT" not in str(caught.value)
    finally:
        await engine.dispose()
