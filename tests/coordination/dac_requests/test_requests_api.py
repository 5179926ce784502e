"""Requests to a DAC through the real app: lifecycle, coordinators, inclusion, dashboard, refusals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.circle.models import CircleMember
from coordination.dac_requests.models import DacRequest
from coordination.db import utcnow
from coordination.directory.models import Structure
from coordination.outbox.models import OutboxEvent
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

DAC = "finess:060000099"
OTHER_DAC = "finess:060000098"
CABINET = "finess:060000001"


@dataclass
class World:
    requester: Pro  # GP at CABINET, in the patient's circle
    coord: Pro  # coordinator of DAC
    coord2: Pro  # another coordinator of DAC
    other_coord: Pro  # coordinator of OTHER_DAC
    outsider: Pro
    delisted: Pro
    patient: uuid.UUID


@pytest.fixture
async def world(db: AsyncSession, tokens: FakeTokens) -> World:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    await add_structure(db, OTHER_DAC, "DAC Var", is_dac=True)
    await add_structure(db, CABINET, "Cabinet médical du Port")
    requester = await add_professional(
        db, tokens, localpart="gp", national_id="810000000001", structure_ids=(CABINET,)
    )
    coord = await add_professional(
        db, tokens, localpart="coord", national_id="810000000010", structure_ids=(DAC,)
    )
    coord2 = await add_professional(
        db, tokens, localpart="coord2", national_id="810000000011", structure_ids=(DAC,)
    )
    other = await add_professional(
        db, tokens, localpart="var", national_id="810000000012", structure_ids=(OTHER_DAC,)
    )
    outsider = await add_professional(db, tokens, localpart="out", national_id="810000000013")
    delisted = await add_professional(
        db, tokens, localpart="gone", national_id="810000000014", structure_ids=(DAC,), active=False
    )
    patient = await add_patient(db)
    await add_member(db, patient, national_id=requester.national_id)
    return World(requester, coord, coord2, other, outsider, delisted, patient)


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "dac_structure_id": DAC,
        "reason": "Maintien à domicile difficile",
        "description": "Chutes répétées, aidant épuisé.",
        "urgency": "urgente",
        "requester_structure_id": CABINET,
        "contact_phone": "04 93 00 00 00",
        "actions": ["Évaluation à domicile"],
        "alerts": ["Risque de chute"],
    } | extra


async def _events(db: AsyncSession, kind: str) -> list[OutboxEvent]:
    db.expire_all()
    return list((await db.scalars(select(OutboxEvent).where(OutboxEvent.kind == kind))).all())


async def _post(client: httpx.AsyncClient, who: Pro, path: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/requests{path}", json=body, headers=who.headers)


async def test_full_lifecycle_with_inclusion(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    created = await _post(client, world.requester, "", **_body(patient_id=str(world.patient)))
    assert created.status_code == 201, created.text
    req = created.json()
    assert req["status"] == "brouillon" and req["urgency_label"] == "Urgente"
    assert req["dac_name"] == "DAC Alpes-Maritimes"
    rid = req["id"]

    # A draft is still the requester's own: the DAC does not see it yet.
    assert (await client.get(f"/api/v1/requests/{rid}", headers=world.coord.headers)).status_code == 404
    edited = await client.patch(
        f"/api/v1/requests/{rid}",
        json={"version": req["version"], "alerts": ["Risque de chute", "Isolement"]},
        headers=world.requester.headers,
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["alerts"] == ["Risque de chute", "Isolement"]

    sent = await _post(client, world.requester, f"/{rid}/send", version=edited.json()["version"])
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "envoyee" and sent.json()["sent_at"]
    (received,) = await _events(db, "request.received")
    assert received.recipients == sorted([world.coord.user_id, world.coord2.user_id])
    assert received.payload["request_id"] == rid

    # After sending, steps 1-2 are frozen.
    frozen = await client.patch(
        f"/api/v1/requests/{rid}",
        json={"version": sent.json()["version"], "reason": "x"},
        headers=world.requester.headers,
    )
    assert frozen.status_code == 409

    # Answering before taking is a forbidden transition.
    early = await _post(
        client, world.coord, f"/{rid}/answer", version=sent.json()["version"], decision="acceptée"
    )
    assert early.status_code == 409
    assert "Envoyée" in early.json()["error"]
    # The requester may not take it; another DAC does not even see it.
    assert (
        await _post(client, world.requester, f"/{rid}/take", version=sent.json()["version"])
    ).status_code == 403
    assert (
        await _post(client, world.other_coord, f"/{rid}/take", version=sent.json()["version"])
    ).status_code == 404

    taken = await _post(client, world.coord, f"/{rid}/take", version=sent.json()["version"])
    assert taken.status_code == 200, taken.text
    assert (
        taken.json()["status"] == "en_cours"
        and taken.json()["taken_by_national_id"] == world.coord.national_id
    )
    # Cancelling once the DAC took it is not allowed.
    late_cancel = await _post(client, world.requester, f"/{rid}/cancel", version=taken.json()["version"])
    assert late_cancel.status_code == 409

    # Before inclusion the coordinators cannot reach the dossier's circle.
    assert not (await db.scalars(select(CircleMember).where(CircleMember.structure_id == DAC))).all()
    answered = await _post(
        client,
        world.coord2,
        f"/{rid}/answer",
        version=taken.json()["version"],
        decision="acceptee",
        comment="Évaluation prévue sous 48 h.",
        include_patient=True,
    )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["status"] == "cloturee" and body["decision"] == "acceptee"
    assert body["patient_included"] is True and body["answered_at"]
    assert body["version"] == taken.json()["version"] + 1

    db.expire_all()
    (member,) = (
        await db.scalars(
            select(CircleMember).where(
                CircleMember.patient_id == world.patient, CircleMember.structure_id == DAC
            )
        )
    ).all()
    assert member.habilite and member.role == "coordinateur DAC" and member.added_by == "system"
    (answered_event,) = await _events(db, "request.answered")
    assert answered_event.recipients == [world.requester.user_id]
    actions = (
        await db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == world.patient))
    ).all()
    assert {
        "request.created",
        "request.sent",
        "request.taken",
        "request.answered",
        "request.patient_included",
    } <= set(actions)

    # Closed: nothing more.
    again = await _post(client, world.coord, f"/{rid}/answer", version=body["version"], decision="refusée")
    assert again.status_code == 409


async def test_refusal_and_cancel(client: httpx.AsyncClient, world: World) -> None:
    rid = (await _post(client, world.requester, "", **_body())).json()["id"]
    sent = (await _post(client, world.requester, f"/{rid}/send", version=1)).json()
    taken = (await _post(client, world.coord, f"/{rid}/take", version=sent["version"])).json()
    # Inclusion without a patient is refused, and so is inclusion with a refusal.
    no_patient = await _post(
        client,
        world.coord,
        f"/{rid}/answer",
        version=taken["version"],
        decision="acceptée",
        include_patient=True,
    )
    assert no_patient.status_code == 422
    refused = await _post(
        client,
        world.coord,
        f"/{rid}/answer",
        version=taken["version"],
        decision="refusée",
        comment="Hors territoire : contactez le DAC du Var.",
    )
    assert refused.status_code == 200
    assert refused.json()["status"] == "refusee"

    draft = (await _post(client, world.requester, "", **_body())).json()
    cancelled = await _post(client, world.requester, f"/{draft['id']}/cancel", version=1)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "annulee"
    resend = await _post(client, world.requester, f"/{draft['id']}/send", version=cancelled.json()["version"])
    assert resend.status_code == 409


async def test_stale_version_is_409_and_emits_nothing(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    req = (await _post(client, world.requester, "", **_body())).json()
    edit = await client.patch(
        f"/api/v1/requests/{req['id']}",
        json={"version": 1, "reason": "Nouveau motif"},
        headers=world.requester.headers,
    )
    assert edit.json()["version"] == 2
    stale = await _post(client, world.requester, f"/{req['id']}/send", version=1)
    assert stale.status_code == 409
    assert "rechargez" in stale.json()["error"]
    assert await _events(db, "request.received") == []
    db.expire_all()
    assert (await db.get(DacRequest, uuid.UUID(req["id"]))).status == "brouillon"  # type: ignore[union-attr]


async def test_addressee_must_be_a_dac_and_patient_needs_membership(
    client: httpx.AsyncClient, world: World
) -> None:
    not_dac = await _post(client, world.requester, "", **_body(dac_structure_id=CABINET))
    assert not_dac.status_code == 422
    assert "DAC" in not_dac.json()["error"]
    unknown = await _post(client, world.requester, "", **_body(dac_structure_id="finess:999"))
    assert unknown.status_code == 422
    not_mine = await _post(client, world.requester, "", **_body(requester_structure_id=DAC))
    assert not_mine.status_code == 422
    outsider = await _post(
        client, world.outsider, "", **_body(patient_id=str(world.patient), requester_structure_id=None)
    )
    assert outsider.status_code == 403
    bad_urgency = await _post(client, world.requester, "", **_body(urgency="pressée"))
    assert bad_urgency.status_code == 422
    very = await _post(client, world.requester, "", **_body(urgency="très urgente"))
    assert very.status_code == 201 and very.json()["urgency"] == "tres_urgente"


async def test_dashboard_filters(client: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    ids: dict[str, str] = {}

    async def make(name: str, send: bool, **extra: Any) -> None:
        req = (await _post(client, world.requester, "", **_body(**extra))).json()
        if send:
            await _post(client, world.requester, f"/{req['id']}/send", version=1)
        ids[req["id"]] = name

    await make("old", True, urgency="normale")
    await make("urgent", True, urgency="très_urgente", patient_id=str(world.patient))
    await make("draft", False)
    await make("var", True, dac_structure_id=OTHER_DAC)
    # "old" was received ten days ago.
    old_id = next(k for k, v in ids.items() if v == "old")
    await db.execute(
        update(DacRequest)
        .where(DacRequest.id == uuid.UUID(old_id))
        .values(received_at=utcnow() - timedelta(days=10))
    )
    await db.commit()

    async def names(who: Pro, **params: Any) -> list[str]:
        resp = await client.get("/api/v1/requests", params=params, headers=who.headers)
        assert resp.status_code == 200, resp.text
        return [ids[r["id"]] for r in resp.json()["items"]]

    assert await names(world.coord) == ["urgent", "old"]  # no draft, not the Var's
    assert await names(world.other_coord) == ["var"]
    assert await names(world.outsider) == []
    assert await names(world.requester, mine=True) == ["var", "draft", "urgent", "old"]
    assert await names(world.coord, urgency="très urgente") == ["urgent"]
    assert await names(world.coord, min_age_days=7) == ["old"]
    assert await names(world.coord, max_age_days=7) == ["urgent"]
    assert await names(world.coord, patient_id=str(world.patient)) == ["urgent"]
    assert await names(world.requester, dac=OTHER_DAC) == ["var"]
    assert await names(world.requester, status=["brouillon"]) == ["draft"]
    page = await client.get(
        "/api/v1/requests", params={"mine": True, "limit": 3}, headers=world.requester.headers
    )
    assert [ids[r["id"]] for r in page.json()["items"]] == ["var", "draft", "urgent"]
    cursor = page.json()["next_cursor"]
    assert cursor
    rest = await client.get(
        "/api/v1/requests",
        params={"mine": True, "limit": 3, "cursor": cursor},
        headers=world.requester.headers,
    )
    assert [ids[r["id"]] for r in rest.json()["items"]] == ["old"] and rest.json()["next_cursor"] is None
    foreign = await client.get(
        "/api/v1/requests", params={"cursor": "pas-un-curseur"}, headers=world.requester.headers
    )
    assert foreign.status_code == 422
    old = await client.get(f"/api/v1/requests/{old_id}", headers=world.coord.headers)
    assert old.json()["age_days"] == 10


@pytest.mark.parametrize("who", ["outsider", "delisted"])
async def test_dashboard_of_outsiders_and_delisted(client: httpx.AsyncClient, world: World, who: str) -> None:
    """Each request route is in tests/coordination/test_access_matrix.py; here, the dashboard."""
    rid = (await _post(client, world.requester, "", **_body(patient_id=str(world.patient)))).json()["id"]
    await _post(client, world.requester, f"/{rid}/send", version=1)
    pro: Pro = getattr(world, who)
    listed = await client.get("/api/v1/requests", headers=pro.headers)
    if who == "delisted":
        # Even though they still have an activity at the DAC in the directory.
        assert listed.status_code == 403 and listed.json()["errcode"] == "AZ_INACTIVE"
    else:
        assert listed.status_code == 200 and listed.json()["items"] == []


async def test_failed_inclusion_rolls_back_answer_and_event(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """The answer, its audit entry and "request.answered" commit together or not at all."""
    rid = (await _post(client, world.requester, "", **_body(patient_id=str(world.patient)))).json()["id"]
    sent = (await _post(client, world.requester, f"/{rid}/send", version=1)).json()
    assert sent["version"] == 2, sent
    taken = (await _post(client, world.coord, f"/{rid}/take", version=sent["version"])).json()
    # The DAC closes in the directory between taking the request and answering it.
    await db.execute(update(Structure).where(Structure.structure_id == DAC).values(active=False))
    await db.commit()
    resp = await _post(
        client,
        world.coord,
        f"/{rid}/answer",
        version=taken["version"],
        decision="acceptée",
        include_patient=True,
    )
    assert resp.status_code == 422, resp.text
    assert await _events(db, "request.answered") == []
    db.expire_all()
    req = await db.get(DacRequest, uuid.UUID(rid))
    assert req is not None and req.status == "en_cours" and req.decision is None
    assert not (await db.scalars(select(CircleMember).where(CircleMember.structure_id == DAC))).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("reason", "Chutes\x00"), ("description", "Aidant\x00épuisé"), ("reason", "deux\nlignes")],
)
async def test_control_characters_are_refused_in_french(
    client: httpx.AsyncClient, world: World, field: str, value: str
) -> None:
    """Issue 6 item 5: NUL was stored on SQLite and a 500 on PostgreSQL; now a 422 on both."""
    resp = await _post(client, world.requester, "", **_body(**{field: value}))
    assert resp.status_code == 422, resp.text
    assert resp.json()["fields"][0]["field"] == field
    assert "caractère de contrôle" in resp.json()["fields"][0]["error"]


async def test_contact_phone_and_email_are_checked(client: httpx.AsyncClient, world: World) -> None:
    ok = await _post(client, world.requester, "", **_body(contact_email="Equipe@Cabinet-Port.FR"))
    assert ok.status_code == 201, ok.text
    assert ok.json()["contact_phone"] == "+33493000000"  # French by default, stored in E.164
    assert ok.json()["contact_email"] == "Equipe@cabinet-port.fr"
    bad = await _post(client, world.requester, "", **_body(contact_phone="12", contact_email="x@y"))
    assert bad.status_code == 422
    errors = {f["field"]: f["error"] for f in bad.json()["fields"]}
    assert "numéro de téléphone invalide" in errors["contact_phone"]
    assert "adresse e-mail invalide" in errors["contact_email"]


async def test_the_dac_room_is_set_by_its_coordinators_and_carried_by_request_received(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """``PUT /api/v1/dacs/{id}/room``: a coordinator of the DAC chooses its own room; new requests'
    "request.received" then names it (the bot posts there instead of a DM each)."""
    room = "!salondac:azurezo.test"
    path = f"/api/v1/dacs/{DAC}/room"
    empty = await client.get(path, headers=world.coord.headers)
    assert empty.status_code == 200, empty.text
    assert empty.json()["room_id"] is None and empty.json()["dac_name"] == "DAC Alpes-Maritimes"

    # Only its coordinators: not the requester, not another DAC's, not a delisted one.
    for who in (world.requester, world.other_coord, world.outsider):
        refused = await client.put(path, json={"room_id": room}, headers=who.headers)
        assert refused.status_code == 403, who.user_id
        assert "coordinateurs de ce DAC" in refused.json()["error"]
    delisted = await client.put(path, json={"room_id": room}, headers=world.delisted.headers)
    assert delisted.status_code == 403
    bad = await client.put(path, json={"room_id": "salon"}, headers=world.coord.headers)
    assert bad.status_code == 422

    put = await client.put(path, json={"room_id": room}, headers=world.coord.headers)
    assert put.status_code == 200, put.text
    assert put.json()["room_id"] == room and put.json()["set_by_national_id"] == world.coord.national_id
    assert (await client.get(path, headers=world.coord2.headers)).json()["room_id"] == room

    # One room serves one DAC, and is neither a patient's nor a theme's.
    other = await client.put(
        f"/api/v1/dacs/{OTHER_DAC}/room", json={"room_id": room}, headers=world.other_coord.headers
    )
    assert other.status_code == 409 and "autre DAC" in other.json()["error"]
    linked = await client.post(
        f"/api/v1/patients/{world.patient}/rooms", json={"room_id": room}, headers=world.requester.headers
    )
    assert linked.status_code == 409 and "DAC" in linked.json()["error"]
    patient_room = "!patientroom:azurezo.test"
    assert (
        await client.post(
            f"/api/v1/patients/{world.patient}/rooms",
            json={"room_id": patient_room},
            headers=world.requester.headers,
        )
    ).status_code == 201
    taken = await client.put(
        f"/api/v1/dacs/{OTHER_DAC}/room", json={"room_id": patient_room}, headers=world.other_coord.headers
    )
    assert taken.status_code == 409 and "dossier patient" in taken.json()["error"]

    created = await _post(client, world.requester, "", **_body(patient_id=str(world.patient)))
    sent = await _post(
        client, world.requester, f"/{created.json()['id']}/send", version=created.json()["version"]
    )
    assert sent.status_code == 200, sent.text
    (received,) = await _events(db, "request.received")
    assert received.payload["dac_room_id"] == room
    assert received.recipients == sorted([world.coord.user_id, world.coord2.user_id])

    cleared = await client.delete(path, headers=world.coord2.headers)
    assert cleared.status_code == 200 and cleared.json()["room_id"] is None
    again = await _post(client, world.requester, "", **_body(patient_id=str(world.patient)))
    await _post(client, world.requester, f"/{again.json()['id']}/send", version=again.json()["version"])
    later = [
        e for e in await _events(db, "request.received") if e.payload["request_id"] == again.json()["id"]
    ]
    assert later[0].payload.get("dac_room_id") is None
