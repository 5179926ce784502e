"""The situation over time in the dashboard (issue 14): complex situations on the DAC's board and in its
indicators page and CSV; appointments on the timeline page and linked to plan actions from the plan
page. The real app in-process, signed in through the fake Synapse sign-in edge."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.timeline.models import ComplexSituation
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination.patients.support import add_circle_member, audit_actions, create_patient
from tests.coordination.web.support import FakeMatrixAuth, csrf_of, sign_in
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

DAC = "finess:060000099"
CABINET = "finess:060000001"
PASSWORD = "mot-de-passe-de-test-123"
CONSENT = {"given": True, "mode": "oral"}


@pytest.fixture
async def people(db: AsyncSession, tokens: FakeTokens, matrix: FakeMatrixAuth) -> dict[str, Pro]:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    await add_structure(db, CABINET, "Cabinet médical du Port")
    found = {
        "coord": await add_professional(
            db, tokens, localpart="coord", national_id="810000002001", structure_ids=(DAC,)
        ),
        "gp": await add_professional(
            db, tokens, localpart="gp", national_id="810000002002", structure_ids=(CABINET,)
        ),
    }
    for pro in found.values():
        matrix.passwords[pro.user_id] = PASSWORD
    return found


async def _sent_request(client: httpx.AsyncClient, gp: Pro, patient_id: str) -> None:
    body = {"dac_structure_id": DAC, "reason": "Retour à domicile difficile", "patient_id": patient_id}
    draft = await client.post("/api/v1/requests", json=body, headers=gp.headers)
    assert draft.status_code == 201, draft.text
    sent = await client.post(
        f"/api/v1/requests/{draft.json()['id']}/send", json={"version": 1}, headers=gp.headers
    )
    assert sent.status_code == 200, sent.text


async def test_the_dac_board_lists_its_complex_situations_and_the_indicators_count_them(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, db: AsyncSession, people: dict[str, Pro]
) -> None:
    coord, gp = people["coord"], people["gp"]
    followed = (await create_patient(client, gp, consent=CONSENT))["id"]
    unseen = (await create_patient(client, gp, birth_name="LEFEBVRE"))["id"]
    await add_circle_member(
        client, gp, followed, kind="structure", structure_id=DAC, role="DAC", habilite=True
    )
    flag = {"flagged": True, "reason": "Aidante épuisée, isolement"}
    resp = await client.put(
        f"/api/v1/patients/{followed}/complex-situation", json=flag, headers=coord.headers
    )
    assert resp.status_code == 200, resp.text
    plan = await client.put(
        f"/api/v1/patients/{followed}/plan",
        json={"version": 0, "next_review_date": "2021-06-01"},
        headers=gp.headers,
    )
    assert plan.status_code == 200, plan.text
    # Flagged, but the coordinator is not in this patient's circle: neither listed nor counted.
    db.add(
        ComplexSituation(
            patient_id=uuid.UUID(unseen), flagged=True, reason="Secret", flagged_by=coord.national_id
        )
    )
    await db.commit()
    await _sent_request(client, gp, followed)

    assert (await sign_in(client, coord.user_id, PASSWORD)).status_code == 303
    board = await client.get("/app/demandes?onglet=toutes")
    assert board.status_code == 200, board.text
    section = board.text.split('id="titre-situations"', 1)[1]
    assert "Situations complexes suivies (1)" in board.text
    assert f'href="/app/patients/{followed}"' in section and "DUPONT Marie" in section
    assert "Aidante épuisée, isolement" in section and "01/06/2021" in section
    assert "Révision dépassée" in section
    assert unseen not in board.text and "LEFEBVRE" not in board.text and "Secret" not in board.text
    requests = board.text.split('id="titre-situations"', 1)[0]
    assert "Retour à domicile difficile" in requests and "Situation complexe</span>" in requests
    # The DAC filter keeps the DAC's patients.
    by_dac = await client.get(f"/app/demandes?dac={DAC}")
    assert "Situations complexes suivies (1)" in by_dac.text
    trail = await audit_actions(db, followed)
    assert ("situation.board", coord.national_id) in trail and ("situation.read", coord.national_id) in trail
    assert coord.national_id not in {n for _, n in await audit_actions(db, unseen)}

    page = await client.get("/app/indicateurs")
    assert page.status_code == 200, page.text
    assert re.search(r"<dt>Situations complexes suivies</dt><dd>1</dd>", page.text)
    assert "Révision du plan dépassée" in page.text and 'id="graphique-situations"' in page.text
    exported = await client.get("/app/indicateurs.csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"), newline=""), delimiter=";"))
    table = {(r[3], r[4]): r[5] for r in rows[1:]}
    assert table[("Situations complexes suivies (à ce jour)", "Total")] == "1"
    assert table[("Situations complexes par révision du plan", "Révision du plan dépassée")] == "1"

    # A professional who is not a DAC coordinator gets no complex-situation list on the board, but
    # sees the mark on their own request about a patient whose circle they are in.
    assert (await sign_in(browser, gp.user_id, PASSWORD)).status_code == 303
    mine = await browser.get("/app/demandes?envoyees=true&onglet=toutes")
    assert mine.status_code == 200, mine.text
    assert 'id="titre-situations"' not in mine.text
    assert "Retour à domicile difficile" in mine.text and "Situation complexe</span>" in mine.text


async def test_appointments_on_the_timeline_page_and_linked_from_the_plan_page(
    client: httpx.AsyncClient, db: AsyncSession, people: dict[str, Pro]
) -> None:
    gp = people["gp"]
    pid = (await create_patient(client, gp, consent=CONSENT))["id"]
    other = (await create_patient(client, gp, birth_name="AUTRE", consent=CONSENT))["id"]
    setup = await make_agenda(client, gp, name="Cabinet du Port")
    booked = await book(client, gp, setup, local(setup.monday, "09:30"), patient_id=pid)
    foreign = await book(client, gp, setup, local(setup.monday, "10:00"), patient_id=other)
    assert booked.status_code == 201 and foreign.status_code == 201
    appt = booked.json()["id"]
    assert (await sign_in(client, gp.user_id, PASSWORD)).status_code == 303

    day = f"{setup.monday:%d/%m/%Y}"
    page = await client.get(f"/app/patients/{pid}/plan")
    assert page.status_code == 200, page.text
    assert (
        f'<option value="{appt}">{day} 09:30 — Consultation (Cabinet du Port) — Réservé</option>' in page.text
    )
    assert foreign.json()["id"] not in page.text  # only this patient's appointments are offered

    def form(csrf: str, appointment_id: str) -> dict[str, Any]:
        return {
            "csrf_token": csrf,
            "version": "0",
            "actions-0-id": "",
            "actions-0-title": "Consultation de suivi des chutes",
            "actions-0-responsible": f"pro:{gp.national_id}",
            "actions-0-status": "a_faire",
            "actions-0-appointment_id": appointment_id,
        }

    refused = await client.post(
        f"/app/patients/{pid}/plan", data=form(csrf_of(page.text), foreign.json()["id"])
    )
    assert refused.status_code == 303
    page = await client.get(f"/app/patients/{pid}/plan")
    assert "le rendez-vous lié est introuvable ou ne concerne pas ce patient" in page.text
    saved = await client.post(f"/app/patients/{pid}/plan", data=form(csrf_of(page.text), appt))
    assert saved.status_code == 303
    page = await client.get(f"/app/patients/{pid}/plan")
    assert "Plan enregistré (version 1)." in page.text
    shown = page.text.split('id="titre-edition"', 1)[0]
    assert "Consultation (Cabinet du Port)" in shown and f"{day} 09:30" in shown and "Réservé" in shown
    assert f'<option value="{appt}" selected>' in page.text  # the edit form keeps the link

    timeline = await client.get(f"/app/patients/{pid}/chronologie?type=rendez_vous")
    assert timeline.status_code == 200
    assert 'id="type-rendez_vous" name="type" value="rendez_vous" checked' in timeline.text
    assert f"Rendez-vous planifié : Consultation le {day} à 09:30 (Cabinet du Port)" in timeline.text
    assert "Plan personnalisé (PPCS)</span>" not in timeline.text
    assert "appointment.list" in [a for a, _ in await audit_actions(db, pid)]


async def test_a_dac_coordinator_flags_and_clears_from_the_timeline_page(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, db: AsyncSession, people: dict[str, Pro]
) -> None:
    coord, gp = people["coord"], people["gp"]
    pid = (await create_patient(client, gp, consent=CONSENT))["id"]
    await add_circle_member(client, gp, pid, kind="structure", structure_id=DAC, role="DAC", habilite=True)
    assert (await sign_in(client, coord.user_id, PASSWORD)).status_code == 303
    url = f"/app/patients/{pid}/chronologie"
    page = await client.get(url)
    assert "Pas de situation complexe signalée." in page.text
    empty = await client.post(f"{url}/situation", data={"csrf_token": csrf_of(page.text), "flagged": "oui"})
    assert empty.status_code == 303
    page = await client.get(url)
    assert "Signalement non enregistré — Motif" in page.text
    flagged = await client.post(
        f"{url}/situation",
        data={"csrf_token": csrf_of(page.text), "flagged": "oui", "reason": "Polypathologie, isolement"},
    )
    assert flagged.status_code == 303
    page = await client.get(url)
    assert "Situation complexe signalée : le patient figure au tableau du DAC." in page.text
    assert "Polypathologie, isolement" in page.text and "Lever le signalement" in page.text
    board = await client.get("/app/demandes")
    assert "Situations complexes suivies (1)" in board.text

    # The GP of the circle sees the flag, without the form (not a DAC coordinator); a post is refused.
    assert (await sign_in(browser, gp.user_id, PASSWORD)).status_code == 303
    seen = await browser.get(url)
    assert "Polypathologie, isolement" in seen.text and "Lever le signalement" not in seen.text
    refused = await browser.post(
        f"{url}/situation", data={"csrf_token": csrf_of(seen.text), "flagged": "non", "reason": "Non"}
    )
    assert refused.status_code == 303
    assert "Seul un coordinateur d&#39;un DAC" in (await browser.get(url)).text

    cleared = await client.post(
        f"{url}/situation",
        data={"csrf_token": csrf_of(page.text), "flagged": "non", "reason": "Situation stabilisée"},
    )
    assert cleared.status_code == 303
    page = await client.get(url)
    assert "Signalement de situation complexe levé." in page.text and "Situation stabilisée" in page.text
    assert "Situations complexes suivies (0)" in (await client.get("/app/demandes")).text
    trail = await audit_actions(db, pid)
    assert ("situation.flag", coord.national_id) in trail and ("situation.clear", coord.national_id) in trail
    assert ("situation.read", gp.national_id) in trail
