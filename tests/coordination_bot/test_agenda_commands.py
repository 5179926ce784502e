"""« !rdv », « !rdv prendre », « !agenda »: the pure parser, then the handlers against the real app."""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coordination_bot import commands as c
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination_bot.test_handlers import World, linked, world  # noqa: F401  (the fixture)

TODAY = date(2026, 11, 29)


def test_rdv_parses_type_profession_and_place() -> None:
    assert c.parse("!rdv consultation infirmière 06", today=TODAY) == c.SlotSearch(
        category="consultation", profession_code="60", department="06"
    )
    assert c.parse("!RDV visite kiné 06300", today=TODAY) == c.SlotSearch(
        category="visite_domicile", profession_code="70", postal_code="06300"
    )
    assert c.parse("!rdv médecin Saint-Laurent-du-Var", today=TODAY) == c.SlotSearch(
        profession_code="10", city="Saint-Laurent-du-Var"
    )
    assert c.parse("!rdv", today=TODAY) == c.SlotSearch()
    assert c.parse("!rdv prendre 3", today=TODAY) == c.SlotTake(3)
    refusal = c.parse("!rdv prendre", today=TODAY)
    assert isinstance(refusal, c.Refusal) and "numéro du créneau" in refusal.message


def test_agenda_parses_a_day() -> None:
    assert c.parse("!agenda", today=TODAY) == c.AgendaDay(TODAY)
    assert c.parse("!agenda demain", today=TODAY) == c.AgendaDay(date(2026, 11, 30))
    assert c.parse("!agenda 02/03", today=TODAY) == c.AgendaDay(date(2026, 3, 2))
    bad = c.parse("!agenda 30/02", today=TODAY)
    assert isinstance(bad, c.Refusal) and "JJ/MM" in bad.message


async def test_rdv_then_prendre_books_for_the_rooms_patient(
    world: World,  # noqa: F811
    client: httpx.AsyncClient,
    db: AsyncSession,
) -> None:
    patient_id = await linked(world, client)  # Alice created the dossier: an authorised member
    setup = await make_agenda(client, world.paul, name="Cabinet infirmier Durand")
    [listing] = await world.say(world.alice, "!rdv consultation")
    assert "Prochains créneaux libres (3)" in listing
    first = local(setup.monday, "09:00")
    assert f"n° 1 : lundi {first:%d/%m} à 09:00 — Consultation — Paul DURAND" in listing
    [booked] = await world.say(world.alice, "!rdv prendre 1")
    expected = f"lundi {first:%d/%m} à 09:00 — Consultation — Cabinet infirmier Durand."
    assert booked == f"Rendez-vous réservé pour le patient du salon : {expected}"
    page = await client.get(f"/api/v1/patients/{patient_id}/appointments", headers=world.alice.headers)
    [appt] = page.json()["items"]
    assert (
        appt["start_local"].startswith(f"{setup.monday}T09:00")
        and appt["booked_by_user_id"] == world.alice.user_id
    )
    # Paul's day shows it; a day without appointments says so.
    [day] = await world.say(world.paul, f"!agenda {setup.monday:%d/%m/%Y}")
    assert "(1)" in day and "09:00 Consultation — Cabinet infirmier Durand (Réservé)" in day
    [empty] = await world.say(world.paul, "!agenda 01/01/2030")
    assert "aucun rendez-vous" in empty
    # The list was used: a second « prendre » asks for a new search.
    [again] = await world.say(world.alice, "!rdv prendre 1")
    assert "lancez d'abord « !rdv »" in again


async def test_a_slot_taken_meanwhile_gets_new_offers_and_outsiders_cannot_name_the_patient(
    world: World,  # noqa: F811
    client: httpx.AsyncClient,
) -> None:
    await linked(world, client)
    setup = await make_agenda(client, world.paul, name="Cabinet Durand")
    [listing] = await world.say(world.alice, "!rdv")
    assert "n° 1" in listing
    # Someone else takes Alice's n° 1 (09:00) before she does.
    assert (await book(client, world.stranger, setup, local(setup.monday, "09:00"))).status_code == 201
    [reply] = await world.say(world.alice, "!rdv prendre 1")
    assert "vient d'être réservé" in reply and "Nouveaux créneaux (3)" in reply
    assert f"lundi {local(setup.monday, '09:30'):%d/%m} à 09:30" in reply
    # The stranger is not in the patient's circle: in this room « prendre » names the patient, refused.
    [listing] = await world.say(world.stranger, "!rdv")
    [refused] = await world.say(world.stranger, "!rdv prendre 1")
    assert "pas membre habilité du cercle de soins" in refused
