"""Pure rules of the indicators: periods in Paris time, categories, CSV cells, SVG charts."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime

import pytest

from coordination.errors import Invalid
from coordination.indicators import charts, rules

SVG = "{http://www.w3.org/2000/svg}"


def test_paris_midnight_in_winter_and_summer() -> None:
    assert rules.paris_midnight_utc(date(2026, 3, 29)) == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert rules.paris_midnight_utc(date(2026, 3, 30)) == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert rules.paris_midnight_utc(date(2026, 10, 25)) == datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert rules.paris_midnight_utc(date(2026, 10, 26)) == datetime(2026, 10, 25, 23, tzinfo=UTC)


def test_default_periods() -> None:
    today = date(2026, 3, 15)
    assert rules.period(None, None, now=today) == rules.Period(date(2026, 2, 14), date(2026, 3, 16))
    assert rules.period(date(2026, 1, 1), None, now=today).end == date(2026, 1, 31)
    assert rules.period(None, date(2026, 1, 31), now=today).start == date(2026, 1, 1)
    assert rules.period(date(2026, 3, 1), date(2026, 4, 1)).last_day == date(2026, 3, 31)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (date(2026, 3, 2), date(2026, 3, 1), "to"),
        (date(2020, 1, 1), date(2025, 1, 10), "from"),
        (date(9999, 12, 31), None, "from"),  # no overflow computing the default end
        (None, date(1, 1, 1), "to"),
    ],
)
def test_bad_periods(start: date | None, end: date | None, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        rules.period(start, end)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("has_structure", "is_dac", "mode", "expected"),
    [
        (False, None, None, "sans_structure"),
        (True, True, "Salarié", "dac"),
        (True, False, "Libéral", "liberal"),
        (True, False, "L", "liberal"),
        (True, False, "SALARIE", "salarie"),
        (True, None, "Bénévole", "benevole"),
        (True, False, None, "non_renseigne"),
        (True, False, "Mixte", "non_renseigne"),
    ],
)
def test_origin(has_structure: bool, is_dac: bool | None, mode: str | None, expected: str) -> None:
    assert rules.origin(has_structure=has_structure, structure_is_dac=is_dac, mode=mode) == expected


def test_outcome() -> None:
    assert rules.outcome(status="cloturee", decision="acceptee") == "acceptee"
    assert rules.outcome(status="refusee", decision="refusee") == "refusee"
    assert rules.outcome(status="annulee", decision=None) == "annulee"
    assert rules.outcome(status="en_cours", decision=None) == "en_cours"
    assert rules.outcome(status="envoyee", decision=None) == "en_attente"


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        (None, "—"),
        (0, "0 min"),
        (59 * 60, "59 min"),
        (3600, "1 h"),
        (12_000, "3 h 20 min"),
        (86_400 * 2, "2 j"),
    ],
)
def test_duration_label(seconds: float | None, label: str) -> None:
    assert rules.duration_label(seconds) == label


def test_csv_cells_never_become_formulas() -> None:
    text = rules.csv_text(
        dac_name='=HYPERLINK("http://x")',
        period=rules.Period(date(2026, 3, 1), date(2026, 4, 1)),
        rows=[("Demandes", "+33;@x", "-1")],
    )
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=";"))
    assert rows[1] == ['\'=HYPERLINK("http://x")', "01/03/2026", "31/03/2026", "Demandes", "'+33;@x", "'-1"]


def test_charts_escape_and_parse() -> None:
    svg = charts.bar_chart(chart_id="a b", title="T <&>", bars=[("</text><script>", 3), ("x", 0)])
    root = ET.fromstring(str(svg))
    assert root.get("id") == "a-b" and root.get("role") == "img"
    assert [t.text for t in root.iter(f"{SVG}text")] == ["</text><script>", "3", "x", "0"]
    assert root.find(f"{SVG}title").text == "T <&>"  # type: ignore[union-attr]
    empty = ET.fromstring(str(charts.histogram(chart_id="h", title="Vide", columns=[])))
    assert empty.find(f"{SVG}desc").text == "Aucune donnée."  # type: ignore[union-attr]
    widths = [
        int(r.get("height", "0"))
        for r in ET.fromstring(
            str(charts.histogram(chart_id="h", title="t", columns=[("a", 1), ("b", 2)]))
        ).iter(f"{SVG}rect")
    ]
    assert widths[1] == 2 * widths[0] > 0
