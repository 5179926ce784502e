"""Pure agenda rules: recurrence (RFC 5545 through ``dateutil.rrule``), Europe/Paris time, interval
arithmetic, free slots, who may see and book, and the appointment state machine.

Time. Everything is stored in UTC and computed in Europe/Paris: a recurring availability is written
in local wall time (``2026-03-02T09:00`` + ``FREQ=WEEKLY;BYDAY=MO``) and expanded in local wall time,
*then* converted to UTC occurrence by occurrence, so 09:00 stays 09:00 on both sides of a DST change
(08:00 UTC in winter, 07:00 UTC in summer).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rruleset, rrulestr

from coordination.vocab import AgendaAudience, AppointmentStatus

PARIS = ZoneInfo("Europe/Paris")
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
MAX_OCCURRENCES = 5000
"""Bound on one availability's expansion over the materialisation horizon (a daily rule for a year
is 366): a rule asking for more (FREQ=MINUTELY...) is refused rather than expanded."""

Interval = tuple[datetime, datetime]
"""A half-open UTC interval [start, end)."""

_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
RULE_PARTS = frozenset({"FREQ", "INTERVAL", "BYDAY", "BYMONTH", "UNTIL", "COUNT", "WKST"})
RULE_FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY"})


def _check_parts(rule: str) -> None:
    """Opening hours use a safe subset of RFC 5545: daily, weekly or monthly, an interval, week days
    (``1MO`` for the first Monday of the month), months, an end. Other parts can make a rule that
    never matches (« BYMONTH=2;BYMONTHDAY=30 »), which dateutil walks to the year 9999 on the event
    loop, even past UNTIL: ``ValueError``."""
    parts = dict(part.partition("=")[::2] for part in rule.upper().split(";") if part)
    if not set(parts) <= RULE_PARTS or parts.get("FREQ") not in RULE_FREQUENCIES:
        raise ValueError("unsupported RRULE part")


def parse_local(value: str) -> datetime:
    """A naive local (Europe/Paris) wall time from ``YYYY-MM-DDTHH:MM``; ``ValueError`` otherwise."""
    return datetime.strptime(value, LOCAL_FORMAT)


def to_utc(local: datetime) -> datetime:
    """A naive Paris wall time as an aware UTC datetime (a time in the spring gap reads as the
    offset before the change: 02:30 on the last Sunday of March is 01:30 UTC)."""
    return local.replace(tzinfo=PARIS).astimezone(UTC)


def aware(moment: datetime) -> datetime:
    """A datetime with a zone: one given without (``2026-03-02T09:00``) is read as Paris wall time."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=PARIS)


def to_local(moment: datetime) -> datetime:
    """An aware datetime as a naive Paris wall time."""
    return moment.astimezone(PARIS).replace(tzinfo=None)


def local_iso(moment: datetime) -> str:
    """An aware datetime as a Paris ISO string with its offset (``2026-03-30T09:00:00+02:00``)."""
    return moment.astimezone(PARIS).isoformat()


def _local_until(rule: str) -> str:
    """RFC 5545 writes UNTIL in UTC (``...Z``) when DTSTART has a zone; we expand in naive local time,
    so a UTC UNTIL is rewritten as the same instant in Paris wall time."""

    def local(match: re.Match[str]) -> str:
        instant = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return "UNTIL=" + to_local(instant).strftime("%Y%m%dT%H%M%S")

    return _UNTIL_UTC.sub(local, rule)


def recurrence(*, start_local: datetime, rule: str | None, exdates: Iterable[datetime] = ()) -> rruleset:
    """The occurrence set (naive local starts) of an availability; ``ValueError`` on a bad RRULE."""
    occurrences = rruleset()
    if rule:
        text = rule.strip()
        if text.upper().startswith("RRULE:"):
            text = text[6:]
        if "DTSTART" in text.upper():
            raise ValueError("DTSTART")
        _check_parts(text)
        text = _local_until(text)
        parsed = rrulestr(text, dtstart=start_local)
        if not isinstance(parsed, rrule):
            raise ValueError("one RRULE expected")
        occurrences.rrule(parsed)
    else:
        occurrences.rdate(start_local)
    for exdate in exdates:
        occurrences.exdate(exdate)
    return occurrences


def occurrences(
    *,
    start_local: datetime,
    duration: timedelta,
    rule: str | None,
    exdates: Iterable[datetime],
    window: Interval,
) -> list[Interval]:
    """The UTC intervals of an availability's occurrences that overlap ``window`` (UTC).

    ``ValueError`` when the rule is unreadable or yields more than ``MAX_OCCURRENCES`` in the window.
    """
    rules = recurrence(start_local=start_local, rule=rule, exdates=exdates)
    # Local bounds with a day of margin each side (the offset is at most two hours), filtered exactly below.
    after = to_local(window[0]) - duration - timedelta(days=1)
    before = to_local(window[1]) + timedelta(days=1)
    found: list[Interval] = []
    for local in rules.xafter(after, inc=True):
        if local > before:
            break
        start = to_utc(local)
        end = to_utc(local + duration)
        if end > window[0] and start < window[1]:
            found.append((start, end))
        if len(found) > MAX_OCCURRENCES:
            raise ValueError("too many occurrences")
    return found


def subtract(windows: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``windows`` minus ``holes`` (both lists of UTC intervals; the result is sorted)."""
    result: list[Interval] = []
    ordered_holes = sorted(holes)
    for start, end in sorted(windows):
        cursor = start
        for h_start, h_end in ordered_holes:
            if h_end <= cursor or h_start >= end:
                continue
            if h_start > cursor:
                result.append((cursor, h_start))
            cursor = max(cursor, h_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def free_slots(
    *, window: Interval, duration: timedelta, busy: Sequence[Interval], not_before: datetime
) -> list[Interval]:
    """Slots of ``duration`` on the grid that starts at the window's start, that fit in the window,
    start at or after ``not_before`` and overlap no busy interval."""
    slots: list[Interval] = []
    if duration <= timedelta(0):
        return slots
    start = window[0]
    if not_before > start:
        # Jump to the first grid position at or after not_before (no loop over a long past).
        steps = -(-(not_before - start) // duration)
        start += steps * duration
    while start + duration <= window[1]:
        slot = (start, start + duration)
        if not any(overlaps(slot, b) for b in busy):
            slots.append(slot)
        start += duration
    return slots


K = TypeVar("K", bound=Hashable)


def materialised_slots(
    *,
    openings: Iterable[tuple[K | None, datetime, datetime]],
    types: Sequence[tuple[K, int]],
    busy: Sequence[Interval],
    region: Interval | None = None,
) -> list[tuple[K, datetime, datetime]]:
    """The free slots of one agenda, as stored in ``agenda_free_slots``: for each opening (``type``
    it is reserved to, or None; start; end) and each bookable type it admits (id, minutes), the slots
    on the grid from the opening's start that overlap no ``busy`` interval; with ``region``, only the
    slots starting in it. Two openings giving the same (type, start) give it once.

    Each opening is checked against the busy intervals near it only (bisection on the sorted starts),
    so a year of an agenda costs a linear pass, not openings x appointments."""
    ordered = sorted(busy)
    starts = [b[0] for b in ordered]
    longest = max((b[1] - b[0] for b in ordered), default=timedelta(0))
    seen: set[tuple[K, datetime]] = set()
    found: list[tuple[K, datetime, datetime]] = []
    for only, o_start, o_end in openings:
        low, high = bisect_left(starts, o_start - longest), bisect_left(starts, o_end)
        near = [b for b in ordered[low:high] if b[1] > o_start]
        for type_id, minutes in types:
            if only is not None and only != type_id:
                continue
            for start, end in free_slots(
                window=(o_start, o_end), duration=timedelta(minutes=minutes), busy=near, not_before=o_start
            ):
                if region is not None and not region[0] <= start < region[1]:
                    continue
                if (type_id, start) not in seen:
                    seen.add((type_id, start))
                    found.append((type_id, start, end))
    return found


def slot_fits(slot: Interval, windows: Sequence[Interval], duration: timedelta) -> bool:
    """Whether ``slot`` is a grid slot of one of the opening ``windows`` (a booking on an open slot)."""
    for w_start, w_end in windows:
        if w_start <= slot[0] and slot[1] <= w_end and (slot[0] - w_start) % duration == timedelta(0):
            return True
    return False


@dataclass(frozen=True, slots=True)
class AgendaAccess:
    """What one actor may do with one agenda."""

    manage: bool
    see_busy: bool
    book: bool


def audience_allows(
    audience: AgendaAudience, *, agenda_structure: str | None, actor_structures: Iterable[str]
) -> bool:
    """Whether an active professional who does not manage the agenda is in ``audience``."""
    if audience is AgendaAudience.ANNUAIRE:
        return True
    if audience is AgendaAudience.MES_STRUCTURES:
        return agenda_structure is not None and agenda_structure in set(actor_structures)
    return False


def access(
    *,
    manager: bool,
    visibility: AgendaAudience,
    booking: AgendaAudience,
    agenda_structure: str | None,
    actor_structures: Iterable[str],
) -> AgendaAccess:
    """Managers do everything; others see free/busy and book as the agenda's two settings say (one
    who may book sees the free slots, so booking implies seeing free/busy)."""
    if manager:
        return AgendaAccess(manage=True, see_busy=True, book=True)
    structures = frozenset(actor_structures)
    book = audience_allows(booking, agenda_structure=agenda_structure, actor_structures=structures)
    see = book or audience_allows(visibility, agenda_structure=agenda_structure, actor_structures=structures)
    return AgendaAccess(manage=False, see_busy=see, book=book)


_TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    AppointmentStatus.PROPOSE: frozenset({AppointmentStatus.RESERVE, AppointmentStatus.ANNULE}),
    AppointmentStatus.RESERVE: frozenset(
        {AppointmentStatus.ANNULE, AppointmentStatus.EFFECTUE, AppointmentStatus.ABSENT}
    ),
    AppointmentStatus.ANNULE: frozenset(),
    AppointmentStatus.EFFECTUE: frozenset(),
    AppointmentStatus.ABSENT: frozenset(),
}


def transition_allowed(
    current: AppointmentStatus, new: AppointmentStatus, *, manager: bool, booker: bool
) -> bool:
    """The appointment state machine: a request (proposed) is confirmed or declined by a manager, or
    withdrawn by its booker; a booked appointment is cancelled by either, marked done or no-show by a
    manager; cancelled, done and no-show are final."""
    if new == current:
        return True
    if new not in _TRANSITIONS[current]:
        return False
    if manager:
        return True
    return booker and new is AppointmentStatus.ANNULE


def holds_slot(status: AppointmentStatus) -> bool:
    """Proposed and booked appointments hold their slot; the others free it."""
    return status in (AppointmentStatus.PROPOSE, AppointmentStatus.RESERVE)
