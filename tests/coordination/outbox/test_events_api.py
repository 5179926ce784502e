"""The outbox endpoints: only the bot, calling for itself, reads and acknowledges."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.outbox.events import EVENT_KINDS, EVENT_MODELS
from coordination.outbox.models import OutboxEvent
from coordination.outbox.service import cursor_after
from coordination.pagination import encode_cursor
from tests.coordination.patients.support import add_circle_member, create_patient
from tests.filetyping import samples
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
    events = page.json()["items"]
    assert [e["event"]["kind"] for e in events] == ["circle.member_added", "circle.member_added"]
    assert events[0]["recipients"] == sorted([alice.user_id, bob.user_id])
    relative = events[1]["event"]
    assert relative["member_kind"] == "relative" and relative["national_id"] is None
    assert relative["patient_id"] == pid
    assert page.json()["next_cursor"] is None  # the whole backlog fits in one page

    ack = await client.post("/api/v1/events/ack", json={"up_to": events[0]["id"]}, headers=bot)
    assert ack.status_code == 200 and ack.json() == {"cursor": events[0]["id"]}
    after_ack = await client.get("/api/v1/events", headers=bot)
    assert [e["id"] for e in after_ack.json()["items"]] == [events[1]["id"]]
    # Re-reading page by page from the start is allowed (a consumer that crashed re-reads).
    first = await client.get("/api/v1/events", params={"cursor": cursor_after(0), "limit": 1}, headers=bot)
    assert [e["id"] for e in first.json()["items"]] == [events[0]["id"]]
    assert first.json()["next_cursor"] == cursor_after(events[0]["id"])
    second = await client.get(
        "/api/v1/events", params={"cursor": first.json()["next_cursor"], "limit": 1}, headers=bot
    )
    assert [e["id"] for e in second.json()["items"]] == [events[1]["id"]]
    assert second.json()["next_cursor"] is None

    beyond = await client.post("/api/v1/events/ack", json={"up_to": 10_000}, headers=bot)
    assert beyond.status_code == 422 and beyond.json()["fields"][0]["field"] == "up_to"
    for bad in (encode_cursor({"after": 2**40}), encode_cursor({"after": "x"}), "%%%"):
        refused = await client.get("/api/v1/events", params={"cursor": bad}, headers=bot)
        assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == "cursor"


async def test_every_kind_is_typed_and_carries_no_patient_identity(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    """Tasks, documents and circle changes emit typed events; the identity of the patient (names,
    birth date, INS) appears in none of them, stored or served."""
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    patient = await create_patient(client, alice)
    pid = patient["id"]
    await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="x", habilite=True
    )
    task = await client.post(
        "/api/v1/tasks",
        json={
            "title": "Passage",
            "type": "visite",
            "patient_id": pid,
            "assignee_national_ids": [bob.national_id],
        },
        headers=alice.headers,
    )
    assert task.status_code == 201, task.text
    upload = await client.post(
        f"/api/v1/patients/{pid}/documents",
        data={"title": "Compte rendu", "category": "compte_rendu"},
        files={"file": ("cr.png", samples.png(), "application/octet-stream")},
        headers=alice.headers,
    )
    assert upload.status_code == 201, upload.text
    bot = {"Authorization": f"Bearer {tokens.issue(BOT)}"}
    page = (await client.get("/api/v1/events", headers=bot)).json()
    kinds = [e["event"]["kind"] for e in page["items"]]
    assert kinds == ["circle.member_added", "task.assigned", "document.shared"]
    assert page["items"][1]["event"]["task_id"] == task.json()["id"]
    assert page["items"][2]["event"]["category"] == "compte_rendu"

    stored = [(e.kind, e.payload) for e in (await db.scalars(select(OutboxEvent))).all()]
    identity = ["DUPONT", "MARIE", "LOUISE", "1969-05-12", "12/05/1969"]
    text = json.dumps([page, stored]).upper()
    for trait in identity:
        assert str(trait).upper() not in text, trait


async def test_openapi_lists_every_event_kind(client: httpx.AsyncClient) -> None:
    """The bot's client is generated from the schema: every event kind must be in it, typed."""
    schema = (await client.get("/openapi.json")).json()
    events = schema["components"]["schemas"]["EventOut"]["properties"]["event"]
    mapping = events["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(EVENT_KINDS)
    for ref in mapping.values():
        model = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert "kind" in model["required"] or "kind" in model["properties"]


def test_event_models_hold_identifiers_and_codes_only() -> None:
    """No event model may grow a field that could carry a patient's identity."""
    allowed = {
        "kind",
        "patient_id",
        "member_id",
        "member_kind",
        "national_id",
        "structure_id",
        "role",
        "habilite",
        "added_by",
        "task_id",
        "type",
        "assigned_by",
        "document_id",
        "category",
        "request_id",
        "dac_structure_id",
        "urgency",
        "decision",
        "patient_included",
        "version",
        "updated_by",
        "appointment_id",
        "agenda_id",
        "status",
        "start",
        "booked_by",
        "cancelled_by",
        # issue 9: rooms follow the circle; task done, request taken
        "room_id",
        "linked_by",
        "requested_by",
        "done_by",
        "dac_room_id",  # issue 9: the DAC's own room (a room ID)
    }
    for model in EVENT_MODELS:
        assert set(model.model_fields) <= allowed, (model.__name__, set(model.model_fields) - allowed)


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


async def test_events_stored_before_typing_stay_readable(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    """Unacknowledged rows written by the previous version (member kind under ``kind``, accented
    codes) are served as typed events, not a 500 that would stop the bot."""
    pid = "00000000-0000-4000-8000-000000000001"
    db.add_all(
        [
            OutboxEvent(
                kind="circle.member_added",
                recipients=["@a:azurezo.test"],
                patient_id=uuid.UUID(pid),
                payload={
                    "patient_id": pid,
                    "member_id": "00000000-0000-4000-8000-000000000002",
                    "kind": "professional",
                    "national_id": "810000000001",
                    "structure_id": None,
                    "role": "médecin traitant",
                    "habilite": True,
                    "added_by": "@b:azurezo.test",
                },
            ),
            OutboxEvent(
                kind="request.received",
                recipients=["@a:azurezo.test"],
                payload={
                    "request_id": "00000000-0000-4000-8000-000000000003",
                    "dac_structure_id": "finess:060000001",
                    "urgency": "très_urgente",
                    "patient_id": None,
                },
            ),
        ]
    )
    await db.commit()
    bot = {"Authorization": f"Bearer {tokens.issue(BOT)}"}
    page = await client.get("/api/v1/events", headers=bot)
    assert page.status_code == 200, page.text
    member, request = (e["event"] for e in page.json()["items"])
    assert member["member_kind"] == "professional" and member["kind"] == "circle.member_added"
    assert request["urgency"] == "tres_urgente"
