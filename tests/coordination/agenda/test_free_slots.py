"""The materialised free slots (``agenda_free_slots``) through the real app: kept equal to a fresh
computation by every change, across DST, and rolled forward as time passes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.agenda import service
from coordination.agenda.models import Agenda, FreeSlot
from coordination.db import utcnow
from tests.coordination.agenda.support import PARIS, book, local, make_agenda
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

CABINET = "finess:060000001"


@pytest.fixture
async def pros(db: AsyncSession, tokens: FakeTokens) -> tuple[Pro, Pro]:
    await add_structure(db, CABINET, "Cabinet médical du Port")
    owner = await add_professional(
        db, tokens, localpart="alice", national_id="810000000001", structure_ids=(CABINET,)
    )
    booker = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    return owner, booker


async def _stored(db: AsyncSession, agenda_id: str) -> set[tuple[str, datetime, datetime]]:
    db.expire_all()
    rows = await db.execute(
        select(FreeSlot.event_type_id, FreeSlot.start_at, FreeSlot.end_at).where(
            FreeSlot.agenda_id == uuid.UUID(agenda_id)
        )
    )
    found = {(str(t), s, e) for t, s, e in rows.tuples()}
    await db.rollback()
    return found


async def _recomputed(db: AsyncSession, agenda_id: str) -> set[tuple[str, datetime, datetime]]:
    """What a full rematerialisation gives (computed, read, then rolled back)."""
    await service.rebuild_openings(session=db, agenda_id=uuid.UUID(agenda_id))
    rows = await db.execute(
        select(FreeSlot.event_type_id, FreeSlot.start_at, FreeSlot.end_at).where(
            FreeSlot.agenda_id == uuid.UUID(agenda_id)
        )
    )
    found = {(str(t), s, e) for t, s, e in rows.tuples()}
    await db.rollback()
    return found


async def _slot_starts(
    client: httpx.AsyncClient, who: Pro, agenda_id: str, day: date, type_id: str
) -> list[str]:
    resp = await client.get(
        f"/api/v1/agendas/{agenda_id}/slots",
        params={
            "event_type_id": type_id,
            "from": local(day, "00:00").isoformat(),
            "to": local(day + timedelta(days=1), "00:00").isoformat(),
        },
        headers=who.headers,
    )
    assert resp.status_code == 200, resp.text
    return [s["start_local"][11:16] for s in resp.json()["items"]]


async def test_every_change_keeps_the_free_slots_equal_to_a_fresh_computation(
    client: httpx.AsyncClient, db: AsyncSession, pros: tuple[Pro, Pro]
) -> None:
    owner, booker = pros
    setup = await make_agenda(client, owner, structure_id=CABINET)
    monday = setup.monday
    stored = await _stored(db, setup.id)
    assert stored and stored == await _recomputed(db, setup.id)
    assert await _slot_starts(client, booker, setup.id, monday, setup.consultation) == [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30"
    ]  # fmt: skip

    # A 45-minute bookable type: its own grid in the same openings, from its creation on.
    visit = await client.post(
        f"/api/v1/agendas/{setup.id}/event-types",
        json={"name": "Visite", "category": "visite_domicile", "duration_minutes": 45, "colour": "#22AA66"},
        headers=owner.headers,
    )
    assert visit.status_code == 201, visit.text
    visit_id = visit.json()["id"]
    assert await _slot_starts(client, booker, setup.id, monday, visit_id) == [
        "09:00",
        "09:45",
        "10:30",
        "11:15",
    ]

    # A booking takes the overlapping slots of every type, in its own transaction.
    booked = await book(client, booker, setup, local(monday, "09:30"))
    assert booked.status_code == 201, booked.text
    assert await _slot_starts(client, booker, setup.id, monday, setup.consultation) == [
        "09:00", "10:00", "10:30", "11:00", "11:30"
    ]  # fmt: skip
    assert await _slot_starts(client, booker, setup.id, monday, visit_id) == ["10:30", "11:15"]
    assert await _stored(db, setup.id) == await _recomputed(db, setup.id)

    # A request held then declined, a booking cancelled: the slots come back.
    asked = await book(client, booker, setup, local(monday, "11:00"), request=True)
    assert asked.status_code == 201 and asked.json()["status"] == "propose"
    assert "11:00" not in await _slot_starts(client, booker, setup.id, monday, setup.consultation)
    for appt in (asked.json(), booked.json()):
        gone = await client.patch(
            f"/api/v1/appointments/{appt['id']}",
            json={"version": appt["version"], "status": "annule"},
            headers=owner.headers,
        )
        assert gone.status_code == 200, gone.text
    assert await _slot_starts(client, booker, setup.id, monday, setup.consultation) == [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30"
    ]  # fmt: skip
    assert await _slot_starts(client, booker, setup.id, monday, visit_id) == [
        "09:00",
        "09:45",
        "10:30",
        "11:15",
    ]
    assert await _stored(db, setup.id) == await _recomputed(db, setup.id)

    # An exception (EXDATE) and an unavailability.
    tuesday, wednesday = monday + timedelta(days=1), monday + timedelta(days=2)
    avs = (await client.get(f"/api/v1/agendas/{setup.id}/availabilities", headers=owner.headers)).json()
    exc = await client.post(
        f"/api/v1/agendas/{setup.id}/availabilities/{avs['items'][0]['id']}/exceptions",
        json={"exdates": [f"{tuesday.isoformat()}T09:00"]},
        headers=owner.headers,
    )
    assert exc.status_code == 200, exc.text
    closed = await client.post(
        f"/api/v1/agendas/{setup.id}/unavailabilities",
        json={"start": local(wednesday, "10:00").isoformat(), "end": local(wednesday, "11:00").isoformat()},
        headers=owner.headers,
    )
    assert closed.status_code == 201, closed.text
    assert await _slot_starts(client, booker, setup.id, tuesday, setup.consultation) == []
    assert await _slot_starts(client, booker, setup.id, wednesday, setup.consultation) == [
        "09:00", "09:30", "11:00", "11:30"
    ]  # fmt: skip
    assert await _stored(db, setup.id) == await _recomputed(db, setup.id)


async def test_free_slots_keep_their_local_time_across_the_march_change(
    client: httpx.AsyncClient, pros: tuple[Pro, Pro]
) -> None:
    owner, booker = pros
    # The Mondays around the next last Sunday of March (2027-03-28 seen from November 2026).
    today = datetime.now(PARIS).date()
    year = today.year + 1 if today.month >= 3 else today.year
    change = max(date(year, 3, d) for d in range(25, 32) if date(year, 3, d).weekday() == 6)
    before = change - timedelta(days=6)
    setup = await make_agenda(client, owner, monday=before, rrule="FREQ=WEEKLY;BYDAY=MO")
    resp = await client.get(
        f"/api/v1/agendas/{setup.id}/slots",
        params={
            "event_type_id": setup.consultation,
            "from": local(before, "00:00").isoformat(),
            "to": local(before + timedelta(days=8), "00:00").isoformat(),
        },
        headers=booker.headers,
    )
    assert resp.status_code == 200, resp.text
    firsts = [s for s in resp.json()["items"] if s["start_local"][11:16] == "09:00"]
    assert [s["start_local"] for s in firsts] == [
        f"{before}T09:00:00+01:00",
        f"{before + timedelta(days=7)}T09:00:00+02:00",
    ]
    assert [datetime.fromisoformat(s["start"]).astimezone(UTC).hour for s in firsts] == [8, 7]


async def test_openings_roll_forward_as_time_passes(
    client: httpx.AsyncClient, db: AsyncSession, pros: tuple[Pro, Pro]
) -> None:
    owner, booker = pros
    setup = await make_agenda(client, owner)
    agenda_id = uuid.UUID(setup.id)
    # As if the opening hours had been written 300 days ago: materialised up to 100 days from now.
    await service.rebuild_openings(session=db, agenda_id=agenda_id, now=utcnow() - timedelta(days=300))
    await db.commit()
    far = (datetime.now(PARIS) + timedelta(days=200)).date()
    far_monday = far + timedelta(days=(7 - far.weekday()) % 7)
    assert not [s for s in await _stored(db, setup.id) if s[1] >= local(far_monday, "00:00")]
    resp = await client.get(
        "/api/v1/slots",
        params={
            "category": "consultation",
            "from": local(far_monday, "00:00").isoformat(),
            "to": local(far_monday + timedelta(days=1), "00:00").isoformat(),
        },
        headers=booker.headers,
    )
    assert resp.status_code == 200, resp.text
    assert [s["start_local"][11:16] for s in resp.json()["items"]][:2] == ["09:00", "09:30"]
    db.expire_all()
    until = await db.scalar(select(Agenda.openings_until).where(Agenda.id == agenda_id))
    await db.rollback()
    assert until is not None and until >= utcnow() + timedelta(days=service.HORIZON_DAYS - 1)
    # Rolled once: the next reads do not rewrite it.
    assert await service.roll_forward(session=db) == 0


async def test_roll_forward_rewrites_only_the_agendas_that_need_it(
    client: httpx.AsyncClient, db: AsyncSession, pros: tuple[Pro, Pro]
) -> None:
    owner, _booker = pros
    fresh = await make_agenda(client, owner, name="Récent")
    old = await make_agenda(client, owner, name="Ancien")
    await service.rebuild_openings(
        session=db, agenda_id=uuid.UUID(old.id), now=utcnow() - timedelta(days=service.ROLL_DAYS + 1)
    )
    await db.commit()
    before = await _stored(db, fresh.id)
    assert await service.roll_forward(session=db) == 1
    assert await _stored(db, fresh.id) == before
    last_old = max(s[1] for s in await _stored(db, old.id))
    # Weekday mornings for ever: the last slot is within a week of the horizon.
    assert last_old >= utcnow() + timedelta(days=service.HORIZON_DAYS - 7)


async def test_concurrent_cancellation_and_bookings_keep_the_free_slots_exact(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, pros: tuple[Pro, Pro]
) -> None:
    """A cancellation racing bookings of its slot and of the slots around it: each write holds the
    agenda's lock while it rewrites the free slots, so none is lost or left stale."""
    import asyncio

    owner, booker = pros
    setup = await make_agenda(client, owner)
    first = await book(client, booker, setup, local(setup.monday, "10:00"))
    assert first.status_code == 201, first.text
    others = [
        await add_professional(db, tokens, localpart=f"c{i}", national_id=f"8300000000{i:02d}")
        for i in range(12)
    ]
    hours = ["10:00"] * 6 + ["09:00", "09:30", "10:30", "11:00", "11:30", "10:00"]
    cancel = client.patch(
        f"/api/v1/appointments/{first.json()['id']}",
        json={"version": first.json()["version"], "status": "annule"},
        headers=booker.headers,
    )
    answers = await asyncio.gather(
        cancel, *(book(client, p, setup, local(setup.monday, h)) for p, h in zip(others, hours, strict=True))
    )
    assert answers[0].status_code == 200, answers[0].text
    assert all(r.status_code in (201, 409) for r in answers[1:]), [r.text for r in answers[1:]]
    at_ten = [r.status_code for r, h in zip(answers[1:], hours, strict=True) if h == "10:00"]
    # 10:00 booked at most once (once if the cancellation came first).
    assert sorted(at_ten) in ([409] * 7, [201] + [409] * 6), at_ten
    assert all(r.status_code == 201 for r, h in zip(answers[1:], hours, strict=True) if h != "10:00")
    assert await _stored(db, setup.id) == await _recomputed(db, setup.id)
    taken = {r.json()["start_local"][11:16] for r in answers[1:] if r.status_code == 201}
    free = await _slot_starts(client, booker, setup.id, setup.monday, setup.consultation)
    assert sorted(set(free) | taken) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert not set(free) & taken
