"""The slot search by distance from a commune, through the real app (SQLite, or PostgreSQL when
AZUREZO_TEST_POSTGRES_URL is set): agendas at known distances from Nice, the 422s, the migration that
places the existing agendas. The dashboard's search page: tests/coordination/web/test_agenda_pages.py;
the bot's « !rdv … près de »: tests/coordination_bot/test_agenda_commands.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.agenda import service
from coordination.agenda.models import Agenda
from coordination.db import make_engine
from coordination.migrate import upgrade_to_head_async
from tests.coordination.agenda.support import AgendaSetup, local, make_agenda
from tests.support.service import FakeTokens, Pro, add_professional, add_structure, fresh_database_url

# Structures as the RPPS writes their place; their town halls' distances from Nice's, as the crow
# flies: Cagnes-sur-Mer 10.6 km, Menton 20.6 km, Grasse 28.3 km.
PLACES = {
    "nice": ("finess:060000101", "Cabinet du Port", "06300", "NICE"),
    "cagnes": ("finess:060000102", "Maison de santé de Cagnes", "06800", "CAGNES SUR MER"),
    "menton": ("finess:060000103", "Cabinet de Garavan", "06500", "MENTON"),
    "grasse": ("finess:060000104", "Cabinet des Parfums", "06130", "GRASSE"),
    "nowhere": ("finess:060000105", "Cabinet sans adresse connue", "06999", "VILLE INCONNUE"),
}
# Different opening days, so the first availability orders them: Cagnes and Grasse on Monday, Nice
# on Tuesday, Menton on Wednesday, the unplaced one on Monday.
DAYS = {"nice": "TU", "cagnes": "MO", "menton": "WE", "grasse": "MO", "nowhere": "MO"}


@dataclass
class Geo:
    pros: dict[str, Pro]
    agendas: dict[str, AgendaSetup]
    searcher: Pro


@pytest.fixture
async def placed(client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens) -> Geo:
    pros: dict[str, Pro] = {}
    agendas: dict[str, AgendaSetup] = {}
    for i, (key, (sid, name, postal_code, city)) in enumerate(PLACES.items()):
        await add_structure(db, sid, name, postal_code=postal_code, city=city)
        pros[key] = await add_professional(
            db,
            tokens,
            localpart=key,
            national_id=f"81000000010{i}",
            profession_code="70",
            structure_ids=(sid,),
        )
        agendas[key] = await make_agenda(
            client,
            pros[key],
            name=f"Kiné {city.title()}",
            structure_id=sid,
            rrule=f"FREQ=WEEKLY;BYDAY={DAYS[key]}",
        )
    searcher = await add_professional(db, tokens, localpart="searcher", national_id="810000000199")
    return Geo(pros, agendas, searcher)


async def _search(client: httpx.AsyncClient, who: Pro, monday: date, **params: object) -> httpx.Response:
    query: dict[str, object] = {
        "per_agenda": 1,
        "category": "consultation",
        "from": local(monday, "00:00").isoformat(),
    }
    return await client.get("/api/v1/slots", params=query | params, headers=who.headers)


def _firsts(resp: httpx.Response) -> list[tuple[str, float | None]]:
    assert resp.status_code == 200, resp.text
    return [(s["agenda_name"], s["distance_km"]) for s in resp.json()["items"]]


async def test_agendas_get_their_communes_point_from_the_directory(placed: Geo, db: AsyncSession) -> None:
    rows = {
        r.name: (r.latitude, r.longitude)
        for r in (await db.execute(sa.select(Agenda.name, Agenda.latitude, Agenda.longitude))).all()
    }
    await db.rollback()
    lat, lon = rows["Kiné Nice"]
    assert lat == pytest.approx(43.70, abs=0.02) and lon == pytest.approx(7.27, abs=0.02)
    assert rows["Kiné Ville Inconnue"] == (None, None)


@pytest.mark.parametrize("few", [16, 0], ids=["agenda_id IN", "bounding box on the scan"])
async def test_only_agendas_within_the_radius_sorted_by_first_availability(
    client: httpx.AsyncClient, placed: Geo, few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of restricting the scan (by agenda for a few agendas, else the bounding box on the
    start-ordered scan and the circle in Python) give the same answers."""
    monkeypatch.setattr(service, "FEW_AGENDAS", few)
    monday = placed.agendas["nice"].monday
    near = _firsts(await _search(client, placed.searcher, monday, near="Nice", within_km=15))
    assert near == [("Kiné Cagnes Sur Mer", 10.6), ("Kiné Nice", 0.0)]  # Monday, then Tuesday
    # Default radius: 20 km (Menton is 20.6 km away).
    default = _firsts(await _search(client, placed.searcher, monday, near="Nice"))
    assert (
        default == near == _firsts(await _search(client, placed.searcher, monday, near="Nice", within_km=20))
    )
    # 25 km: Menton too (Wednesday); 35 km: Grasse too (Monday, so before Nice).
    wider = _firsts(await _search(client, placed.searcher, monday, near="Nice", within_km=25))
    assert [name for name, _ in wider] == ["Kiné Cagnes Sur Mer", "Kiné Nice", "Kiné Menton"]
    widest = _firsts(await _search(client, placed.searcher, monday, near="nice", within_km=35))
    assert {name for name, _ in widest[:2]} == {"Kiné Cagnes Sur Mer", "Kiné Grasse"}
    assert [name for name, _ in widest[2:]] == ["Kiné Nice", "Kiné Menton"]
    assert dict(widest)["Kiné Grasse"] == 28.3 and dict(widest)["Kiné Menton"] == 20.6
    assert [s for s in widest if s[1] is None] == []  # the unplaced agenda is never in a distance search
    # The other filters still apply; the origin may be a postal code or an INSEE code.
    by_code = _firsts(
        await _search(client, placed.searcher, monday, near="06088", within_km=35, department="06")
    )
    assert by_code == widest
    by_postal = _firsts(await _search(client, placed.searcher, monday, near="06800", within_km=5))
    assert by_postal == [("Kiné Cagnes Sur Mer", 0.0)]
    nobody = _firsts(
        await _search(client, placed.searcher, monday, near="Nice", within_km=35, profession_code="10")
    )
    assert nobody == []
    # Without `near`: every agenda, the unplaced one included, no distance.
    everywhere = _firsts(await _search(client, placed.searcher, monday))
    assert len(everywhere) == 5 and {d for _, d in everywhere} == {None}


async def test_the_booking_rules_still_decide_which_agendas_are_found(
    client: httpx.AsyncClient, placed: Geo
) -> None:
    nice = placed.pros["nice"]
    private = await make_agenda(
        client, nice, name="Kiné Nice privé", structure_id=nice.structure_ids[0], booking="personne"
    )
    monday = private.monday
    found = _firsts(await _search(client, placed.searcher, monday, near="Nice", per_agenda=5))
    assert "Kiné Nice privé" not in {name for name, _ in found}
    own = _firsts(await _search(client, nice, monday, near="Nice", per_agenda=5))
    assert "Kiné Nice privé" in {name for name, _ in own}  # its owner books in it


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"near": "Saint-Denis"}, "« Saint-Denis » désigne plusieurs communes"),
        ({"near": "Nulle-Part-sur-Mer"}, "Commune introuvable : « Nulle-Part-sur-Mer »"),
        ({"near": ""}, "Indiquez une commune"),
    ],
)
async def test_a_commune_that_cannot_be_resolved_is_422_in_french(
    client: httpx.AsyncClient, placed: Geo, params: dict[str, str], expected: str
) -> None:
    resp = await client.get("/api/v1/slots", params=params, headers=placed.searcher.headers)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert expected in body["error"]
    assert "Tapez" in body["error"] or "Précisez" in body["error"]


async def test_a_radius_out_of_bounds_is_422(client: httpx.AsyncClient, placed: Geo) -> None:
    for km in ("0", "201", "beaucoup"):
        resp = await client.get(
            "/api/v1/slots", params={"near": "Nice", "within_km": km}, headers=placed.searcher.headers
        )
        assert resp.status_code == 422, (km, resp.text)


async def test_the_migration_places_existing_agendas(tmp_path: Path) -> None:
    """Agendas written before ``agenda_3_geo`` get their commune's point from their postal code and city."""
    meta = sa.MetaData()
    agendas = sa.Table(
        "agendas",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("version", sa.Integer()),
        sa.Column("owner_kind", sa.String(20)),
        sa.Column("name", sa.String(200)),
        sa.Column("visibility", sa.String(20)),
        sa.Column("booking", sa.String(20)),
        sa.Column("requires_confirmation", sa.Boolean()),
        sa.Column("city", sa.String(120)),
        sa.Column("postal_code", sa.String(10)),
        sa.Column("department", sa.String(3)),
        sa.Column("created_by", sa.String(20)),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    places = {
        uuid.uuid4(): ("06700", "ST LAURENT DU VAR"),
        uuid.uuid4(): ("75015", "PARIS"),
        uuid.uuid4(): ("06999", "VILLE INCONNUE"),
        uuid.uuid4(): (None, None),
    }
    at = datetime(2026, 11, 1, tzinfo=UTC)
    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url, revision="agenda_2_free_slots")
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(agendas),
                    [
                        {
                            "id": agenda_id,
                            "version": 1,
                            "owner_kind": "professionnel",
                            "name": f"A{i}",
                            "visibility": "annuaire",
                            "booking": "annuaire",
                            "requires_confirmation": False,
                            "postal_code": postal_code,
                            "city": city,
                            "department": None,
                            "created_by": "810000000001",
                            "created_at": at,
                            "updated_at": at,
                        }
                        for i, (agenda_id, (postal_code, city)) in enumerate(places.items())
                    ],
                )
            await upgrade_to_head_async(url)
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.text("SELECT name, latitude, longitude FROM agendas"))).all()
        finally:
            await engine.dispose()
    points = {name: (lat, lon) for name, lat, lon in rows}
    assert points["A0"][0] == pytest.approx(43.66, abs=0.03)  # Saint-Laurent-du-Var
    assert points["A1"][0] == pytest.approx(48.84, abs=0.02)  # Paris 15e
    assert points["A2"] == (None, None) and points["A3"] == (None, None)
