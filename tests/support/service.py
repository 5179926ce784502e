"""Helpers to run the real coordination app in-process against a real, fresh database."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import Base, make_engine
from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.directory.rules import department_from_postal_code
from coordination.ids import UserId

# Set by .ci/run (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432) to run the suite on PostgreSQL.
PG_ENV = "AZUREZO_TEST_POSTGRES_URL"


class FakeTokens:
    """A token verifier we own: maps tokens to Matrix users, like Synapse's whoami would."""

    def __init__(self) -> None:
        self.tokens: dict[str, UserId] = {}

    def issue(self, user_id: str) -> str:
        token = f"tok_{uuid.uuid4().hex}"
        self.tokens[token] = UserId(user_id)
        return token

    async def user_for_token(self, token: str) -> UserId | None:
        return self.tokens.get(token)


@asynccontextmanager
async def fresh_database_url(tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    """A brand-new empty database: a SQLite file, or a new PostgreSQL database when PG_ENV is set."""
    pg = os.environ.get(PG_ENV)
    if not pg:
        yield f"sqlite+aiosqlite:///{tmp_path}/coordination.db"
        return
    import asyncpg  # only needed on the PostgreSQL path

    name = f"azt_{uuid.uuid4().hex[:16]}"
    dsn = pg.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(f"{dsn.rstrip('/')}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{pg.rstrip('/')}/{name}"
    finally:
        conn = await asyncpg.connect(f"{dsn.rstrip('/')}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def create_schema(database_url: str) -> None:
    """Create every table (the test path; production migrates with Alembic)."""
    import coordination.all_models  # noqa: F401  (registers every table)

    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an httpx client that talks to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


@dataclass
class Pro:
    """A directory professional with a bound Matrix account, and the token to call the API as them."""

    user_id: str
    national_id: str
    token: str
    structure_ids: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def add_structure(
    session: AsyncSession,
    structure_id: str,
    name: str,
    *,
    is_dac: bool = False,
    postal_code: str | None = None,
    city: str | None = None,
) -> None:
    """A directory structure; ``postal_code`` and ``city`` as the RPPS writes them (« 06000 », « NICE »)."""
    session.add(
        Structure(
            structure_id=structure_id,
            name=name,
            search_name=name.upper(),
            is_dac=is_dac,
            kind="dac" if is_dac else "site",
            source="rpps",
            postal_code=postal_code,
            city=city,
            department=department_from_postal_code(postal_code) if postal_code else None,
        )
    )
    await session.commit()


async def add_professional(
    session: AsyncSession,
    tokens: FakeTokens,
    *,
    localpart: str,
    national_id: str,
    family_name: str = "MARTIN",
    given_name: str = "Jeanne",
    profession_code: str = "10",
    structure_ids: tuple[str, ...] = (),
    active: bool = True,
    server_name: str = "azurezo.test",
) -> Pro:
    """Insert a directory person, their activities and their account binding; issue a token."""
    user_id = f"@{localpart}:{server_name}"
    session.add(
        Person(
            national_id=national_id,
            id_type="8",
            family_name=family_name,
            given_name=given_name,
            search_name=f"{family_name} {given_name}".upper(),
            profession_code=profession_code,
            profession="Médecin" if profession_code == "10" else None,
            active=active,
            source="rpps",
        )
    )
    await session.flush()
    for sid in structure_ids:
        session.add(Activity(national_id=national_id, structure_id=sid, profession_code=profession_code))
    session.add(AccountBinding(user_id=user_id, national_id=national_id))
    await session.commit()
    return Pro(
        user_id=user_id,
        national_id=national_id,
        token=tokens.issue(user_id),
        structure_ids=list(structure_ids),
    )
