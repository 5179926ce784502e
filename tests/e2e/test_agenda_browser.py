"""The agenda's dashboard pages in Debian's Chromium against `azurezo up` (issue 11).

Dr Martin-Roux (demo GP) has an agenda with a consultation type; in the browser he adds weekday
opening hours, opens next week, clicks a free slot, books it, and looks at the planning. Every page
(the list of agendas, the week with its opening-hours form, the booking form, the week after the
booking, the planning) is checked by axe-core (no serious or critical violation) and photographed at
1280 and 360 px (nothing wider than the phone); the browser reports no CSP violation.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.conftest import DemoInstance
from tests.e2e.test_dashboard_browser import Visit, _login, browser, expect_status  # noqa: F401  (the module-scoped browser fixture)

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

PARIS = ZoneInfo("Europe/Paris")
AGENDA = "Consultations du cabinet (e2e)"


def _next_monday() -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)


def test_agenda_pages_pass_axe_and_a_slot_is_booked_by_a_click(
    demo: DemoInstance,
    browser: Any,  # noqa: F811  (the fixture imported above)
    axe_source: str,
    artifacts: Path,
) -> None:
    headers = {"Authorization": f"Bearer {_login(demo, 'jmartin')}"}
    api = f"{demo.service_url}/api/v1"
    created = httpx.post(f"{api}/agendas", json={"name": AGENDA}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    agenda_id = created.json()["id"]
    consult = httpx.post(
        f"{api}/agendas/{agenda_id}/event-types",
        json={
            "name": "Consultation",
            "category": "consultation",
            "duration_minutes": 30,
            "colour": "#2266AA",
        },
        headers=headers,
        timeout=30,
    )
    assert consult.status_code == 201, consult.text
    monday = _next_monday()
    week = f"{demo.dashboard_url}/agendas/{agenda_id}?semaine={monday.isoformat()}"

    visit = Visit(browser, axe_source, artifacts, "agenda")
    page = visit.page
    try:
        visit.sign_in(demo, "jmartin")
        page.goto(f"{demo.dashboard_url}/agendas")
        assert AGENDA in page.locator("main").inner_text()
        visit.check("agendas")

        # Opening hours from the week page's form (managers only): weekdays 09:00-12:00 from next Monday.
        page.goto(week)
        assert "Aucun créneau cette semaine." in page.locator("main").inner_text()
        page.locator("summary", has_text="Ajouter des horaires").click()
        visit.check("agenda-semaine-vide")
        page.get_by_label("Premier jour").fill(monday.isoformat())
        page.get_by_role("button", name="Ajouter les horaires").click()
        page.wait_for_load_state()
        expect_status(page, "Horaires ajoutés : de 09:00 à 12:00.")

        page.goto(week)
        free = page.get_by_role("link", name=re.compile(r"^Libre — Consultation"))
        assert free.count() == 5 * 6, free.count()  # five mornings of six 30-minute slots
        visit.check("agenda-semaine")
        free.first.click()
        page.wait_for_load_state()
        assert "Réserver un créneau" in page.locator("h1").inner_text()
        visit.check("agenda-reserver")
        page.get_by_label("Note (facultative)").fill("Suivi tensionnel")
        page.get_by_role("button", name="Réserver ce créneau").click()
        page.wait_for_load_state()
        when = f"{monday.strftime('%d/%m/%Y')} à 09:00"
        expect_status(page, f"Rendez-vous pris le {when}")
        assert page.get_by_role("link", name=re.compile(r"^Libre — Consultation")).count() == 5 * 6 - 1
        assert "Suivi tensionnel" in page.locator("#rendez-vous").inner_text()
        visit.check("agenda-semaine-reservee")

        page.goto(f"{demo.dashboard_url}/planning?agenda={agenda_id}&jour={monday.isoformat()}&vue=semaine")
        assert AGENDA in page.locator("main").inner_text()
        visit.check("agenda-planning")
    finally:
        visit.close()
