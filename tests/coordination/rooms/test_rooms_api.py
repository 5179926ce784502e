"""Room links: one patient (or theme) per room, what a room is about, only for the authorised."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.patients.support import audit_actions, create_patient
from tests.support.service import FakeTokens, add_professional


async def test_link_list_and_describe(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    pid = (await create_patient(client, alice))["id"]
    other = (await create_patient(client, bob, birth_name="MARTIN"))["id"]

    linked = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": "!abc:azurezo.test"}, headers=alice.headers
    )
    assert linked.status_code == 201
    assert linked.json()["linked_by"] == alice.national_id
    again = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": "!abc:azurezo.test"}, headers=alice.headers
    )
    assert again.status_code == 200  # idempotent
    stolen = await client.post(
        f"/api/v1/patients/{other}/rooms", json={"room_id": "!abc:azurezo.test"}, headers=bob.headers
    )
    assert stolen.status_code == 409 and stolen.json()["errcode"] == "AZ_ROOM_TAKEN"

    rooms = await client.get(f"/api/v1/patients/{pid}/rooms", headers=alice.headers)
    assert [r["room_id"] for r in rooms.json()["items"]] == ["!abc:azurezo.test"]
    assert rooms.json()["next_cursor"] is None
    about = await client.get("/api/v1/rooms/!abc:azurezo.test", headers=alice.headers)
    assert about.json() == {
        "room_id": "!abc:azurezo.test",
        "kind": "patient",
        "patient_id": pid,
        "theme": None,
    }
    assert (await client.get("/api/v1/rooms/!abc:azurezo.test", headers=bob.headers)).status_code == 403
    unknown = await client.get("/api/v1/rooms/!nothing:azurezo.test", headers=alice.headers)
    assert unknown.status_code == 404
    actions = [a for a, _ in await audit_actions(db, pid)]
    assert "room.linked" in actions and "room.read" in actions


async def test_themes(client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    pid = (await create_patient(client, alice))["id"]
    await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": "!p:azurezo.test"}, headers=alice.headers
    )

    theme = await client.post(
        "/api/v1/themes",
        json={"name": "vaccination covid", "room_id": "!covid:azurezo.test"},
        headers=bob.headers,
    )
    assert theme.status_code == 201
    about = await client.get("/api/v1/rooms/!covid:azurezo.test", headers=alice.headers)
    assert about.json()["kind"] == "theme" and about.json()["theme"]["name"] == "vaccination covid"
    assert [
        t["name"] for t in (await client.get("/api/v1/themes", headers=alice.headers)).json()["items"]
    ] == ["vaccination covid"]

    for room_id in ("!covid:azurezo.test", "!p:azurezo.test"):
        taken = await client.post(
            "/api/v1/themes", json={"name": "soins non programmés", "room_id": room_id}, headers=bob.headers
        )
        assert taken.status_code == 409
    to_patient = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": "!covid:azurezo.test"}, headers=alice.headers
    )
    assert to_patient.status_code == 409


@pytest.mark.parametrize(
    "room_id",
    [
        "abc:azurezo.test",
        "!abc",
        "!" + "A" * 42,  # one short of a room version 12 reference hash
        "!" + "A" * 43 + "=",  # padded base64 is not the room ID form
        "!abc:",
        "!abc:x:",
        "!é:server",
        "!a b:server",
        "!abc:serv/er",
        "!" + "a" * 300 + ":x",
        "!\u0000:x",
        "#alias:server",
    ],
)
async def test_room_ids_are_validated(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, room_id: str
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    pid = (await create_patient(client, alice))["id"]
    resp = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": room_id}, headers=alice.headers
    )
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "room_id"
    theme = await client.post(
        "/api/v1/themes", json={"name": "x" * 2, "room_id": room_id}, headers=alice.headers
    )
    assert theme.status_code == 422


@pytest.mark.parametrize(
    "room_id",
    [
        "!O7zNoEyNkUhVqbGMPd6Z1bqBQbHGkVG8iCo7AVnH8Ik",  # room version 12: no server part
        "!Ab_-cdEfGhIjKlMnOpQrStUvWxYz0123456789abcde",
        "!abc:matrix.example.org:8448",
        "!abc:[2001:db8::1]:8448",
        "!abc:192.0.2.1",
    ],
)
async def test_every_valid_room_id_form_is_accepted(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, room_id: str
) -> None:
    """Issue 6 item 6: this Synapse creates room version 12 rooms, whose IDs have no ":server"."""
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    pid = (await create_patient(client, alice))["id"]
    linked = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": room_id}, headers=alice.headers
    )
    assert linked.status_code == 201, linked.text
    about = await client.get(f"/api/v1/rooms/{room_id}", headers=alice.headers)
    assert about.status_code == 200, about.text
    assert about.json()["patient_id"] == pid
