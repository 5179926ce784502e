"""``!plan``, ``!eval`` and the timeline in ``!synthese``, against the real service (see test_handlers)."""

from __future__ import annotations

import httpx

from coordination.evaluations import aggir
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination.patients.support import add_circle_member
from tests.coordination_bot.test_handlers import World, linked, world  # noqa: F401  (the fixture)

GIR4 = {v: "A" for v in aggir.VARIABLES} | {"toilette": "B", "habillage": "B"}


async def test_plan_lists_the_open_actions(world: World, client: httpx.AsyncClient) -> None:  # noqa: F811
    pid = await linked(world, client)
    [none] = await world.say(world.alice, "!plan")
    assert "pas encore de plan personnalisé" in none
    consent = await client.patch(
        f"/api/v1/patients/{pid}",
        json={"version": 1, "consent": {"given": True, "mode": "oral"}},
        headers=world.alice.headers,
    )
    assert consent.status_code == 200, consent.text
    await add_circle_member(
        client,
        world.alice,
        pid,
        kind="professional",
        national_id=world.paul.national_id,
        role="IDE",
        habilite=True,
    )
    plan = {
        "version": 0,
        "next_review_date": "2027-01-15",
        "actions": [
            {
                "title": "Passage infirmier quotidien",
                "responsible_national_id": world.paul.national_id,
                "deadline": "2026-12-10",
                "create_task": True,
            },
            {"title": "Dossier APA", "responsible_other": "la fille", "status": "en_cours"},
            {"title": "Bilan de chute", "status": "realisee"},
        ],
    }
    saved = await client.put(f"/api/v1/patients/{pid}/plan", json=plan, headers=world.alice.headers)
    assert saved.status_code == 200, saved.text
    [reply] = await world.say(world.alice, "!plan")
    assert "Plan personnalisé (version 1, révision le 15/01/2027) — actions ouvertes (2)" in reply
    assert "Passage infirmier quotidien — Paul DURAND — avant le 10/12/2026 — À faire — tâche n° 1" in reply
    assert "Dossier APA — la fille — En cours" in reply
    assert "Bilan de chute" not in reply
    [attached] = await world.say(world.alice, "!plan pdf")
    assert "PPCS" in attached
    [pdf] = world.gateway.files
    assert (pdf.filename, pdf.mimetype) == ("ppcs.pdf", "application/pdf") and pdf.data.startswith(b"%PDF")
    [refused] = await world.say(world.stranger, "!plan")
    assert "habilité" in refused


async def test_eval_gives_the_last_scores_with_their_dates(world: World, client: httpx.AsyncClient) -> None:  # noqa: F811
    pid = await linked(world, client)
    [none] = await world.say(world.alice, "!eval")
    assert "Aucune évaluation signée" in none
    url = f"/api/v1/patients/{pid}/evaluations"
    for body in (
        {"form_id": "mini-zarit", "answers": {f"q{n}": "parfois" for n in range(1, 8)}, "sign": True},
        {"form_id": "mini-zarit", "answers": {f"q{n}": "souvent" for n in range(1, 8)}, "sign": True},
        {"form_id": "aggir", "answers": GIR4, "sign": True},
    ):
        resp = await client.post(url, json=body, headers=world.alice.headers)
        assert resp.status_code == 201, resp.text
    [reply] = await world.say(world.alice, "!eval")
    lines = [line for line in reply.splitlines() if "le " in line]
    assert "Grille AGGIR" in lines[0] and "GIR 4" in lines[0]
    assert "Mini-Zarit" in lines[1] and "7 / 7 : fardeau sévère (évolution : +3.5)" in lines[1]
    assert "3.5 / 7" not in reply  # only the last score of each form


async def test_synthese_shows_the_recent_timeline(world: World, client: httpx.AsyncClient) -> None:  # noqa: F811
    pid = await linked(world, client)
    event = await client.post(
        f"/api/v1/patients/{pid}/timeline/events",
        json={"kind": "hospitalisation", "occurred_on": "2026-11-20", "title": "CH de Nice, gériatrie"},
        headers=world.alice.headers,
    )
    assert event.status_code == 201, event.text
    [reply] = await world.say(world.alice, "!synthese")
    assert "Évolution récente :" in reply
    assert "20/11/2026 — Hospitalisation : CH de Nice, gériatrie" in reply


async def test_synthese_shows_the_appointments_of_the_timeline(
    world: World,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    pid = await linked(world, client)
    setup = await make_agenda(client, world.alice, name="Cabinet du Port")
    booked = await book(client, world.alice, setup, local(setup.monday, "09:30"), patient_id=str(pid))
    assert booked.status_code == 201, booked.text
    [reply] = await world.say(world.alice, "!synthese")
    assert (
        f"Rendez-vous planifié : Consultation le {setup.monday:%d/%m/%Y} à 09:30 (Cabinet du Port)" in reply
    )
    assert "(Statut : Réservé)" in reply


async def test_plan_shows_the_appointment_linked_to_an_action(
    world: World,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    pid = await linked(world, client)
    consent = await client.patch(
        f"/api/v1/patients/{pid}",
        json={"version": 1, "consent": {"given": True, "mode": "oral"}},
        headers=world.alice.headers,
    )
    assert consent.status_code == 200, consent.text
    setup = await make_agenda(client, world.alice, name="Cabinet du Port")
    booked = await book(client, world.alice, setup, local(setup.monday, "09:30"), patient_id=str(pid))
    assert booked.status_code == 201, booked.text
    plan = {"version": 0, "actions": [{"title": "Bilan de chute", "appointment_id": booked.json()["id"]}]}
    saved = await client.put(f"/api/v1/patients/{pid}/plan", json=plan, headers=world.alice.headers)
    assert saved.status_code == 200, saved.text
    [reply] = await world.say(world.alice, "!plan")
    assert f"Bilan de chute — À faire — rendez-vous lundi {setup.monday:%d/%m} à 09:30 (Réservé)" in reply
