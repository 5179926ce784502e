"""What the indicators page template needs, built from the read model (pure: no database, no web).

``page_context`` is the whole context of ``indicators/page.html`` but the kernel's own entries (the
request, the CSRF token, the signed-in professional), so a dashboard route is three lines: get the
actor, call ``service.dac_indicators``, render the template with this context.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from coordination.indicators import charts, rules
from coordination.indicators.schemas import CountOut, DacOut, IndicatorsOut

# The dashboard's own CSV route (the browser has the session cookie, not a Matrix token): the same
# export as ``GET /api/v1/indicators.csv``.
CSV_PATH = "/app/indicateurs.csv"
PAGE_PATH = "/app/indicateurs"


def _bars(counts: Sequence[CountOut], *, skip_empty: bool = False) -> list[tuple[str, float]]:
    return [(c.label, float(c.count)) for c in counts if c.count or not skip_empty]


def chart_markup(ind: IndicatorsOut) -> dict[str, Markup]:
    """Every chart of the page, by name."""
    return {
        "urgency": charts.bar_chart(
            chart_id="graphique-urgence", title="Demandes reçues par urgence", bars=_bars(ind.by_urgency)
        ),
        "outcome": charts.bar_chart(
            chart_id="graphique-issue", title="Demandes reçues par issue", bars=_bars(ind.by_outcome)
        ),
        "profession": charts.bar_chart(
            chart_id="graphique-profession",
            title="Demandes reçues par profession du demandeur",
            bars=_bars(ind.by_profession),
        ),
        "origin": charts.bar_chart(
            chart_id="graphique-origine",
            title="Demandes reçues par origine (mode d'exercice du demandeur)",
            bars=_bars(ind.by_origin, skip_empty=True),
        ),
        "tasks": charts.histogram(
            chart_id="graphique-taches",
            title="Tâches ouvertes par ancienneté",
            columns=_bars(ind.open_tasks_by_age),
            unit="tâche(s)",
        ),
        "situations": charts.bar_chart(
            chart_id="graphique-situations",
            title="Situations complexes suivies, par révision du plan",
            bars=_bars(ind.complex_situations_by_review),
        ),
    }


def query_string(*, dac_id: str, start: date, end: date) -> str:
    """``dac_id=…&from=…&to=…`` (the API's and the page's parameters)."""
    return urlencode({"dac_id": dac_id, "from": start.isoformat(), "to": end.isoformat()})


def page_context(*, ind: IndicatorsOut, dacs: Sequence[DacOut], csv_path: str = CSV_PATH) -> dict[str, Any]:
    """The context of ``indicators/page.html``: the figures, their charts, the filter form's values
    (the end shown to people is the last day *included*, the form sends ``to`` excluded: see the
    template), and the CSV link of the same period."""
    qs = query_string(dac_id=ind.dac_structure_id, start=ind.period_from, end=ind.period_to)
    return {
        "ind": ind,
        "dacs": list(dacs),
        "charts": chart_markup(ind),
        "csv_url": f"{csv_path}?{qs}",
        "page_path": PAGE_PATH,
        # When the open-task snapshot was taken, in Paris time.
        "generated_label": ind.generated_at.astimezone(rules.DAC_TZ).strftime("%d/%m/%Y à %H:%M"),
        "form_from": ind.period_from.isoformat(),
        "form_to": (ind.period_to - rules.ONE_DAY).isoformat(),
        "period_label": (
            f"du {rules.french_date(ind.period_from)} au {rules.french_date(ind.period_to - rules.ONE_DAY)}"
        ),
    }


def form_period(*, du: date | None, au: date | None) -> rules.Period:
    """The period of the page's form, whose ``au`` is the last day *included* (what people type);
    the API's ``to`` is the day after. Same checks and defaults as the API (``rules.period``)."""
    return rules.period(du, au + rules.ONE_DAY if au is not None else None)
