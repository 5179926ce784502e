"""The agenda's dashboard pages in-process: my agendas, the week as a table, booking a free slot for a
patient from the page, the patient's appointments section, cancelling, opening hours, the planning;
an outsider refused (no appointment, no trace in the patient's audit trail)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from tests.coordination.agenda.support import PARIS, local, make_agenda
from tests.coordination.agenda.test_geo_search import Geo, placed  # noqa: F401  (the fixture)
from tests.coordination.patients.support import create_patient
from tests.coordination.web.support import FakeMatrixAuth, csrf_of, page_csrf, sign_in
from tests.support.service import FakeTokens, add_professional

PASSWORD = "mot-de-passe-de-test-123"


def _no_inline_code(text: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline script"
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", text), "inline style or handler"


def _booking_links(page: str) -> dict[datetime, str]:
    """The week table's free-slot links, by slot start."""
    found = {}
    for href in re.findall(r'href="(/app/agendas/[^"]+/reserver\?[^"]+)"', page):
        url = html.unescape(href)
        found[datetime.fromisoformat(parse_qs(urlsplit(url).query)["debut"][0])] = url
    return found


async def _trail(db: AsyncSession, patient_id: str, national_id: str) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.patient_id == uuid.UUID(patient_id), AuditEntry.actor_national_id == national_id)
    )
    await db.rollback()
    return int(count or 0)


async def test_book_a_free_slot_for_a_patient_from_the_week_page_and_cancel_it(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    db: AsyncSession,
    tokens: FakeTokens,
    matrix: FakeMatrixAuth,
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000061")
    gp = await add_professional(db, tokens, localpart="gp", national_id="810000000062")
    outsider = await add_professional(db, tokens, localpart="out", national_id="810000000063")
    for pro in (gp, outsider):
        matrix.passwords[pro.user_id] = PASSWORD
    setup = await make_agenda(client, alice, name="Cabinet Alice")
    pid = (await create_patient(client, gp))["id"]  # gp: the patient's first habilité member

    assert (await sign_in(client, gp.user_id, PASSWORD)).status_code == 303
    agendas = await client.get(f"/app/agendas?patient={pid}")
    assert agendas.status_code == 200 and "Cabinet Alice" in agendas.text
    assert '<a href="/app/agendas" aria-current="page">Agenda</a>' in agendas.text
    _no_inline_code(agendas.text)

    week = await client.get(f"/app/agendas/{setup.id}?semaine={setup.monday.isoformat()}&patient={pid}")
    assert week.status_code == 200
    _no_inline_code(week.text)
    assert "<caption>" in week.text and '<th scope="row">09:30</th>' in week.text
    links = _booking_links(week.text)
    nine_thirty = local(setup.monday, "09:30")
    assert len(links) == 6 * 5  # 09:00-12:00, 30-minute consultations, Monday to Friday
    form = await client.get(links[nine_thirty])
    assert form.status_code == 200 and f'value="{pid}"' in form.text  # the patient carried along
    _no_inline_code(form.text)

    no_token = await client.post(f"/app/agendas/{setup.id}/reserver", data={"start": "x"})
    assert no_token.status_code == 403  # anti-forgery token required
    booked = await client.post(
        f"/app/agendas/{setup.id}/reserver",
        data={
            "csrf_token": csrf_of(form.text),
            "event_type_id": setup.consultation,
            "start": nine_thirty.isoformat(),
            "patient_id": pid,
            "note": "Premier bilan",
        },
    )
    assert booked.status_code == 303 and booked.headers["location"] == f"/app/patients/{pid}#rendez-vous"
    patient_page = await client.get(f"/app/patients/{pid}")
    text = html.unescape(patient_page.text)
    assert f"Rendez-vous pris le {setup.monday:%d/%m/%Y} à 09:30 (Consultation, Cabinet Alice)." in text
    section = text.split('id="rendez-vous"', 1)[1].split("</section>", 1)[0]
    assert f"{setup.monday:%d/%m/%Y} 09:30" in section and "Réservé" in section
    api = await client.get(f"/api/v1/patients/{pid}/appointments", headers=gp.headers)
    [appt] = api.json()["items"]
    assert appt["status"] == "reserve" and appt["note"] == "Premier bilan"

    # The slot is no longer offered; the week shows it busy.
    again = await client.get(f"/app/agendas/{setup.id}?semaine={setup.monday.isoformat()}")
    assert nine_thirty not in _booking_links(again.text) and len(_booking_links(again.text)) == 29
    # Without a patient, a slot link carries no empty « patient= » (the form would refuse it).
    bare = next(iter(_booking_links(again.text).values()))
    assert "patient=" not in bare
    bare_form = await client.get(bare)
    assert bare_form.status_code == 200 and "Réserver un créneau" in bare_form.text

    # An outsider to the patient's circle cannot book for them from the page, and leaves no trace.
    assert (await sign_in(browser, outsider.user_id, PASSWORD)).status_code == 303
    csrf = await page_csrf(browser, f"/app/agendas/{setup.id}")
    refused = await browser.post(
        f"/app/agendas/{setup.id}/reserver",
        data={
            "csrf_token": csrf,
            "event_type_id": setup.consultation,
            "start": local(setup.monday, "10:00").isoformat(),
            "patient_id": pid,
        },
    )
    assert refused.status_code == 303 and refused.headers["location"] == f"/app/agendas/{setup.id}"
    told = html.unescape((await browser.get(refused.headers["location"])).text)
    assert 'class="message erreur"' in told
    cancel_other = await browser.post(
        f"/app/rendez-vous/{appt['id']}/annuler",
        data={"csrf_token": csrf, "version": str(appt["version"]), "retour": pid},
    )
    assert cancel_other.status_code == 303
    still = await client.get(f"/api/v1/patients/{pid}/appointments", headers=gp.headers)
    assert [a["status"] for a in still.json()["items"]] == ["reserve"]
    assert await _trail(db, pid, outsider.national_id) == 0

    # The booker cancels from the patient page.
    cancelled = await client.post(
        f"/app/rendez-vous/{appt['id']}/annuler",
        data={"csrf_token": csrf_of(patient_page.text), "version": str(appt["version"]), "retour": pid},
    )
    assert (
        cancelled.status_code == 303 and cancelled.headers["location"] == f"/app/patients/{pid}#rendez-vous"
    )
    after = await client.get(f"/api/v1/patients/{pid}/appointments", headers=gp.headers)
    assert [a["status"] for a in after.json()["items"]] == ["annule"]


async def test_opening_hours_and_the_planning_of_several_agendas(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    db: AsyncSession,
    tokens: FakeTokens,
    matrix: FakeMatrixAuth,
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000071")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000072")
    for pro in (alice, bob):
        matrix.passwords[pro.user_id] = PASSWORD
    first = await make_agenda(client, alice, name="Cabinet Alice")
    second = await make_agenda(client, bob, name="Cabinet Bob", rrule="FREQ=WEEKLY;BYDAY=TU")

    assert (await sign_in(client, alice.user_id, PASSWORD)).status_code == 303
    week_url = f"/app/agendas/{first.id}?semaine={first.monday.isoformat()}"
    week = await client.get(week_url)
    assert '<th scope="col">Samedi' not in week.text and "Ajouter des horaires" in week.text
    added = await client.post(
        f"/app/agendas/{first.id}/disponibilites",
        data={
            "csrf_token": csrf_of(week.text),
            "premier_jour": first.monday.isoformat(),
            "de": "14:00",
            "a": "15:00",
            "jours": "SA",
        },
    )
    assert added.status_code == 303
    week = await client.get(week_url)
    assert "Horaires ajoutés : de 14:00 à 15:00." in html.unescape(week.text)
    links = _booking_links(week.text)
    assert '<th scope="col">Samedi' in week.text
    assert sorted(f"{d.astimezone(PARIS):%H:%M}" for d in links if d.astimezone(PARIS).weekday() == 5) == [
        "14:00",
        "14:30",
    ]
    assert len(links) == 30 + 2  # two Saturday consultations added

    # Bob does not manage Alice's agenda: no opening hours form, and his post is refused.
    assert (await sign_in(browser, bob.user_id, PASSWORD)).status_code == 303
    bob_week = await browser.get(week_url)
    assert bob_week.status_code == 200 and "Ajouter des horaires" not in bob_week.text
    refused = await browser.post(
        f"/app/agendas/{first.id}/disponibilites",
        data={
            "csrf_token": csrf_of(bob_week.text),
            "premier_jour": first.monday.isoformat(),
            "de": "16:00",
            "a": "17:00",
            "jours": "SU",
        },
    )
    assert refused.status_code == 303
    assert len(_booking_links((await client.get(week_url)).text)) == 32

    plan = await client.get(
        f"/app/planning?agenda={first.id}&agenda={second.id}&jour={first.monday.isoformat()}&vue=semaine"
    )
    assert plan.status_code == 200
    _no_inline_code(plan.text)
    text = html.unescape(plan.text)
    head = text.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert "Cabinet Alice" in head and "Cabinet Bob" in head
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", text, flags=re.S)
    assert len(rows) == 7
    monday_cells = re.findall(r"<td>(.*?)</td>", rows[0], flags=re.S)
    tuesday_cells = re.findall(r"<td>(.*?)</td>", rows[1], flags=re.S)
    assert "Ouvert 09:00–12:00" in monday_cells[0] and "Ouvert" not in monday_cells[1]
    assert "Ouvert 09:00–12:00" in tuesday_cells[0] and "Ouvert 09:00–12:00" in tuesday_cells[1]
    day = await client.get(f"/app/planning?agenda={second.id}&jour={first.monday.isoformat()}&vue=jour")
    assert len(re.findall(r"<tr><th scope=\"row\">", day.text)) == 1


async def test_a_request_is_confirmed_by_the_agenda_manager_from_the_week_page(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    db: AsyncSession,
    tokens: FakeTokens,
    matrix: FakeMatrixAuth,
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000081")
    gp = await add_professional(db, tokens, localpart="gp", national_id="810000000082")
    for pro in (alice, gp):
        matrix.passwords[pro.user_id] = PASSWORD
    setup = await make_agenda(client, alice, name="Cabinet Alice", requires_confirmation=True)
    week_url = f"/app/agendas/{setup.id}?semaine={setup.monday.isoformat()}"

    assert (await sign_in(browser, gp.user_id, PASSWORD)).status_code == 303
    form = await browser.get(_booking_links((await browser.get(week_url)).text)[local(setup.monday, "11:00")])
    asked = await browser.post(
        f"/app/agendas/{setup.id}/reserver",
        data={
            "csrf_token": csrf_of(form.text),
            "event_type_id": setup.consultation,
            "start": local(setup.monday, "11:00").isoformat(),
        },
    )
    assert asked.status_code == 303
    told = html.unescape((await browser.get(asked.headers["location"])).text)
    assert "Demande de rendez-vous envoyée" in told
    assert "Rendez-vous de la semaine" not in told  # gp does not manage the agenda

    assert (await sign_in(client, alice.user_id, PASSWORD)).status_code == 303
    week = await client.get(week_url)
    section = html.unescape(week.text).split('id="rendez-vous"', 1)[1].split("</section>", 1)[0]
    assert "Proposé (à confirmer)" in section and "Confirmer" in section
    action = re.search(r'action="(/app/rendez-vous/[^"]+/confirmer)"', section)
    assert action is not None
    confirmed = await client.post(
        action.group(1),
        data={
            "csrf_token": csrf_of(week.text),
            "version": "1",
            "agenda": setup.id,
            "semaine": setup.monday.isoformat(),
        },
    )
    assert confirmed.status_code == 303 and confirmed.headers["location"].startswith(week_url)
    after = html.unescape((await client.get(week_url)).text)
    assert "Rendez-vous confirmé." in after
    section = after.split('id="rendez-vous"', 1)[1].split("</section>", 1)[0]
    assert "Réservé" in section and "/confirmer" not in section


async def test_search_free_slots_within_a_radius_of_a_commune(
    client: httpx.AsyncClient,
    matrix: FakeMatrixAuth,
    placed: Geo,  # noqa: F811
) -> None:
    """The search page: commune and radius fields, only the agendas within the radius, each slot with
    its distance and a link to the booking form; an ambiguous commune answered in French on the page."""
    who = placed.searcher
    matrix.passwords[who.user_id] = PASSWORD
    assert (await sign_in(client, who.user_id, PASSWORD)).status_code == 303
    agendas = await client.get("/app/agendas")
    assert '<a href="/app/creneaux">Chercher un créneau libre</a>' in agendas.text

    empty = await client.get("/app/creneaux")
    assert empty.status_code == 200
    _no_inline_code(empty.text)
    assert '<label for="c-commune">Près de la commune</label>' in empty.text
    assert '<label for="c-rayon">Rayon (km)</label>' in empty.text and 'max="200"' in empty.text

    page = await client.get(
        "/app/creneaux", params={"categorie": "consultation", "commune": "Nice", "rayon": "15"}
    )
    assert page.status_code == 200
    _no_inline_code(page.text)
    text = html.unescape(page.text)
    assert "à moins de 15 km de « Nice »" in text
    assert "Kiné Nice" in text and "Kiné Cagnes Sur Mer" in text
    assert "Kiné Menton" not in text and "Kiné Grasse" not in text and "Kiné Ville Inconnue" not in text
    assert "<td>0,0 km</td>" in text and "<td>10,6 km</td>" in text
    links = _booking_links(page.text)
    assert links
    form = await client.get(links[min(links)])
    assert form.status_code == 200 and "Réserver ce créneau" in form.text

    wider = html.unescape((await client.get("/app/creneaux", params={"commune": "Nice", "rayon": "35"})).text)
    assert "Kiné Menton" in wider and "Kiné Grasse" in wider

    ambiguous = await client.get("/app/creneaux", params={"commune": "Saint-Denis"})
    assert ambiguous.status_code == 200
    said = html.unescape(ambiguous.text)
    assert 'role="alert"' in said and "« Saint-Denis » désigne plusieurs communes" in said
    assert "Saint-Denis (974)" in said and "<table>" not in said
    radius_alone = html.unescape((await client.get("/app/creneaux", params={"rayon": "10"})).text)
    assert "Indiquez la commune autour de laquelle chercher" in radius_alone
