"""The audit trail endpoint: authorised members read who did what, newest first, page by page."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.patients.support import create_patient
from tests.support.service import FakeTokens, add_professional

BOT = "@azurezo-bot:azurezo.test"


async def test_trail_is_newest_first_paginated_and_complete(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    pid = (await create_patient(client, alice))["id"]
    await client.get(f"/api/v1/patients/{pid}", headers=alice.headers)
    bot_token = tokens.issue(BOT)
    via_bot = await client.get(
        f"/api/v1/patients/{pid}",
        headers={"Authorization": f"Bearer {bot_token}", "X-Azurezo-On-Behalf-Of": alice.user_id},
    )
    assert via_bot.status_code == 200
    await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 1, "phone": "0600000000"}, headers=alice.headers
    )

    first = await client.get(f"/api/v1/patients/{pid}/audit", params={"limit": 2}, headers=alice.headers)
    assert first.status_code == 200
    page = first.json()
    assert [e["action"] for e in page["items"]] == ["patient.updated", "patient.read"]
    newest = page["items"][0]
    assert newest["actor_user_id"] == alice.user_id and newest["actor_national_id"] == alice.national_id
    assert newest["object_type"] == "patient" and newest["object_id"] == pid
    assert page["items"][1]["via_bot"] is True

    rest = await client.get(
        f"/api/v1/patients/{pid}/audit",
        params={"limit": 50, "cursor": page["next_cursor"]},
        headers=alice.headers,
    )
    older = [e["action"] for e in rest.json()["items"]]
    assert older == ["patient.read", "patient.created"]
    assert rest.json()["next_cursor"] is None
    ids = [e["id"] for e in page["items"] + rest.json()["items"]]
    assert ids == sorted(ids, reverse=True)

    # Reading the trail is itself traced.
    again = await client.get(f"/api/v1/patients/{pid}/audit", params={"limit": 1}, headers=alice.headers)
    assert again.json()["items"][0]["action"] == "audit.read"


async def test_bad_paging_is_422(client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    pid = (await create_patient(client, alice))["id"]
    for params in (
        {"limit": 0},
        {"limit": 10_000},
        {"cursor": "eyJiIjotMX0"},
        {"cursor": "x"},
        {"cursor": "!"},
    ):
        resp = await client.get(f"/api/v1/patients/{pid}/audit", params=params, headers=alice.headers)
        assert resp.status_code == 422, params
