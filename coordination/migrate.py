"""Schema migrations (Alembic), run by ``azurezo up`` on every start and by the tests.

Usage for developers: ``python -m coordination.migrate revision "message" DATABASE_URL`` autogenerates a
revision against a database migrated to head; ``python -m coordination.migrate upgrade DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from coordination.db import make_engine

_MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade_to_head_async(database_url: str, *, revision: str = "head") -> None:
    """Bring the database to the newest schema (or to ``revision``); a no-op when it is already there."""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), revision))
    finally:
        await engine.dispose()


def upgrade_to_head(database_url: str) -> None:
    """Synchronous wrapper for CLIs (must not be called from a running event loop)."""
    asyncio.run(upgrade_to_head_async(database_url))


async def _revision(database_url: str, message: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))
            await conn.run_sync(lambda c: command.revision(_config(c), message=message, autogenerate=True))
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "upgrade":
        upgrade_to_head(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "revision":
        asyncio.run(_revision(argv[2], argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
