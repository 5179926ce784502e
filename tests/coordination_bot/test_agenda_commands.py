"""« !rdv », « !rdv prendre », « !agenda »: the pure parser, then the handlers against the real app."""

from __future__ import annotations

import re
from datetime import date

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coordination_bot import commands as c
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination_bot.test_handlers import World, linked, world  # noqa: F401  (the fixture)
from tests.support.service import FakeTokens, add_professional, add_structure

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


def test_rdv_parses_a_distance_from_a_commune() -> None:
    def parse(text: str) -> c.Command | c.Refusal | None:
        return c.parse(text, today=TODAY)

    assert parse("!rdv kiné près de Nice 15 km") == c.SlotSearch(
        profession_code="70", near="Nice", within_km=15
    )
    assert parse("!rdv kine pres de Saint-Laurent-du-Var") == c.SlotSearch(
        profession_code="70", near="Saint-Laurent-du-Var"
    )
    assert parse("!rdv consultation à 10 km de Cagnes-sur-Mer") == c.SlotSearch(
        category="consultation", near="Cagnes-sur-Mer", within_km=10
    )
    assert parse("!rdv infirmier dans un rayon de 30 km autour de Grasse") == c.SlotSearch(
        profession_code="60", near="Grasse", within_km=30
    )
    assert parse("!rdv kiné autour d'Antibes") == c.SlotSearch(profession_code="70", near="Antibes")
    assert parse("!rdv près de Saint Laurent 22 kiné") == c.SlotSearch(
        profession_code="70", near="Saint Laurent 22"
    )
    # A radius makes the place the search's centre.
    assert parse("!rdv médecin Nice 5km") == c.SlotSearch(profession_code="10", near="Nice", within_km=5)
    assert parse("!rdv visite 06300 10 km") == c.SlotSearch(
        category="visite_domicile", near="06300", within_km=10
    )
    for text, said in (
        ("!rdv kiné 06 15 km", "Une distance se compte depuis une commune"),
        ("!rdv près de", "Après « près de », donnez une commune"),
        ("!rdv près de Nice 500 km", "donnez entre 1 et 200 km"),
        ("!rdv kiné Cannes près de Nice", "donnez un seul lieu"),
    ):
        refusal = parse(text)
        assert isinstance(refusal, c.Refusal) and said in refusal.message, (text, refusal)
    assert "près de <commune> [N km]" in next(s.syntax for s in c.COMMANDS if s.name == "rdv")


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


async def test_rdv_near_a_commune_lists_the_agendas_within_the_radius_with_their_distance(
    world: World,  # noqa: F811
    client: httpx.AsyncClient,
    db: AsyncSession,
    tokens: FakeTokens,
) -> None:
    for i, (postal_code, city) in enumerate((("06300", "NICE"), ("06500", "MENTON"))):
        sid = f"finess:06000020{i}"
        await add_structure(db, sid, f"Cabinet {city}", postal_code=postal_code, city=city)
        pro = await add_professional(
            db,
            tokens,
            localpart=f"kine{i}",
            national_id=f"81000000020{i}",
            family_name=city,
            given_name="Kiné",
            profession_code="70",
            structure_ids=(sid,),
        )
        await make_agenda(client, pro, name=f"Kiné {city}", structure_id=sid)
    [near] = await world.say(world.alice, "!rdv kiné près de Cagnes-sur-Mer 15 km")
    assert "Prochains créneaux libres à moins de 15 km de Cagnes-sur-Mer (3) :" in near
    assert re.search(r"— Kiné NICE, NICE \((9|10|11|12) km\)", near), near
    assert "MENTON" not in near
    [wider] = await world.say(world.alice, "!rdv kiné à 50 km de Cagnes-sur-Mer")
    assert "Kiné NICE" in wider and "Kiné MENTON" in wider
    [none] = await world.say(world.alice, "!rdv kiné près de Grasse 5 km")
    assert "aucun dans le mois qui vient" in none and "un rayon plus grand" in none
    [ambiguous] = await world.say(world.alice, "!rdv près de Saint-Denis")
    assert "« Saint-Denis » désigne plusieurs communes" in ambiguous and "Saint-Denis (974)" in ambiguous
