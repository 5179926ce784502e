"""Pure agenda rules: recurrence with exceptions, DST weeks, interval arithmetic, the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordination.agenda import rules
from coordination.vocab import AgendaAudience, AppointmentStatus

HOUR = timedelta(hours=1)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _weekly(start_local: str, rule: str, window: tuple[datetime, datetime], exdates: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return rules.occurrences(
        start_local=rules.parse_local(start_local),
        duration=3 * HOUR,
        rule=rule,
        exdates=[rules.parse_local(x) for x in exdates],
        window=window,
    )


def test_a_nine_oclock_weekly_slot_stays_nine_local_across_the_march_change() -> None:
    """Last Sunday of March 2026 is the 29th: 09:00 Paris is 08:00 UTC before, 07:00 UTC after."""
    found = _weekly("2026-03-16T09:00", "FREQ=WEEKLY;BYDAY=MO", (_utc(2026, 3, 16), _utc(2026, 4, 7)))
    assert [s for s, _ in found] == [
        _utc(2026, 3, 16, 8),
        _utc(2026, 3, 23, 8),
        _utc(2026, 3, 30, 7),
        _utc(2026, 4, 6, 7),
    ]
    assert all(rules.to_local(s).hour == 9 for s, _ in found)
    assert all(e - s == 3 * HOUR for s, e in found)


def test_and_across_the_october_change() -> None:
    """Last Sunday of October 2026 is the 25th: 07:00 UTC before, 08:00 UTC after."""
    found = _weekly("2026-10-12T09:00", "FREQ=WEEKLY;BYDAY=MO", (_utc(2026, 10, 12), _utc(2026, 11, 3)))
    assert [s for s, _ in found] == [
        _utc(2026, 10, 12, 7),
        _utc(2026, 10, 19, 7),
        _utc(2026, 10, 26, 8),
        _utc(2026, 11, 2, 8),
    ]


def test_a_window_that_spans_the_change_night_keeps_its_local_end() -> None:
    """A Saturday 20:00-23:00 + a Sunday 01:00 start over the October night: local hours hold."""
    found = rules.occurrences(
        start_local=rules.parse_local("2026-10-24T22:00"),
        duration=5 * HOUR,
        rule=None,
        exdates=[],
        window=(_utc(2026, 10, 24), _utc(2026, 10, 27)),
    )
    # 22:00 CEST (20:00 UTC) + 5 h of wall clock = 03:00 CET on Sunday (02:00 UTC): 6 real hours.
    assert found == [(_utc(2026, 10, 24, 20), _utc(2026, 10, 25, 2))]


def test_exceptions_and_every_other_week_until_a_date() -> None:
    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;UNTIL=20260521T235959"
    found = _weekly(
        "2026-04-28T14:00", rule, (_utc(2026, 4, 1), _utc(2026, 7, 1)), exdates=("2026-05-14T14:00",)
    )
    local_days = [rules.to_local(s).date().isoformat() for s, _ in found]
    # Weeks of 28 April and 12 May (not 5 May); 14 May cancelled (Ascension); nothing after 21 May.
    assert local_days == ["2026-04-28", "2026-04-30", "2026-05-12"]
    assert all(rules.to_local(s).hour == 14 for s, _ in found)


def test_until_in_utc_as_rfc_5545_writes_it() -> None:
    found = _weekly(
        "2026-06-01T09:00", "FREQ=DAILY;UNTIL=20260603T070000Z", (_utc(2026, 6, 1), _utc(2026, 7, 1))
    )
    assert [rules.to_local(s).day for s, _ in found] == [1, 2, 3]


@pytest.mark.parametrize(
    "rule", ["FREQ=SOMETIMES", "DTSTART=20260101T000000;FREQ=DAILY", "FREQ=MINUTELY", "BYDAY=XX"]
)
def test_bad_or_unbounded_rules_are_refused(rule: str) -> None:
    with pytest.raises(ValueError):
        _weekly("2026-06-01T09:00", rule, (_utc(2026, 6, 1), _utc(2027, 6, 1)))


def test_subtract_and_free_slots() -> None:
    day = _utc(2026, 6, 1)
    window = (day.replace(hour=7), day.replace(hour=10))
    hole = (day.replace(hour=8), day.replace(hour=8, minute=30))
    assert rules.subtract([window], [hole]) == [(window[0], hole[0]), (hole[1], window[1])]
    busy = [(day.replace(hour=7, minute=30), day.replace(hour=8))]
    slots = rules.free_slots(window=window, duration=timedelta(minutes=30), busy=busy, not_before=window[0])
    assert [s.strftime("%H:%M") for s, _ in slots] == ["07:00", "08:00", "08:30", "09:00", "09:30"]
    later = rules.free_slots(
        window=window, duration=timedelta(minutes=30), busy=[], not_before=day.replace(hour=8, minute=10)
    )
    assert later[0][0] == day.replace(hour=8, minute=30)
    assert rules.slot_fits(
        (day.replace(hour=8), day.replace(hour=8, minute=30)), [window], timedelta(minutes=30)
    )
    assert not rules.slot_fits(
        (day.replace(hour=8, minute=10), day.replace(hour=8, minute=40)), [window], timedelta(minutes=30)
    )


def test_access_audiences() -> None:
    def acc(booking: AgendaAudience, visibility: AgendaAudience, mine: tuple[str, ...]) -> rules.AgendaAccess:
        return rules.access(
            manager=False,
            visibility=visibility,
            booking=booking,
            agenda_structure="finess:1",
            actor_structures=mine,
        )

    everyone = acc(AgendaAudience.ANNUAIRE, AgendaAudience.ANNUAIRE, ())
    assert everyone.book and everyone.see_busy and not everyone.manage
    colleagues = acc(AgendaAudience.MES_STRUCTURES, AgendaAudience.PERSONNE, ("finess:1",))
    assert colleagues.book and colleagues.see_busy
    stranger = acc(AgendaAudience.MES_STRUCTURES, AgendaAudience.PERSONNE, ("finess:2",))
    assert not stranger.book and not stranger.see_busy
    viewer = acc(AgendaAudience.PERSONNE, AgendaAudience.ANNUAIRE, ())
    assert viewer.see_busy and not viewer.book


def test_state_machine() -> None:
    s = AppointmentStatus
    assert rules.transition_allowed(s.PROPOSE, s.RESERVE, manager=True, booker=False)
    assert not rules.transition_allowed(s.PROPOSE, s.RESERVE, manager=False, booker=True)
    assert rules.transition_allowed(s.RESERVE, s.ANNULE, manager=False, booker=True)
    assert not rules.transition_allowed(s.RESERVE, s.EFFECTUE, manager=False, booker=True)
    assert rules.transition_allowed(s.RESERVE, s.ABSENT, manager=True, booker=False)
    assert not rules.transition_allowed(s.ANNULE, s.RESERVE, manager=True, booker=False)


def test_rules_outside_the_safe_subset_are_refused_and_count_counts() -> None:
    with pytest.raises(ValueError):  # never matches: dateutil alone would walk to the year 9999
        _weekly(
            "2026-06-01T09:00", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", (_utc(2026, 6, 1), _utc(2027, 6, 1))
        )
    with pytest.raises(ValueError):
        _weekly("2026-06-01T09:00", "FREQ=YEARLY;BYYEARDAY=200", (_utc(2026, 6, 1), _utc(2027, 6, 1)))
    three = _weekly("2026-06-01T09:00", "FREQ=WEEKLY;BYDAY=MO;COUNT=3", (_utc(2026, 5, 1), _utc(2026, 12, 1)))
    assert [rules.to_local(s).day for s, _ in three] == [1, 8, 15]
    first_mondays = _weekly(
        "2026-06-01T09:00", "FREQ=MONTHLY;BYDAY=1MO", (_utc(2026, 6, 1), _utc(2026, 9, 1))
    )
    assert [rules.to_local(s).date().isoformat() for s, _ in first_mondays] == [
        "2026-06-01",
        "2026-07-06",
        "2026-08-03",
    ]


def test_materialised_slots_per_type_minus_busy_once_each_and_in_a_region() -> None:
    day = _utc(2026, 6, 1)
    morning = (None, day.replace(hour=7), day.replace(hour=10))
    # A second opening over the same hours for consultations only: no slot twice.
    consult_only = ("consult", day.replace(hour=7), day.replace(hour=8))
    afternoon = ("visit", day.replace(hour=12), day.replace(hour=14))
    types = [("consult", 30), ("visit", 45)]
    # A long appointment far before: the bisection must still see it (it overlaps the morning).
    busy = [
        (day.replace(hour=5), day.replace(hour=7, minute=30)),
        (day.replace(hour=12), day.replace(hour=12, minute=45)),
    ]
    slots = rules.materialised_slots(openings=[morning, consult_only, afternoon], types=types, busy=busy)
    by_type: dict[str, list[str]] = {}
    for type_id, start, end in slots:
        by_type.setdefault(type_id, []).append(f"{start:%H:%M}-{end:%H:%M}")
    assert by_type["consult"] == ["07:30-08:00", "08:00-08:30", "08:30-09:00", "09:00-09:30", "09:30-10:00"]
    assert by_type["visit"] == ["07:45-08:30", "08:30-09:15", "09:15-10:00", "12:45-13:30"]
    region = (day.replace(hour=9), day.replace(hour=12, minute=45))
    inside = rules.materialised_slots(openings=[morning, afternoon], types=types, busy=busy, region=region)
    assert sorted(f"{t} {s:%H:%M}" for t, s, _ in inside) == ["consult 09:00", "consult 09:30", "visit 09:15"]
