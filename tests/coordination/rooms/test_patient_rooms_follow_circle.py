"""Issue 9, service side: asking the bot for a patient room, the events that keep rooms in step with the
circle, and the internal answers the Synapse module and the bot read (who may be in a patient room)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from tests.coordination.patients.support import add_circle_member, create_patient, delist
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

BOT = "@azurezo-bot:azurezo.test"
INTERNAL = {"Authorization": "Bearer " + "t" * 48}
ROOM = "!patientroom:azurezo.test"
DAC = "finess:060000099"


async def _events(client: httpx.AsyncClient, tokens: FakeTokens) -> list[dict[str, Any]]:
    page = await client.get(
        "/api/v1/events", params={"limit": 500}, headers={"Authorization": f"Bearer {tokens.issue(BOT)}"}
    )
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


async def _kinds(client: httpx.AsyncClient, tokens: FakeTokens) -> list[str]:
    return [e["event"]["kind"] for e in await _events(client, tokens)]


async def test_create_asks_the_bot_through_the_outbox(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    outsider = await add_professional(db, tokens, localpart="out", national_id="810000000002")
    pid = (await create_patient(client, alice))["id"]

    refused = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"create": True}, headers=outsider.headers
    )
    assert refused.status_code == 403 and refused.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    assert "room.requested" not in await _kinds(client, tokens)

    asked = await client.post(f"/api/v1/patients/{pid}/rooms", json={"create": True}, headers=alice.headers)
    assert asked.status_code == 202, asked.text
    assert asked.json()["patient_id"] == pid and asked.json()["status"] == "demande"
    [requested] = [e for e in await _events(client, tokens) if e["event"]["kind"] == "room.requested"]
    assert requested["event"]["request_id"] == asked.json()["request_id"]
    assert requested["event"]["requested_by"] == alice.user_id
    audited = (await db.scalars(select(AuditEntry.action).where(AuditEntry.action == "room.requested"))).all()
    assert audited == ["room.requested"]

    for body in ({}, {"create": False}, {"create": True, "room_id": ROOM}):
        bad = await client.post(f"/api/v1/patients/{pid}/rooms", json=body, headers=alice.headers)
        assert bad.status_code == 422, (body, bad.text)
        assert "room_id" in bad.text and "create" in bad.text


async def test_link_and_circle_changes_are_announced(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    pid = (await create_patient(client, alice))["id"]
    linked = await client.post(f"/api/v1/patients/{pid}/rooms", json={"room_id": ROOM}, headers=alice.headers)
    assert linked.status_code == 201
    again = await client.post(f"/api/v1/patients/{pid}/rooms", json={"room_id": ROOM}, headers=alice.headers)
    assert again.status_code == 200
    member = await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="IDE", habilite=True
    )
    changed = await client.patch(
        f"/api/v1/patients/{pid}/circle/{member['id']}", json={"habilite": False}, headers=alice.headers
    )
    assert changed.status_code == 200, changed.text
    same = await client.patch(
        f"/api/v1/patients/{pid}/circle/{member['id']}", json={"role": "infirmier"}, headers=alice.headers
    )
    assert same.status_code == 200
    removed = await client.delete(f"/api/v1/patients/{pid}/circle/{member['id']}", headers=alice.headers)
    assert removed.status_code in (200, 204)

    events = await _events(client, tokens)
    kinds = [e["event"]["kind"] for e in events]
    # One link event (the second link is a no-op); a role change alone announces nothing.
    assert kinds == [
        "room.linked",
        "circle.member_added",
        "circle.member_updated",
        "circle.member_removed",
    ], kinds
    assert events[0]["event"]["room_id"] == ROOM and events[0]["event"]["linked_by"] == alice.user_id
    assert events[2]["event"]["habilite"] is False
    assert events[3]["event"]["member_id"] == member["id"]
    assert events[3]["event"]["national_id"] == bob.national_id


async def test_internal_room_access_and_expected_members(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    await add_structure(db, "finess:060000001", "Cabinet du Port")
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    worker = await add_professional(
        db, tokens, localpart="worker", national_id="810000000003", structure_ids=("finess:060000001",)
    )
    outsider = await add_professional(db, tokens, localpart="out", national_id="810000000004")
    gone = await add_professional(db, tokens, localpart="gone", national_id="810000000005")
    pid = (await create_patient(client, alice))["id"]
    await client.post(f"/api/v1/patients/{pid}/rooms", json={"room_id": ROOM}, headers=alice.headers)
    for pro in (bob, gone):
        await add_circle_member(
            client, alice, pid, kind="professional", national_id=pro.national_id, role="x", habilite=True
        )
    await add_circle_member(
        client, alice, pid, kind="structure", structure_id="finess:060000001", role="cabinet", habilite=True
    )
    await add_circle_member(client, alice, pid, kind="relative", name="Paul", relationship="fils")
    await delist(db, gone.national_id)

    async def access(room: str, who: Pro | str) -> dict[str, Any]:
        user = who if isinstance(who, str) else who.user_id
        resp = await client.get(f"/internal/v1/rooms/{room}/access/{user}", headers=INTERNAL)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    for pro in (alice, bob, worker):
        assert (await access(ROOM, pro))["authorised"] is True, pro.user_id
    for pro in (outsider, gone):
        answer = await access(ROOM, pro)
        assert answer == {"room_id": ROOM, "user_id": pro.user_id, "patient_room": True, "authorised": False}
    theme = await access("!theme:azurezo.test", outsider)
    assert theme["patient_room"] is False and theme["authorised"] is True

    page = await client.get("/internal/v1/patient-rooms", headers=INTERNAL)
    assert page.status_code == 200
    [room] = page.json()["items"]
    # Habilité professionals and the workers of a habilité structure; never a relative, nor the delisted.
    assert room == {
        "room_id": ROOM,
        "patient_id": pid,
        "members": sorted([alice.user_id, bob.user_id, worker.user_id]),
    }
    by_patient = await client.get("/internal/v1/patient-rooms", params={"patient_id": pid}, headers=INTERNAL)
    assert by_patient.json()["items"] == [room]
    by_room = await client.get(
        "/internal/v1/patient-rooms", params={"room_id": "!nope:x.y"}, headers=INTERNAL
    )
    assert by_room.json()["items"] == []

    for headers in ({}, {"Authorization": "Bearer wrong"}, alice.headers):
        assert (await client.get("/internal/v1/patient-rooms", headers=headers)).status_code == 401
        assert (
            await client.get(f"/internal/v1/rooms/{ROOM}/access/{alice.user_id}", headers=headers)
        ).status_code == 401


async def test_task_done_and_request_taken_are_announced(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    coord = await add_professional(
        db, tokens, localpart="coord", national_id="810000000003", structure_ids=(DAC,)
    )
    pid = (await create_patient(client, alice))["id"]
    await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="x", habilite=True
    )
    task = await client.post(
        "/api/v1/tasks",
        json={
            "title": "Passage",
            "type": "autre",
            "patient_id": pid,
            "assignee_national_ids": [bob.national_id],
        },
        headers=alice.headers,
    )
    assert task.status_code == 201, task.text
    done = await client.patch(
        f"/api/v1/tasks/{task.json()['id']}",
        json={"version": task.json()["version"], "status": "terminee"},
        headers=bob.headers,
    )
    assert done.status_code == 200, done.text
    again = await client.patch(
        f"/api/v1/tasks/{task.json()['id']}",
        json={"version": done.json()["version"], "title": "Passage fait"},
        headers=bob.headers,
    )
    assert again.status_code == 200, again.text

    draft = await client.post(
        "/api/v1/requests",
        json={"dac_structure_id": DAC, "reason": "Situation complexe", "patient_id": pid},
        headers=alice.headers,
    )
    sent = await client.post(
        f"/api/v1/requests/{draft.json()['id']}/send",
        json={"version": draft.json()["version"]},
        headers=alice.headers,
    )
    assert sent.status_code == 200, sent.text
    taken = await client.post(
        f"/api/v1/requests/{draft.json()['id']}/take",
        json={"version": sent.json()["version"]},
        headers=coord.headers,
    )
    assert taken.status_code == 200, taken.text

    events = await _events(client, tokens)
    [task_done] = [e for e in events if e["event"]["kind"] == "task.done"]  # once, not on the later edit
    assert task_done["recipients"] == [alice.user_id]
    assert task_done["event"]["task_id"] == task.json()["id"] and task_done["event"]["done_by"] == bob.user_id
    [request_taken] = [e for e in events if e["event"]["kind"] == "request.taken"]
    assert request_taken["recipients"] == [alice.user_id]
    assert request_taken["event"]["request_id"] == draft.json()["id"]
