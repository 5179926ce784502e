"""Tasks of a thematic room (``theme_id``, coordination_bot/SERVICE_NEEDS.md need 6)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, Pro, add_professional


async def _theme(client: httpx.AsyncClient, who: Pro, name: str, room: str) -> str:
    resp = await client.post("/api/v1/themes", json={"name": name, "room_id": room}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def _create(client: httpx.AsyncClient, who: Pro, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"title": "Commander les vaccins", "type": "autre"} | body
    return await client.post("/api/v1/tasks", json=payload, headers=who.headers)


async def test_theme_tasks_are_listed_by_theme_numbered_per_theme_and_open_to_all(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    carol = await add_professional(db, tokens, localpart="carol", national_id="810000000003")
    flu = await _theme(client, alice, "vaccination grippe", "!flu:azurezo.test")
    covid = await _theme(client, alice, "vaccination covid", "!covid:azurezo.test")

    first = await _create(client, alice, theme_id=flu)
    assert first.status_code == 201, first.text
    assert first.json()["theme_id"] == flu and first.json()["patient_id"] is None
    second = await _create(client, bob, theme_id=flu, title="Afficher les horaires")
    other = await _create(client, alice, theme_id=covid, title="Relancer la pharmacie")
    personal = await _create(client, alice, title="Tâche perso")
    # Numbered per theme: « !fait 2 » in the theme room means the theme's second task.
    assert [first.json()["number"], second.json()["number"], other.json()["number"]] == [1, 2, 1]
    assert personal.json()["theme_id"] is None

    # Carol created and was assigned nothing, yet the theme's tasks are hers to see (the room is open).
    listed = await client.get("/api/v1/tasks", params={"theme_id": flu}, headers=carol.headers)
    assert listed.status_code == 200
    # (both undated: ordered by id, so compared as a set)
    assert {t["title"] for t in listed.json()["items"]} == {"Commander les vaccins", "Afficher les horaires"}
    one = await client.get(f"/api/v1/tasks/{second.json()['id']}", headers=carol.headers)
    assert one.status_code == 200
    # Seeing is not changing: only the author and the assignees close a task.
    closed = await client.patch(
        f"/api/v1/tasks/{second.json()['id']}",
        json={"version": 1, "status": "terminee"},
        headers=carol.headers,
    )
    assert closed.status_code == 403
    # A task with no theme stays private to its author.
    assert (
        await client.get(f"/api/v1/tasks/{personal.json()['id']}", headers=carol.headers)
    ).status_code == 404

    # The theme filter intersects with a scope.
    mine = await client.get("/api/v1/tasks", params={"theme_id": flu, "scope": "mine"}, headers=bob.headers)
    assert [t["title"] for t in mine.json()["items"]] == ["Afficher les horaires"]
    open_only = await client.get(
        "/api/v1/tasks", params={"theme_id": covid, "status": "terminee"}, headers=alice.headers
    )
    assert open_only.json()["items"] == []


async def test_a_task_is_about_a_patient_or_a_theme_and_the_theme_must_exist(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    patient = await add_patient(db)
    await add_member(db, patient, national_id=alice.national_id)
    theme = await _theme(client, alice, "soins non programmés", "!snp:azurezo.test")

    both = await _create(client, alice, theme_id=theme, patient_id=str(patient))
    assert both.status_code == 422
    assert "un patient ou un thème, pas les deux" in both.json()["error"]
    unknown = await _create(client, alice, theme_id=str(uuid.uuid4()))
    assert unknown.status_code == 422 and "Ce thème n'existe pas" in unknown.json()["error"]
    malformed = await client.get("/api/v1/tasks", params={"theme_id": "x"}, headers=alice.headers)
    assert malformed.status_code == 422
