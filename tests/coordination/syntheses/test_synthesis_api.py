"""The synthesis text through the real app: versions, concurrency, access, audit, outbox."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.outbox.models import OutboxEvent
from tests.coordination.patients.support import audit_actions, create_patient
from tests.support.service import FakeTokens, add_professional


async def test_write_read_and_history(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="syn", national_id="810000000176")
    patient = await create_patient(client, pro)
    url = f"/api/v1/patients/{patient['id']}/synthesis"

    empty = await client.get(url, headers=pro.headers)
    assert empty.status_code == 200
    assert (empty.json()["text"], empty.json()["version"]) == ("", 0)

    first = await client.put(
        url, json={"text": "Situation stable.\nAidante épuisée.", "version": 0}, headers=pro.headers
    )
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["author_display_name"] == "Jeanne MARTIN"
    second = await client.put(url, json={"text": "Hospitalisée le 12.", "version": 1}, headers=pro.headers)
    assert second.json()["version"] == 2

    current = await client.get(url, headers=pro.headers)
    assert current.json()["text"] == "Hospitalisée le 12."
    history = await client.get(f"{url}/versions?limit=1", headers=pro.headers)
    assert [v["version"] for v in history.json()["items"]] == [2]
    older = await client.get(
        f"{url}/versions?limit=1&cursor={history.json()['next_cursor']}", headers=pro.headers
    )
    assert [v["version"] for v in older.json()["items"]] == [1]
    assert older.json()["next_cursor"] is None

    actions = [a for a, _ in await audit_actions(db, patient["id"])]
    assert actions.count("synthesis.update") == 2
    assert "synthesis.read" in actions and "synthesis.history" in actions
    events = (await db.scalars(select(OutboxEvent).where(OutboxEvent.kind.like("synthesis%")))).all()
    assert len(events) == 2
    assert "Hospitalisée" not in str(events[-1].payload)  # ids only, never the text


async def test_a_stale_version_is_refused_and_loses_nothing(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="syn2", national_id="810000000184")
    patient = await create_patient(client, pro)
    url = f"/api/v1/patients/{patient['id']}/synthesis"
    answers = await asyncio.gather(
        *(client.put(url, json={"text": f"version {i}", "version": 0}, headers=pro.headers) for i in range(6))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409, 409, 409, 409, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["errcode"] == "AZ_STALE_VERSION"
    assert "rechargez" in refused.json()["error"]
    saved = next(r for r in answers if r.status_code == 200).json()["text"]
    assert (await client.get(url, headers=pro.headers)).json()["text"] == saved


async def test_only_authorised_members(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    owner = await add_professional(db, tokens, localpart="syn3", national_id="810000000192")
    outsider = await add_professional(db, tokens, localpart="syn4", national_id="810000000200")
    patient = await create_patient(client, owner)
    url = f"/api/v1/patients/{patient['id']}/synthesis"
    assert (await client.get(url, headers=outsider.headers)).status_code == 403
    put = await client.put(url, json={"text": "x", "version": 0}, headers=outsider.headers)
    assert put.status_code == 403
    nul = await client.put(url, json={"text": "a\u0000b", "version": 0}, headers=owner.headers)
    assert nul.status_code == 422
