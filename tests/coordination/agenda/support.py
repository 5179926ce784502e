"""Arrange agendas through the real API (shared by the agenda tests and the bot tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.support.service import Pro

PARIS = ZoneInfo("Europe/Paris")


def next_monday(weeks_ahead: int = 1) -> date:
    """A Monday at least a week ahead (availability in the future, whatever day the tests run)."""
    today = datetime.now(PARIS).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7) + timedelta(weeks=weeks_ahead - 1)


def local(day: date, hhmm: str) -> datetime:
    """An aware Paris datetime on ``day`` at ``hhmm``."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


@dataclass
class AgendaSetup:
    id: str
    consultation: str  # event type id (30 min, bookable)
    meeting: str  # event type id (not bookable)
    monday: date


async def make_agenda(
    client: httpx.AsyncClient,
    owner: Pro,
    *,
    name: str = "Consultations",
    monday: date | None = None,
    rrule: str = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    **settings: Any,
) -> AgendaSetup:
    """An agenda with a 30-minute consultation type and weekday 09:00-12:00 opening hours."""
    resp = await client.post("/api/v1/agendas", json={"name": name, **settings}, headers=owner.headers)
    assert resp.status_code == 201, resp.text
    agenda_id = resp.json()["id"]
    consult = await client.post(
        f"/api/v1/agendas/{agenda_id}/event-types",
        json={
            "name": "Consultation",
            "category": "consultation",
            "duration_minutes": 30,
            "colour": "#2266AA",
        },
        headers=owner.headers,
    )
    assert consult.status_code == 201, consult.text
    meeting = await client.post(
        f"/api/v1/agendas/{agenda_id}/event-types",
        json={
            "name": "Réunion d'équipe",
            "category": "reunion_equipe",
            "duration_minutes": 60,
            "bookable": False,
        },
        headers=owner.headers,
    )
    assert meeting.status_code == 201, meeting.text
    monday = monday or next_monday()
    av = await client.post(
        f"/api/v1/agendas/{agenda_id}/availabilities",
        json={"start_local": f"{monday.isoformat()}T09:00", "duration_minutes": 180, "rrule": rrule},
        headers=owner.headers,
    )
    assert av.status_code == 201, av.text
    return AgendaSetup(agenda_id, consult.json()["id"], meeting.json()["id"], monday)


async def book(
    client: httpx.AsyncClient, who: Pro, setup: AgendaSetup, start: datetime, **extra: Any
) -> httpx.Response:
    body = {
        "agenda_id": setup.id,
        "event_type_id": setup.consultation,
        "start": start.isoformat(),
        **extra,
    }
    return await client.post("/api/v1/appointments", json=body, headers=who.headers)
