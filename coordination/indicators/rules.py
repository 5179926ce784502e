"""Pure rules of the DAC indicators: the period, the categories and their French labels, the CSV.

Nothing here touches the database: the service runs the aggregates, these functions say what a
period means (Europe/Paris dates), how raw values fall into categories, and how figures are written
for Excel (French locale).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from coordination.errors import Invalid
from coordination.indicators.schemas import IndicatorsOut
from coordination.vocab import RequestStatus

# A DAC works in France: a period is a range of calendar days in Paris, whatever the server's zone.
DAC_TZ = ZoneInfo("Europe/Paris")

DEFAULT_DAYS = 30
ONE_DAY = timedelta(days=1)
MAX_DAYS = 5 * 366 + 1  # five years and a day: a multi-year activity report, not an unbounded scan
MIN_YEAR, MAX_YEAR = 2000, 2100


def today() -> date:
    """Today's date in Paris."""
    return datetime.now(DAC_TZ).date()


@dataclass(frozen=True, slots=True)
class Period:
    """The days ``[start, end)`` in Europe/Paris (``end`` excluded), and the matching UTC instants."""

    start: date
    end: date

    @property
    def last_day(self) -> date:
        """The last day included (what people write: "du 1er au 31 mars")."""
        return self.end - timedelta(days=1)

    @property
    def start_utc(self) -> datetime:
        return paris_midnight_utc(self.start)

    @property
    def end_utc(self) -> datetime:
        return paris_midnight_utc(self.end)


def paris_midnight_utc(day: date) -> datetime:
    """The UTC instant at which ``day`` begins in Paris (23:00 or 22:00 UTC the day before).

    Midnight always exists in Paris (the DST changes happen at 2 and 3 a.m.), so there is no gap or
    fold to resolve."""
    return datetime.combine(day, time(0), tzinfo=DAC_TZ).astimezone(UTC)


def period(start: date | None, end: date | None, *, now: date | None = None) -> Period:
    """The period asked for, checked: by default the last 30 days, today included.

    ``end`` is excluded (``from=2026-03-01&to=2026-04-01`` is March). Refused (422, French): an end
    not after the start, a period over five years, dates outside 2000-2099."""
    for value, field in ((start, "from"), (end, "to")):
        if value is not None and not MIN_YEAR <= value.year < MAX_YEAR:
            raise Invalid(
                f"Date hors des années {MIN_YEAR} à {MAX_YEAR - 1} : choisissez une date dans cet "
                "intervalle.",
                field=field,
            )
    current = now or today()
    if end is None:
        end = (start + timedelta(days=DEFAULT_DAYS)) if start is not None else current + ONE_DAY
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS)
    if end <= start:
        raise Invalid(
            "La fin de période doit être après son début (la date de fin est exclue : pour le mois de "
            "mars, choisissez du 1er mars au 1er avril).",
            field="to",
        )
    if (end - start).days > MAX_DAYS:
        raise Invalid(
            "La période ne peut pas dépasser cinq ans : choisissez une période plus courte.",
            field="from",
        )
    return Period(start=start, end=end)


# --- categories ------------------------------------------------------------------------------------

# Outcome of a request received in the period, as of now: the DAC's decision once answered, else where
# it stands. Codes of the decision are those of ``vocab.Decision``; the others are added here.
OUTCOME_WAITING = "en_attente"
OUTCOME_TAKEN = "en_cours"
OUTCOME_CANCELLED = "annulee"
OUTCOME_LABELS: dict[str, str] = {
    OUTCOME_WAITING: "Pas encore prise en charge",
    OUTCOME_TAKEN: "Prise en charge, sans réponse",
    OUTCOME_CANCELLED: "Annulée par le demandeur",
}


def outcome(*, status: str, decision: str | None) -> str:
    """Where a received request stands: its decision once answered, else taken, waiting or cancelled."""
    if decision:
        return decision
    if status == RequestStatus.ANNULEE:
        return OUTCOME_CANCELLED
    if status == RequestStatus.EN_COURS:
        return OUTCOME_TAKEN
    return OUTCOME_WAITING


# Requester's origin by how they work at the structure they named (the RPPS "mode d'exercice" of their
# activity there, as the directory holds it): town practice, establishment or service, another DAC.
ORIGIN_LIBERAL = "liberal"
ORIGIN_SALARIE = "salarie"
ORIGIN_BENEVOLE = "benevole"
ORIGIN_DAC = "dac"
ORIGIN_NO_STRUCTURE = "sans_structure"
ORIGIN_UNKNOWN = "non_renseigne"
ORIGIN_LABELS: dict[str, str] = {
    ORIGIN_LIBERAL: "Ville (exercice libéral)",
    ORIGIN_SALARIE: "Établissement ou service (exercice salarié)",
    ORIGIN_BENEVOLE: "Exercice bénévole",
    ORIGIN_DAC: "Autre DAC",
    ORIGIN_NO_STRUCTURE: "Structure non précisée",
    ORIGIN_UNKNOWN: "Mode d'exercice non renseigné",
}
ORIGIN_ORDER = tuple(ORIGIN_LABELS)

UNKNOWN_PROFESSION = "Profession non renseignée"


def _fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip().lower()


def origin(*, has_structure: bool, structure_is_dac: bool | None, mode: str | None) -> str:
    """The origin code of a request from its requester's structure and mode of exercise there."""
    if not has_structure:
        return ORIGIN_NO_STRUCTURE
    if structure_is_dac:
        return ORIGIN_DAC
    folded = _fold(mode or "")
    # RPPS codes (L, S, B) or labels (Libéral, Salarié, Bénévole): both appear in extracts.
    for code, letter, word in _MODES:
        if folded == letter or folded.startswith(word):
            return code
    return ORIGIN_UNKNOWN


_MODES = (
    (ORIGIN_LIBERAL, "l", "liberal"),
    (ORIGIN_SALARIE, "s", "salari"),
    (ORIGIN_BENEVOLE, "b", "benevol"),
)


# Open tasks by age (days since creation, measured now).
AGE_BUCKETS: tuple[tuple[str, str, int | None], ...] = (
    # (code, label, upper bound in days, excluded; None = no bound)
    ("moins_7_jours", "Moins de 7 jours", 7),
    ("7_29_jours", "7 à 29 jours", 30),
    ("30_89_jours", "30 à 89 jours", 90),
    ("90_jours_et_plus", "90 jours et plus", None),
)


def age_thresholds(now: datetime) -> list[tuple[str, datetime | None]]:
    """Each bucket's code and the creation instant after which (strictly) a task falls in it, oldest
    bucket last with no bound: a task created after ``now - 7 days`` is "moins de 7 jours"."""
    return [(code, now - timedelta(days=days) if days is not None else None) for code, _, days in AGE_BUCKETS]


# Complex situations followed by the DAC now, by where the review of their plan (PPCS) stands.
REVIEW_LATE = "revision_depassee"
REVIEW_PLANNED = "revision_prevue"
REVIEW_NONE = "sans_revision"
REVIEW_LABELS: dict[str, str] = {
    REVIEW_LATE: "Révision du plan dépassée",
    REVIEW_PLANNED: "Révision du plan prévue",
    REVIEW_NONE: "Sans date de révision (ou sans plan)",
}
REVIEW_ORDER = tuple(REVIEW_LABELS)


# --- formatting ------------------------------------------------------------------------------------


def duration_label(seconds: float | None) -> str:
    """A delay for people: "3 h 20 min", "2 j 4 h", "45 min", "—" when there is none."""
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} j {hours} h" if hours else f"{days} j"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def french_decimal(value: float, digits: int = 1) -> str:
    """``2.5`` -> ``"2,5"`` (what Excel reads as a number in a French locale)."""
    return f"{value:.{digits}f}".replace(".", ",")


def french_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


CSV_HEADERS = ("DAC", "Début de période", "Fin de période (incluse)", "Indicateur", "Catégorie", "Valeur")
# A cell starting with one of these is a formula for a spreadsheet (CSV injection): prefix it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_text(*, dac_name: str, period: Period, rows: Iterable[tuple[str, str, str]]) -> str:
    """The CSV Excel opens as is in a French locale: UTF-8 with a BOM, ``;`` separator, CRLF lines,
    French headers, decimal commas. ``rows`` are (indicator, category, value)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_HEADERS)
    head = (_cell(dac_name), french_date(period.start), french_date(period.last_day))
    for indicator, category, value in rows:
        writer.writerow((*head, _cell(indicator), _cell(category), _cell(value)))
    return out.getvalue()


def counts_in_order(found: dict[str, int], order: Sequence[str]) -> list[tuple[str, int]]:
    """Every code of ``order`` with its count (0 when absent), then unexpected codes found."""
    listed = [(code, found.get(code, 0)) for code in order]
    extra = [(code, n) for code, n in sorted(found.items()) if code not in order]
    return listed + extra


def csv_rows(ind: IndicatorsOut) -> list[tuple[str, str, str]]:
    """(indicator, category, value) rows of the CSV export, in the order of the page."""
    rows: list[tuple[str, str, str]] = [("Demandes reçues", "Total", str(ind.requests_received))]
    breakdowns = (
        ("Demandes reçues par profession du demandeur", ind.by_profession),
        ("Demandes reçues par origine (mode d'exercice du demandeur)", ind.by_origin),
        ("Demandes reçues par urgence", ind.by_urgency),
        ("Demandes reçues par issue", ind.by_outcome),
    )
    for indicator, counts in breakdowns:
        rows += [(indicator, c.label, str(c.count)) for c in counts]
    for indicator, delay in (
        ("Délai médian de prise en charge", ind.take_delay),
        ("Délai médian de réponse", ind.answer_delay),
    ):
        hours = french_decimal(delay.median_seconds / 3600, 1) if delay.median_seconds is not None else ""
        rows.append((indicator, "Heures", hours))
        rows.append((indicator, "Demandes mesurées", str(delay.measured)))
    rows.append(("Patients inclus", "Total", str(ind.patients_included)))
    rows.append(("Tâches ouvertes (à ce jour)", "Total", str(ind.open_tasks)))
    rows += [("Tâches ouvertes par ancienneté", c.label, str(c.count)) for c in ind.open_tasks_by_age]
    rows.append(("Situations complexes suivies (à ce jour)", "Total", str(ind.complex_situations)))
    rows += [
        ("Situations complexes par révision du plan", c.label, str(c.count))
        for c in ind.complex_situations_by_review
    ]
    return rows


def csv_export(ind: IndicatorsOut) -> str:
    """The whole CSV of ``ind`` (see ``csv_text``)."""
    return csv_text(dac_name=ind.dac_name, period=Period(ind.period_from, ind.period_to), rows=csv_rows(ind))


def csv_filename(ind: IndicatorsOut) -> str:
    """``indicateurs-<dac>-<first day>-<last day>.csv`` with only safe characters."""
    dac = re.sub(r"[^A-Za-z0-9_-]+", "-", ind.dac_structure_id).strip("-")
    last = ind.period_to - timedelta(days=1)
    return f"indicateurs-{dac}-{ind.period_from.isoformat()}-{last.isoformat()}.csv"
