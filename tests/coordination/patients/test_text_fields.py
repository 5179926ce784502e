"""Issue 6 item 5 for patients: names typed in Unicode NFD are read as NFC; control characters are
refused with a French 422 (PostgreSQL answered 500 on NUL, SQLite stored it)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.patients.support import create_patient, patient_body
from tests.support.service import FakeTokens, add_professional


async def test_nfd_names_are_accepted_as_nfc_and_found(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    created = await create_patient(
        client, alice, birth_name="HE\u0301BERT", birth_first_names=["E\u0301lodie"], used_name="Le\u0301ger"
    )
    assert created["birth_name"] == "H\u00c9BERT"  # one code point: É
    assert created["birth_first_names"] == ["\u00c9lodie"]
    assert created["used_name"] == "L\u00e9ger"
    # The same person typed in NFC is a duplicate of the NFD one, not a new identity.
    again = await client.post(
        "/api/v1/patients",
        json=patient_body(birth_name="HÉBERT", birth_first_names=["Élodie"]),
        headers=alice.headers,
    )
    assert again.status_code == 409 and again.json()["candidates"][0]["id"] == created["id"]
    found = await client.get("/api/v1/patients", params={"q": "he\u0301bert"}, headers=alice.headers)
    assert [p["id"] for p in found.json()["items"]] == [created["id"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("birth_name", "DUP\x00ONT"),
        ("address", "12 rue\x00 du Port"),
        ("address", "12 rue\x07 du Port"),
        ("used_name", "MAR\u0085TIN"),
    ],
)
async def test_control_characters_are_refused(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, field: str, value: str
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    resp = await client.post("/api/v1/patients", json=patient_body(**{field: value}), headers=alice.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["fields"][0]["field"] == field


async def test_multi_line_address_is_kept(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    created = await create_patient(client, alice, address="Résidence Les Pins\n12 rue du Port\n06000 Nice")
    assert created["address"].splitlines()[1] == "12 rue du Port"
