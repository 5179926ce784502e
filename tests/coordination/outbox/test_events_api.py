"""The outbox endpoints: only the bot, calling for itself, reads and acknowledges."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.patients.support import add_circle_member, create_patient
from tests.support.service import FakeTokens, add_professional

BOT = "@azurezo-bot:azurezo.test"


async def test_bot_reads_and_acknowledges(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    pid = (await create_patient(client, alice))["id"]
    await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="x", habilite=True
    )
    await add_circle_member(client, alice, pid, kind="relative", name="Paul", relationship="fils")
    bot = {"Authorization": f"Bearer {tokens.issue(BOT)}"}

    page = await client.get("/api/v1/events", headers=bot)
    assert page.status_code == 200
    events = page.json()["events"]
    assert [e["kind"] for e in events] == ["circle.member_added", "circle.member_added"]
    assert events[0]["recipients"] == sorted([alice.user_id, bob.user_id])
    assert events[1]["payload"]["kind"] == "relative" and events[1]["payload"]["national_id"] is None
    assert page.json()["after"] == 0 and page.json()["last_id"] == events[-1]["id"]

    ack = await client.post("/api/v1/events/ack", json={"up_to": events[0]["id"]}, headers=bot)
    assert ack.status_code == 200 and ack.json() == {"cursor": events[0]["id"]}
    after_ack = await client.get("/api/v1/events", headers=bot)
    assert [e["id"] for e in after_ack.json()["events"]] == [events[1]["id"]]
    # Re-reading from an explicit cursor is allowed (a consumer that crashed re-reads).
    replay = await client.get("/api/v1/events", params={"after": 0, "limit": 1}, headers=bot)
    assert [e["id"] for e in replay.json()["events"]] == [events[0]["id"]]

    beyond = await client.post("/api/v1/events/ack", json={"up_to": 10_000}, headers=bot)
    assert beyond.status_code == 422 and beyond.json()["fields"][0]["field"] == "up_to"
    huge = await client.get("/api/v1/events", params={"after": 2**40}, headers=bot)
    assert huge.status_code == 422


async def test_anyone_else_is_refused(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bot_token = tokens.issue(BOT)
    on_behalf = {"Authorization": f"Bearer {bot_token}", "X-Azurezo-On-Behalf-Of": alice.user_id}
    for headers in (alice.headers, on_behalf):
        for method, url, body in (
            ("GET", "/api/v1/events", None),
            ("POST", "/api/v1/events/ack", {"up_to": 0}),
        ):
            resp = await client.request(method, url, json=body, headers=headers)
            assert resp.status_code == 403, resp.text
            assert resp.json()["errcode"] == "AZ_BOT_ONLY" and "robot" in resp.json()["error"]
    assert (await client.get("/api/v1/events")).status_code == 401
    assert (await client.get("/api/v1/events", headers={"Authorization": "Bearer nope"})).status_code == 401
