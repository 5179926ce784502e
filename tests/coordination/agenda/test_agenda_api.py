"""The agenda through the real app: availability, free slots, booking, access rules, patients, events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.outbox.models import OutboxEvent
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

CABINET = "finess:060000001"
HOPITAL = "finess:060000002"


@dataclass
class World:
    alice: Pro  # GP at CABINET, owns the agenda
    bob: Pro  # nurse elsewhere, in the patient's circle
    carol: Pro  # works at CABINET too
    dave: Pro  # outsider
    eve: Pro  # delisted
    patient: uuid.UUID


@pytest.fixture
async def world(db: AsyncSession, tokens: FakeTokens) -> World:
    await add_structure(db, CABINET, "Cabinet médical du Port")
    await add_structure(db, HOPITAL, "Hôpital de Nice")
    alice = await add_professional(
        db, tokens, localpart="alice", national_id="810000000001", structure_ids=(CABINET,)
    )
    bob = await add_professional(
        db, tokens, localpart="bob", national_id="810000000002", structure_ids=(HOPITAL,), given_name="Bob"
    )
    carol = await add_professional(
        db, tokens, localpart="carol", national_id="810000000003", structure_ids=(CABINET,)
    )
    dave = await add_professional(db, tokens, localpart="dave", national_id="810000000004")
    eve = await add_professional(db, tokens, localpart="eve", national_id="810000000005", active=False)
    patient = await add_patient(db)
    await add_member(db, patient, national_id=bob.national_id)
    return World(alice, bob, carol, dave, eve, patient)


@dataclass
class Sent:
    recipients: list[str]
    payload: dict[str, Any]
    patient_id: uuid.UUID | None


async def _events(db: AsyncSession, kind: str) -> list[Sent]:
    db.expire_all()
    rows = [
        Sent(list(e.recipients), dict(e.payload), e.patient_id)
        for e in (
            await db.scalars(select(OutboxEvent).where(OutboxEvent.kind == kind).order_by(OutboxEvent.id))
        )
    ]
    await db.rollback()
    return rows


async def test_free_slots_come_from_the_rrule_minus_exceptions_and_appointments(
    client: httpx.AsyncClient, world: World
) -> None:
    setup = await make_agenda(client, world.alice, structure_id=CABINET)
    monday = setup.monday
    # Cancel Tuesday morning (EXDATE) and close Wednesday 10:00-11:00 (unavailability).
    avs = (await client.get(f"/api/v1/agendas/{setup.id}/availabilities", headers=world.alice.headers)).json()
    av_id = avs["items"][0]["id"]
    tuesday = monday + timedelta(days=1)
    wednesday = monday + timedelta(days=2)
    exc = await client.post(
        f"/api/v1/agendas/{setup.id}/availabilities/{av_id}/exceptions",
        json={"exdates": [f"{tuesday.isoformat()}T09:00"]},
        headers=world.alice.headers,
    )
    assert exc.status_code == 200, exc.text
    closed = await client.post(
        f"/api/v1/agendas/{setup.id}/unavailabilities",
        json={
            "start": local(wednesday, "10:00").isoformat(),
            "end": local(wednesday, "11:00").isoformat(),
            "reason": "Formation",
        },
        headers=world.alice.headers,
    )
    assert closed.status_code == 201, closed.text
    booked = await book(client, world.bob, setup, local(monday, "09:30"))
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "reserve" and booked.json()["start_local"].startswith(f"{monday}T09:30")

    resp = await client.get(
        f"/api/v1/agendas/{setup.id}/slots",
        params={
            "event_type_id": setup.consultation,
            "from": local(monday, "00:00").isoformat(),
            "to": local(monday + timedelta(days=3), "00:00").isoformat(),
        },
        headers=world.dave.headers,
    )
    assert resp.status_code == 200, resp.text
    starts = [s["start_local"][:16] for s in resp.json()["items"]]
    mon = [f"{monday}T{h}" for h in ("09:00", "10:00", "10:30", "11:00", "11:30")]
    wed = [f"{wednesday}T{h}" for h in ("09:00", "09:30", "11:00", "11:30")]
    assert starts == mon + wed


async def test_fifty_parallel_bookings_of_one_slot_make_one_appointment(
    client: httpx.AsyncClient, db: AsyncSession, world: World, tokens: FakeTokens
) -> None:
    import asyncio

    setup = await make_agenda(client, world.alice)
    bookers = [
        await add_professional(db, tokens, localpart=f"p{i}", national_id=f"8200000000{i:02d}")
        for i in range(50)
    ]
    start = local(setup.monday, "10:00")
    answers = await asyncio.gather(*(book(client, p, setup, start) for p in bookers))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * 49, codes
    for r in answers:
        if r.status_code == 409:
            body = r.json()
            assert body["errcode"] == "AZ_SLOT_TAKEN" and "réservé" in body["error"]
            nexts = [s["start"] for s in body["next_slots"]]
            assert nexts and all(s != answers[0].json().get("start", "") for s in nexts)
            assert local(setup.monday, "10:00").isoformat() not in [
                s["start_local"] for s in body["next_slots"]
            ]
    listed = await client.get(
        "/api/v1/appointments", params={"agenda_id": setup.id}, headers=world.alice.headers
    )
    assert [a["status"] for a in listed.json()["items"]] == ["reserve"]


async def test_overlapping_bookings_are_refused_and_cancelling_frees_the_slot(
    client: httpx.AsyncClient, db: AsyncSession, world: World
) -> None:
    setup = await make_agenda(client, world.alice)
    first = await book(client, world.bob, setup, local(setup.monday, "11:00"))
    assert first.status_code == 201
    # The owner books a 60-minute meeting over 10:30-11:30: overlaps the 11:00 consultation.
    clash = await book(client, world.alice, setup, local(setup.monday, "10:30"), event_type_id=setup.meeting)
    assert clash.status_code == 409 and clash.json()["errcode"] == "AZ_SLOT_TAKEN"
    again = await book(client, world.carol, setup, local(setup.monday, "11:00"))
    assert again.status_code == 409
    appt = first.json()
    cancelled = await client.patch(
        f"/api/v1/appointments/{appt['id']}",
        json={"version": appt["version"], "status": "annule"},
        headers=world.bob.headers,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await book(client, world.carol, setup, local(setup.monday, "11:00"))).status_code == 201
    (event,) = await _events(db, "appointment.cancelled")
    assert event.recipients == [world.alice.user_id]
    assert event.payload["appointment_id"] == appt["id"]


async def test_booking_off_grid_in_the_past_or_a_non_bookable_type_is_refused_in_french(
    client: httpx.AsyncClient, world: World
) -> None:
    setup = await make_agenda(client, world.alice)
    off = await book(client, world.bob, setup, local(setup.monday, "09:10"))
    assert off.status_code == 422 and off.json()["errcode"] == "AZ_SLOT_NOT_OPEN"
    closed = await book(client, world.bob, setup, local(setup.monday, "14:00"))
    assert closed.status_code == 422 and "pas ouvert" in closed.json()["error"]
    meeting = await book(client, world.bob, setup, local(setup.monday, "09:00"), event_type_id=setup.meeting)
    assert meeting.status_code == 422 and "ne se réserve pas" in meeting.json()["error"]
    past = await book(client, world.bob, setup, local(setup.monday - timedelta(days=14), "09:00"))
    assert past.status_code == 422 and "passé" in past.json()["error"]


async def test_who_sees_and_who_books(client: httpx.AsyncClient, world: World) -> None:
    """mes_structures: colleagues of CABINET book; others see nothing (404); the delisted is refused."""
    setup = await make_agenda(
        client, world.alice, structure_id=CABINET, visibility="mes_structures", booking="mes_structures"
    )
    start = local(setup.monday, "09:00")
    assert (await client.get(f"/api/v1/agendas/{setup.id}", headers=world.carol.headers)).status_code == 200
    hidden = await client.get(f"/api/v1/agendas/{setup.id}", headers=world.dave.headers)
    assert hidden.status_code == 404 and hidden.json()["errcode"] == "AZ_UNKNOWN_AGENDA"
    assert (await book(client, world.dave, setup, start)).status_code == 404
    delisted = await book(client, world.eve, setup, start)
    assert delisted.status_code == 403 and delisted.json()["errcode"] == "AZ_INACTIVE"
    slots = await client.get("/api/v1/slots", params={"category": "consultation"}, headers=world.dave.headers)
    assert slots.json()["items"] == []
    mine = await client.get("/api/v1/slots", params={"category": "consultation"}, headers=world.carol.headers)
    assert mine.json()["items"] and {s["agenda_id"] for s in mine.json()["items"]} == {setup.id}
    # Free/busy for everyone, booking for nobody but the managers.
    patch = await client.patch(
        f"/api/v1/agendas/{setup.id}",
        json={"version": 1, "visibility": "annuaire", "booking": "personne"},
        headers=world.alice.headers,
    )
    assert patch.status_code == 200, patch.text
    seen = await client.get(f"/api/v1/agendas/{setup.id}", headers=world.dave.headers)
    assert seen.status_code == 200 and seen.json()["can_book"] is False
    refused = await book(client, world.dave, setup, start)
    assert refused.status_code == 403 and refused.json()["errcode"] == "AZ_BOOKING_REFUSED"
    not_manager = await client.patch(
        f"/api/v1/agendas/{setup.id}", json={"version": 2, "name": "Pris"}, headers=world.dave.headers
    )
    assert not_manager.status_code == 403 and not_manager.json()["errcode"] == "AZ_NOT_AGENDA_MANAGER"


async def test_delegates_manage_and_requests_are_confirmed_or_declined(
    client: httpx.AsyncClient, db: AsyncSession, world: World
) -> None:
    setup = await make_agenda(
        client, world.alice, requires_confirmation=True, delegate_national_ids=[world.carol.national_id]
    )
    asked = await book(
        client, world.bob, setup, local(setup.monday, "09:00"), note="Patient adressé par les urgences"
    )
    assert asked.status_code == 201 and asked.json()["status"] == "propose"
    appt = asked.json()
    # Held while proposed: nobody else gets it.
    assert (await book(client, world.dave, setup, local(setup.monday, "09:00"))).status_code == 409
    # The booker cannot confirm their own request; the delegate can.
    refused = await client.patch(
        f"/api/v1/appointments/{appt['id']}",
        json={"version": 1, "status": "reserve"},
        headers=world.bob.headers,
    )
    assert refused.status_code == 409 and refused.json()["errcode"] == "AZ_BAD_TRANSITION"
    confirmed = await client.patch(
        f"/api/v1/appointments/{appt['id']}",
        json={"version": 1, "status": "reserve"},
        headers=world.carol.headers,
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "reserve"
    booked_events = await _events(db, "appointment.booked")
    assert [e.payload["status"] for e in booked_events] == ["propose", "reserve"]
    assert booked_events[1].recipients == sorted([world.alice.user_id, world.bob.user_id])
    stale = await client.patch(
        f"/api/v1/appointments/{appt['id']}",
        json={"version": 1, "status": "annule"},
        headers=world.alice.headers,
    )
    assert stale.status_code == 409 and stale.json()["errcode"] == "AZ_STALE_VERSION"
    second = await book(client, world.dave, setup, local(setup.monday, "09:30"))
    declined = await client.patch(
        f"/api/v1/appointments/{second.json()['id']}",
        json={"version": 1, "status": "annule"},
        headers=world.alice.headers,
    )
    assert declined.status_code == 200 and declined.json()["status_label"] == "Annulé"
    assert not (await client.get(f"/api/v1/appointments/{appt['id']}", headers=world.dave.headers)).is_success


async def test_a_patient_only_by_an_authorised_member_and_every_access_audited(
    client: httpx.AsyncClient, db: AsyncSession, world: World
) -> None:
    setup = await make_agenda(client, world.alice)
    pid = str(world.patient)
    outsider = await book(client, world.dave, setup, local(setup.monday, "09:00"), patient_id=pid)
    assert outsider.status_code == 403 and outsider.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    ok = await book(client, world.bob, setup, local(setup.monday, "09:00"), patient_id=pid)
    assert ok.status_code == 201, ok.text
    appt_id = ok.json()["id"]
    page = await client.get(f"/api/v1/patients/{pid}/appointments", headers=world.bob.headers)
    assert [a["id"] for a in page.json()["items"]] == [appt_id]
    refused = await client.get(f"/api/v1/patients/{pid}/appointments", headers=world.dave.headers)
    assert refused.status_code == 403
    assert (
        await client.get(f"/api/v1/appointments/{appt_id}", headers=world.alice.headers)
    ).status_code == 200
    trail = (
        (
            await db.execute(
                select(AuditEntry.actor_national_id, AuditEntry.action).where(
                    AuditEntry.patient_id == world.patient
                )
            )
        )
        .tuples()
        .all()
    )
    await db.rollback()
    assert (world.bob.national_id, "appointment.book") in trail
    assert (world.bob.national_id, "appointment.list") in trail
    assert (world.alice.national_id, "appointment.read") in trail
    assert world.dave.national_id not in {n for n, _ in trail}
    (event,) = await _events(db, "appointment.booked")
    assert event.patient_id == world.patient and "DUPONT" not in str(event.payload).upper()


async def test_search_across_agendas_sorted_by_first_availability(
    client: httpx.AsyncClient, db: AsyncSession, world: World
) -> None:
    early = await make_agenda(client, world.alice, name="Dr Martin", structure_id=CABINET)
    await make_agenda(client, world.carol, name="Dr Carol", rrule="FREQ=WEEKLY;BYDAY=WE")
    # Fill Alice's whole first Monday morning: her next slot is then Tuesday 09:00.
    for hhmm in ("09:00", "09:30", "10:00", "10:30", "11:00", "11:30"):
        assert (await book(client, world.bob, early, local(early.monday, hhmm))).status_code == 201
    resp = await client.get(
        "/api/v1/slots",
        params={
            "category": "consultation",
            "per_agenda": 1,
            "from": local(early.monday, "00:00").isoformat(),
        },
        headers=world.dave.headers,
    )
    assert resp.status_code == 200, resp.text
    firsts = [(s["agenda_name"], s["start_local"][:16]) for s in resp.json()["items"]]
    tuesday = early.monday + timedelta(days=1)
    wednesday = early.monday + timedelta(days=2)
    assert firsts == [("Dr Martin", f"{tuesday}T09:00"), ("Dr Carol", f"{wednesday}T09:00")]
    by_place = await client.get(
        "/api/v1/slots", params={"structure_id": CABINET, "limit": 3}, headers=world.dave.headers
    )
    assert {s["agenda_id"] for s in by_place.json()["items"]} == {early.id}
    nothing = await client.get("/api/v1/slots", params={"profession_code": "60"}, headers=world.dave.headers)
    assert nothing.json()["items"] == []
    paged = await client.get(
        "/api/v1/slots", params={"limit": 2, "per_agenda": 5}, headers=world.dave.headers
    )
    assert paged.json()["next_cursor"]
    more = await client.get(
        "/api/v1/slots",
        params={"limit": 2, "per_agenda": 5, "cursor": paged.json()["next_cursor"]},
        headers=world.dave.headers,
    )
    assert more.json()["items"][0]["start"] >= paged.json()["items"][-1]["start"]
    assert more.json()["items"][0] not in paged.json()["items"]


async def test_planning_of_several_agendas(client: httpx.AsyncClient, world: World) -> None:
    one = await make_agenda(client, world.alice, name="A")
    two = await make_agenda(client, world.carol, name="B")
    appt = await book(client, world.bob, one, local(one.monday, "09:00"))
    assert appt.status_code == 201
    resp = await client.get(
        "/api/v1/agendas/planning",
        params={
            "agenda_id": [one.id, two.id],
            "from": local(one.monday, "00:00").isoformat(),
            "to": local(one.monday, "23:59").isoformat(),
        },
        headers=world.alice.headers,
    )
    assert resp.status_code == 200, resp.text
    plans = resp.json()["agendas"]
    assert [p["agenda"]["name"] for p in plans] == ["A", "B"]
    assert len(plans[0]["openings"]) == 1 and plans[0]["busy"][0]["appointment_id"] == appt.json()["id"]
    # Dave sees Alice's busy block without its details.
    other = await client.get(
        "/api/v1/agendas/planning",
        params={
            "agenda_id": [one.id],
            "from": local(one.monday, "00:00").isoformat(),
            "to": local(one.monday, "23:59").isoformat(),
        },
        headers=world.dave.headers,
    )
    assert other.json()["agendas"][0]["busy"] == [
        {
            "start": plans[0]["busy"][0]["start"],
            "end": plans[0]["busy"][0]["end"],
            "kind": "rendez_vous",
            "appointment_id": None,
            "status": None,
            "event_type_name": None,
        }
    ]


async def test_bad_rrule_and_structure_rules_answer_in_french(
    client: httpx.AsyncClient, world: World
) -> None:
    setup = await make_agenda(client, world.alice)
    bad = await client.post(
        f"/api/v1/agendas/{setup.id}/availabilities",
        json={"start_local": "2026-12-01T09:00", "duration_minutes": 60, "rrule": "FREQ=SOUVENT"},
        headers=world.alice.headers,
    )
    assert bad.status_code == 422 and "récurrence" in bad.json()["error"]
    not_mine = await client.post(
        "/api/v1/agendas",
        json={"name": "Bloc", "owner_kind": "ressource", "structure_id": HOPITAL},
        headers=world.alice.headers,
    )
    assert not_mine.status_code == 403 and not_mine.json()["errcode"] == "AZ_NOT_YOUR_STRUCTURE"
    room = await client.post(
        "/api/v1/agendas",
        json={"name": "Salle de télé-expertise", "owner_kind": "ressource", "structure_id": HOPITAL},
        headers=world.bob.headers,
    )
    assert (
        room.status_code == 201
        and room.json()["can_manage"]
        and room.json()["owner_label"] == "Hôpital de Nice"
    )
