"""Directory service and HTTP edges: bindings, the internal lookup for Synapse, the public search."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.directory import service
from coordination.errors import Conflict, Forbidden, NotFound
from ror_sync.importer import import_fhir, import_rpps
from tests.support.service import FakeTokens, add_professional

DEMO = Path(__file__).resolve().parents[3] / "config" / "demo"
SECRET = {"Authorization": "Bearer " + "t" * 48}
JEANNE = "819990000010"  # Dr Jeanne Martin-Roux in the demo directory
FABRE = "819990000069"


@pytest.fixture
async def demo(database_url: str) -> None:
    await asyncio.to_thread(import_rpps, database_url, DEMO / "rpps_demo.txt")
    await asyncio.to_thread(import_fhir, database_url, [str(DEMO / "ror_demo_bundle.json")])


async def test_demo_directory_imports_cleanly(database_url: str, db: AsyncSession) -> None:
    rpps = await asyncio.to_thread(import_rpps, database_url, DEMO / "rpps_demo.txt")
    fhir = await asyncio.to_thread(import_fhir, database_url, [str(DEMO / "ror_demo_bundle.json")])
    assert (rpps.lines, rpps.persons.added, rpps.rejected) == (45, 30, 0)
    assert fhir.rejected == 0 and fhir.persons.added == 2  # the two social workers (not in RPPS)
    dacs = await service.search_structures(session=db, text="DAC", dac_only=True)
    assert [d.name for d in dacs] == ["DAC 06 - Alpes-Maritimes", "DAC 13 - Bouches-du-Rhône"]
    coordinators = await service.structure_members(session=db, structure_id=dacs[1].structure_id)
    # An RPPS nurse keeps his RPPS card and gains the DAC activity from the ROR.
    assert sorted(c.family_name for c in coordinators) == ["AMRANI", "BENSAÏD"]


async def test_bind_account_rules(db: AsyncSession, demo: None, tokens: FakeTokens) -> None:
    with pytest.raises(NotFound, match="n'est pas dans l'annuaire"):
        await service.bind_account(session=db, national_id="810000000000", user_id="@x:t")
    card = await service.bind_account(session=db, national_id=JEANNE, user_id="@jm:t")
    assert card.display_name == "Dr Jeanne MARTIN-ROUX"
    again = await service.bind_account(session=db, national_id=JEANNE, user_id="@jm:t")
    assert again.national_id == JEANNE  # idempotent
    with pytest.raises(Conflict, match="déjà un compte"):
        await service.bind_account(session=db, national_id=JEANNE, user_id="@other:t")
    with pytest.raises(Conflict, match="déjà rattaché"):
        await service.bind_account(session=db, national_id="819990000093", user_id="@jm:t")
    status = await service.binding_for_user(session=db, user_id="@jm:t")
    assert status is not None and status.active and status.national_id == JEANNE
    assert await service.binding_for_user(session=db, user_id="@nobody:t") is None


async def test_bind_account_refuses_a_delisted_professional(
    database_url: str, db: AsyncSession, demo: None, tmp_path: Path
) -> None:
    lines = (DEMO / "rpps_demo.txt").read_text(encoding="utf-8").splitlines()
    without = tmp_path / "sans_fabre.txt"
    without.write_text("\n".join(ln for ln in lines if FABRE not in ln) + "\n", encoding="utf-8")
    report = await asyncio.to_thread(import_rpps, database_url, without)
    assert report.persons.deactivated == 1
    with pytest.raises(Forbidden, match="n'est plus actif"):
        await service.bind_account(session=db, national_id=FABRE, user_id="@ef:t")


async def test_internal_lookup_for_synapse(client: httpx.AsyncClient, db: AsyncSession, demo: None) -> None:
    await service.bind_account(session=db, national_id=JEANNE, user_id="@jm:azurezo.test")
    url = "/internal/v1/directory/matrix-users/@jm:azurezo.test"
    resp = await client.get(url, headers=SECRET)
    assert resp.status_code == 200
    assert resp.json() == {
        "user_id": "@jm:azurezo.test",
        "national_id": JEANNE,
        "active": True,
        "display_name": "Dr Jeanne MARTIN-ROUX",
    }
    missing = await client.get("/internal/v1/directory/matrix-users/@nope:azurezo.test", headers=SECRET)
    assert missing.status_code == 404 and missing.json()["errcode"] == "AZ_NOT_BOUND"
    for headers in ({}, {"Authorization": "Bearer " + "x" * 48}, {"Authorization": "t" * 48}):
        assert (await client.get(url, headers=headers)).status_code == 401
    schema = (await client.get("/openapi.json")).json()
    assert not any(p.startswith("/internal") for p in schema["paths"])
    assert "/api/v1/directory/persons" in schema["paths"]


async def test_public_search_needs_an_active_bound_professional(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, demo: None
) -> None:
    assert (await client.get("/api/v1/directory/persons?q=martin")).status_code == 401
    stranger = tokens.issue("@stranger:azurezo.test")
    resp = await client.get(
        "/api/v1/directory/persons?q=martin", headers={"Authorization": f"Bearer {stranger}"}
    )
    assert resp.status_code == 403
    delisted = await add_professional(db, tokens, localpart="old", national_id="810000000001", active=False)
    resp = await client.get("/api/v1/directory/persons?q=martin", headers=delisted.headers)
    assert resp.status_code == 403 and resp.json()["errcode"] == "AZ_INACTIVE"


async def test_public_search_and_cards(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, demo: None
) -> None:
    await service.bind_account(session=db, national_id=JEANNE, user_id="@jm:azurezo.test")
    headers = {"Authorization": f"Bearer {tokens.issue('@jm:azurezo.test')}"}

    resp = await client.get("/api/v1/directory/persons", params={"q": "martin-rou"}, headers=headers)
    assert resp.status_code == 200
    [card] = resp.json()["items"]
    assert resp.json()["next_cursor"] is None
    assert card["national_id"] == JEANNE and card["profession_code"] == "10"
    assert {s["city"] for s in card["sites"]} == {"NICE"} and len(card["sites"]) == 2

    by_rpps = await client.get("/api/v1/directory/persons", params={"q": JEANNE[1:]}, headers=headers)
    assert [c["national_id"] for c in by_rpps.json()["items"]] == [JEANNE]

    short = await client.get("/api/v1/directory/persons", params={"q": "m"}, headers=headers)
    assert short.status_code == 422 and "au moins 2" in short.json()["error"]

    one = await client.get(f"/api/v1/directory/persons/{JEANNE}", headers=headers)
    assert one.status_code == 200 and one.json()["family_name"] == "MARTIN-ROUX"
    unknown = await client.get("/api/v1/directory/persons/810000000000", headers=headers)
    assert unknown.status_code == 404 and "Aucun professionnel" in unknown.json()["error"]

    dacs = await client.get(
        "/api/v1/directory/structures", params={"q": "dac", "dac": "true"}, headers=headers
    )
    names = ["DAC 06 - Alpes-Maritimes", "DAC 13 - Bouches-du-Rhône"]
    assert [s["name"] for s in dacs.json()["items"]] == names
    sid = dacs.json()["items"][0]["structure_id"]
    assert (await client.get(f"/api/v1/directory/structures/{sid}", headers=headers)).json()["is_dac"]
    gone = await client.get("/api/v1/directory/structures/finess:000000000", headers=headers)
    assert gone.status_code == 404


async def test_every_list_pages_with_a_cursor(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, demo: None
) -> None:
    """Searches and structure members answer the one page shape; following ``next_cursor`` one by
    one gives the same list as one big page, and a foreign cursor is a French 422."""
    await service.bind_account(session=db, national_id=JEANNE, user_id="@jm:azurezo.test")
    headers = {"Authorization": f"Bearer {tokens.issue('@jm:azurezo.test')}"}
    dac = (await service.search_structures(session=db, text="DAC", dac_only=True))[1].structure_id
    for url, params in (
        ("/api/v1/directory/persons", {"q": "ma"}),
        ("/api/v1/directory/structures", {"q": "dac"}),
        (f"/api/v1/directory/structures/{dac}/members", {}),
    ):
        whole = await client.get(url, params=params | {"limit": 200}, headers=headers)
        assert whole.status_code == 200, whole.text
        expected = whole.json()["items"]
        assert len(expected) >= 2 and whole.json()["next_cursor"] is None
        seen: list[object] = []
        cursor = None
        while True:
            page = await client.get(
                url, params=params | {"limit": 1} | ({"cursor": cursor} if cursor else {}), headers=headers
            )
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, url
        bad = await client.get(url, params=params | {"cursor": "eyJvIjotMX0"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "cursor", bad.text
