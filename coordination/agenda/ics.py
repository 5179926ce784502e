"""The agenda's ICS feed (RFC 5545), generated with ``icalendar``: pure, from the service's ``Feed``."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event

from coordination.agenda.service import Feed

PRODID = "-//AZUREZO//Agenda partagé//FR"


def render(feed: Feed, *, now: datetime | None = None) -> bytes:
    """The feed as an iCalendar document (times in UTC, which every calendar app converts)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", feed.name)
    cal.add("x-wr-timezone", "Europe/Paris")
    stamp = now or datetime.now(UTC)
    for item in feed.events:
        event = Event()
        event.add("uid", item.uid)
        event.add("dtstamp", stamp)
        event.add("created", item.created)
        event.add("dtstart", item.start.astimezone(UTC))
        event.add("dtend", item.end.astimezone(UTC))
        event.add("summary", item.summary)
        event.add("status", "CONFIRMED" if item.confirmed else "TENTATIVE")
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    ical: bytes = cal.to_ical()
    return ical
