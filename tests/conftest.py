"""Shared fixtures: a fresh database per test and the real app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from coordination.app import create_app
from coordination.db import make_engine, make_sessionmaker
from coordination.settings import Settings
from tests.support.service import FakeTokens, create_schema, fresh_database_url, running_app


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url(tmp_path) as url:
        await create_schema(url)
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        synapse_url="http://127.0.0.1:9",  # unused: unit tests verify tokens with FakeTokens
        server_name="azurezo.test",
        internal_api_secret="t" * 48,
        documents_dir=tmp_path / "documents",
        bot_user_id="@azurezo-bot:azurezo.test",
    )


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
async def client(settings: Settings, tokens: FakeTokens) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, token_verifier=tokens)
    async with running_app(app) as c:
        yield c


@pytest.fixture
async def session_maker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the same database as the app, to arrange data directly."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def db(session_maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with session_maker() as session:
        yield session
