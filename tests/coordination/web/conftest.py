"""Fixtures of the dashboard tests: the real app in-process with the fake Synapse sign-in edge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from coordination.app import create_app
from coordination.settings import Settings
from tests.coordination.web.support import FakeMatrixAuth
from tests.support.service import FakeTokens, running_app


@pytest.fixture
def matrix(tokens: FakeTokens) -> FakeMatrixAuth:
    return FakeMatrixAuth(tokens)


@pytest.fixture
async def client(
    settings: Settings, tokens: FakeTokens, matrix: FakeMatrixAuth
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, token_verifier=tokens, matrix_auth=matrix)
    async with running_app(app) as c:
        yield c


@pytest.fixture
async def browser(
    settings: Settings, tokens: FakeTokens, matrix: FakeMatrixAuth
) -> AsyncIterator[httpx.AsyncClient]:
    """A second cookie jar on the same app and database (another professional's browser)."""
    app = create_app(settings, token_verifier=tokens, matrix_auth=matrix)
    async with running_app(app) as c:
        yield c
