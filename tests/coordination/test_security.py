"""Authentication edge: unknown tokens, unbound and delisted professionals, the bot acting for someone."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.service import FakeTokens, add_professional


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
