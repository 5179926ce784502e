"""Authentication edge: unknown tokens, unbound and delisted professionals, the bot acting for someone."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.service import FakeTokens, add_professional


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200


async def test_missing_and_unknown_tokens_are_401_in_french(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/me")
    assert resp.status_code == 401
    assert "jeton" in resp.json()["error"].lower()
    resp = await client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.json()["errcode"] == "AZ_UNAUTHENTICATED"


async def test_bound_active_professional_is_recognised(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(
        db, tokens, localpart="jmartin", national_id="810000000001", structure_ids=("finess:060000001",)
    )
    resp = await client.get("/api/v1/me", headers=pro.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["national_id"] == "810000000001"
    assert body["structure_ids"] == ["finess:060000001"]
    assert body["via_bot"] is False


async def test_unbound_matrix_user_is_403(client: httpx.AsyncClient, tokens: FakeTokens) -> None:
    token = tokens.issue("@stranger:azurezo.test")
    resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "AZ_NOT_IN_DIRECTORY"
    assert "annuaire" in resp.json()["error"]


async def test_delisted_professional_is_403(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="old", national_id="810000000002", active=False)
    resp = await client.get("/api/v1/me", headers=pro.headers)
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "AZ_INACTIVE"


async def test_only_the_bot_may_act_on_behalf(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000003")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000004")
    bot_token = tokens.issue("@azurezo-bot:azurezo.test")

    # Bob naming Alice is refused: impersonation is the bot's privilege alone.
    resp = await client.get("/api/v1/me", headers={**bob.headers, "X-Azurezo-On-Behalf-Of": alice.user_id})
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "AZ_ON_BEHALF_REFUSED"

    resp = await client.get(
        "/api/v1/me",
        headers={"Authorization": f"Bearer {bot_token}", "X-Azurezo-On-Behalf-Of": alice.user_id},
    )
    assert resp.status_code == 200
    assert resp.json()["user_id"] == alice.user_id
    assert resp.json()["via_bot"] is True

    # The bot acting for someone outside the directory gets the same refusal as that person would.
    resp = await client.get(
        "/api/v1/me",
        headers={"Authorization": f"Bearer {bot_token}", "X-Azurezo-On-Behalf-Of": "@x:azurezo.test"},
    )
    assert resp.status_code == 403
