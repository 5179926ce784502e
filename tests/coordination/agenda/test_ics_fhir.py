"""The ICS feed (parsed back with ``icalendar``) and the FHIR export (validated with ``fhir.resources``)."""

from __future__ import annotations

from datetime import UTC, timedelta

import httpx
from fhir.resources.R4B.bundle import Bundle
from icalendar import Calendar
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, add_professional


async def test_ics_feed_at_a_secret_revocable_url(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    patient = await add_patient(db)
    await add_member(db, patient, national_id=bob.national_id)
    setup = await make_agenda(client, alice, name="Consultations Dr Martin")
    # Across the October change when it is ahead: 09:00 local either way.
    first = await book(
        client, bob, setup, local(setup.monday, "09:00"), patient_id=str(patient), note="Mme DUPONT, chute"
    )
    second = await book(client, bob, setup, local(setup.monday + timedelta(days=7), "10:30"), request=True)
    assert first.status_code == 201 and second.status_code == 201
    assert (
        await client.post(f"/api/v1/agendas/{setup.id}/ics-token", headers=bob.headers)
    ).status_code == 403
    issued = await client.post(f"/api/v1/agendas/{setup.id}/ics-token", headers=alice.headers)
    assert issued.status_code == 200, issued.text
    url = issued.json()["url"]
    assert url.startswith("http://service/ics/v1/") and url.endswith(".ics")
    feed = await client.get(url.removeprefix("http://service"))  # no Matrix token: the secret is the key
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(feed.content)
    assert str(cal["X-WR-CALNAME"]) == "Consultations Dr Martin"
    events = sorted(cal.walk("VEVENT"), key=lambda e: e["DTSTART"].dt)
    assert [str(e["UID"]) for e in events] == [
        f"{first.json()['id']}@azurezo",
        f"{second.json()['id']}@azurezo",
    ]
    assert events[0]["DTSTART"].dt == local(setup.monday, "09:00").astimezone(UTC)
    assert events[0]["DTEND"].dt - events[0]["DTSTART"].dt == timedelta(minutes=30)
    assert [str(e["STATUS"]) for e in events] == ["CONFIRMED", "TENTATIVE"]
    assert str(events[0]["SUMMARY"]) == "Consultation"
    # The calendar app is outside the circle: no patient, no note.
    assert "DUPONT" not in feed.text.upper() and str(patient) not in feed.text
    # A new secret revokes the old one; revoking turns the feed off.
    renewed = await client.post(f"/api/v1/agendas/{setup.id}/ics-token", headers=alice.headers)
    assert (await client.get(url.removeprefix("http://service"))).status_code == 404
    new_url = renewed.json()["url"].removeprefix("http://service")
    assert (await client.get(new_url)).status_code == 200
    assert (
        await client.delete(f"/api/v1/agendas/{setup.id}/ics-token", headers=alice.headers)
    ).status_code == 204
    gone = await client.get(new_url)
    assert gone.status_code == 404 and "révoqué" in gone.json()["error"]


async def test_fhir_schedule_slots_and_appointments_validate(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    patient = await add_patient(db)
    await add_member(db, patient, national_id=bob.national_id)
    setup = await make_agenda(client, alice)
    appt = await book(
        client,
        bob,
        setup,
        local(setup.monday, "09:00"),
        patient_id=str(patient),
        participant_national_ids=[bob.national_id],
    )
    assert appt.status_code == 201, appt.text
    params = {
        "from": local(setup.monday, "00:00").isoformat(),
        "to": local(setup.monday, "23:00").isoformat(),
    }
    assert (
        await client.get(f"/api/v1/agendas/{setup.id}/fhir", params=params, headers=bob.headers)
    ).status_code == 403
    resp = await client.get(f"/api/v1/agendas/{setup.id}/fhir", params=params, headers=alice.headers)
    assert resp.status_code == 200, resp.text
    bundle = Bundle.model_validate(resp.json())  # raises if any resource is not valid FHIR R4B
    kinds = [e.resource.get_resource_type() for e in bundle.entry or []]
    assert kinds.count("Schedule") == 1 and kinds.count("Appointment") == 1
    slots = [e.resource for e in bundle.entry or [] if e.resource.get_resource_type() == "Slot"]
    assert sorted(s.status for s in slots).count("busy") == 1 and len(slots) == 6  # 5 free + 1 busy
    schedule = next(e.resource for e in bundle.entry or [] if e.resource.get_resource_type() == "Schedule")
    assert schedule.actor[0].identifier.value == alice.national_id
    appointment = next(
        e.resource for e in bundle.entry or [] if e.resource.get_resource_type() == "Appointment"
    )
    assert appointment.status == "booked"
    actors = [
        p.actor.identifier.value if p.actor.identifier else p.actor.reference for p in appointment.participant
    ]
    # Alice is not in the patient's circle: the patient is not referenced in her export.
    assert actors == [alice.national_id, bob.national_id]
    assert str(patient) not in resp.text
