"""Patient dossiers through the real app: creation, identity status, duplicates, search, versions."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.patients.support import (
    VALID_NIR_F,
    add_circle_member,
    audit_actions,
    create_patient,
    patient_body,
)
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

MINIMAL_KEYS = {
    "id",
    "birth_name",
    "first_birth_first_name",
    "used_name",
    "used_first_name",
    "birth_date",
    "sex",
    "identity_status",
    "status",
    "is_member",
}


@pytest.fixture
async def alice(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(db, tokens, localpart="alice", national_id="810000000001")


@pytest.fixture
async def bob(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(
        db, tokens, localpart="bob", national_id="810000000002", family_name="BERNARD", given_name="Bob"
    )


async def test_creation_makes_the_creator_the_first_authorised_member(
    client: httpx.AsyncClient, alice: Pro, db: AsyncSession
) -> None:
    created = await create_patient(client, alice, used_name="Martin", ins_number=VALID_NIR_F)
    assert created["version"] == 1
    assert created["identity_status"] == "provisoire"
    assert created["first_birth_first_name"] == "Marie"
    assert created["ins_kind"] == "NIR"
    assert created["status"] == "active"

    circle = await client.get(f"/api/v1/patients/{created['id']}/circle", headers=alice.headers)
    assert circle.status_code == 200
    [member] = circle.json()["items"]
    assert (member["national_id"], member["habilite"], member["has_access"]) == (
        alice.national_id,
        True,
        True,
    )
    assert ("patient.created", alice.national_id) in await audit_actions(db, created["id"])


@pytest.mark.parametrize(
    ("checks", "status"),
    [
        ({}, "provisoire"),
        ({"insi": {}}, "recuperee"),
        ({"identity_document": {"document_type": "CNI"}}, "validee"),
        ({"insi": {}, "identity_document": {"document_type": "passeport"}}, "qualifiee"),
        (
            {
                "insi": {},
                "identity_document": {"document_type": "passeport"},
                "attributes": {"douteuse": True},
            },
            "provisoire",
        ),
        (
            {"identity_document": {"document_type": "titre de séjour"}, "attributes": {"fictive": True}},
            "provisoire",
        ),
    ],
)
async def test_identity_status_is_computed_from_the_checks(
    client: httpx.AsyncClient, alice: Pro, checks: dict[str, object], status: str
) -> None:
    created = await create_patient(client, alice, **checks)
    assert created["identity_status"] == status
    if "identity_document" in checks:
        assert created["identity_document"]["checked_by"] == alice.national_id
    if "insi" in checks:
        assert created["insi"]["retrieved_by"] == alice.national_id
    expected_forced = [k for k, v in dict(checks.get("attributes") or {}).items() if v]  # type: ignore[call-overload]
    assert created["identity_status_forced_by"] == expected_forced


async def test_the_client_cannot_send_the_status(client: httpx.AsyncClient, alice: Pro) -> None:
    resp = await client.post(
        "/api/v1/patients", json=patient_body(identity_status="qualifiee"), headers=alice.headers
    )
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "identity_status"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ins_number": "269054958815781"}, "ins_number"),  # wrong key
        ({"ins_number": "169054958815780"}, "ins_number"),  # right length, sex digit 1 for F + key
        ({"sex": "M", "ins_number": VALID_NIR_F}, "ins_number"),
        ({"birth_place_code": "6088"}, "birth_place_code"),
        ({"birth_place_code": "2C123"}, "birth_place_code"),
        ({"sex": "X"}, "sex"),
        ({"birth_first_names": []}, "birth_first_names"),
        ({"birth_name": "D" * 101}, "birth_name"),
        ({"birth_name": "DUP0NT"}, "birth_name"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"birth_date": "1066-10-14"}, "birth_date"),
        ({"birth_date": "99999-01-01"}, "birth_date"),
        ({"birth_date": "1969-02-30"}, "birth_date"),
        ({"address": "1 rue\x00 du Port"}, "address"),
        ({"address": "x" * 100_000}, "address"),
        (
            {"consent": {"given": True, "mode": "oral", "recorded_at": "2024-01-01T10:00:00"}},
            "consent.recorded_at",
        ),
        ({"consent": {"given": True, "mode": "télépathie"}}, "consent.mode"),
        ({"identity_document": {"document_type": "permis de conduire"}}, "identity_document.document_type"),
        ({"insi": {"retrieved_at": "2999-01-01T10:00:00+00:00"}}, "insi.retrieved_at"),
    ],
)
async def test_bad_input_answers_422_with_the_field_in_french(
    client: httpx.AsyncClient, alice: Pro, overrides: dict[str, object], field: str
) -> None:
    resp = await client.post("/api/v1/patients", json=patient_body(**overrides), headers=alice.headers)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["errcode"] == "AZ_INVALID"
    assert field in [f["field"] for f in body["fields"]]
    assert "Saisie invalide" in body["error"] or "invalide" in body["error"].lower() or body["error"]


async def test_ins_with_spaces_and_corsican_birthplace_is_accepted(
    client: httpx.AsyncClient, alice: Pro
) -> None:
    created = await create_patient(
        client, alice, ins_number="2 69 05 49 588 157 80", birth_place_code="2a004"
    )
    assert created["ins_number"] == VALID_NIR_F
    assert created["birth_place_code"] == "2A004"


async def test_identical_traits_answer_409_with_candidates_then_confirmation_marks_homonyme(
    client: httpx.AsyncClient, alice: Pro, bob: Pro, db: AsyncSession
) -> None:
    first = await create_patient(client, alice, used_name="Martin")
    resp = await client.post(
        "/api/v1/patients",
        json=patient_body(birth_name="Dupont", birth_first_names=["marie"]),
        headers=bob.headers,
    )
    assert resp.status_code == 409
    body = resp.json()
    assert body["errcode"] == "AZ_DUPLICATE_SUSPECTED"
    assert "confirm_duplicate" in body["error"]
    [candidate] = body["candidates"]
    assert candidate["id"] == first["id"] and candidate["match"] == "identique"
    assert candidate["is_member"] is False
    assert set(candidate) == MINIMAL_KEYS | {"match"}
    assert ("patient.duplicate_candidate", bob.national_id) in await audit_actions(db, first["id"])

    confirmed = await client.post(
        "/api/v1/patients", json=patient_body(confirm_duplicate=True), headers=bob.headers
    )
    assert confirmed.status_code == 201
    assert confirmed.json()["attributes"]["homonyme"] is True
    assert confirmed.json()["identity_status"] == "provisoire"
    assert confirmed.json()["identity_status_forced_by"] == ["homonyme"]
    # The existing dossier is flagged too, and the change is traced in its audit trail.
    again = await client.get(f"/api/v1/patients/{first['id']}", headers=alice.headers)
    assert again.json()["attributes"]["homonyme"] is True
    assert ("patient.homonym_flagged", bob.national_id) in await audit_actions(db, first["id"])


async def test_homonym_differs_by_sex_or_birthplace(client: httpx.AsyncClient, alice: Pro) -> None:
    await create_patient(client, alice)
    resp = await client.post(
        "/api/v1/patients", json=patient_body(birth_place_code="13055", sex="M"), headers=alice.headers
    )
    assert resp.status_code == 409
    [candidate] = resp.json()["candidates"]
    assert candidate["match"] == "homonyme" and candidate["is_member"] is True

    other_person = await client.post(
        "/api/v1/patients", json=patient_body(birth_first_names=["Louise"]), headers=alice.headers
    )
    assert other_person.status_code == 201  # another first first name: not a homonym
    assert other_person.json()["attributes"]["homonyme"] is False


async def test_same_ins_is_never_confirmable(client: httpx.AsyncClient, alice: Pro) -> None:
    await create_patient(client, alice, ins_number=VALID_NIR_F)
    resp = await client.post(
        "/api/v1/patients",
        json=patient_body(birth_name="AUTRE", ins_number=VALID_NIR_F, confirm_duplicate=True),
        headers=alice.headers,
    )
    assert resp.status_code == 409
    assert [c["match"] for c in resp.json()["candidates"]] == ["meme_ins"]


async def test_search_answers_the_minimal_identity_and_audits_every_hit(
    client: httpx.AsyncClient, alice: Pro, bob: Pro, db: AsyncSession
) -> None:
    mine = await create_patient(client, alice, birth_name="LÉGER", used_name="Dupré")
    theirs = await create_patient(client, bob, birth_name="Legendre", birth_first_names=["Paul"], sex="M")
    await create_patient(client, bob, birth_name="MARTIN")

    resp = await client.get("/api/v1/patients", params={"q": "lég"}, headers=alice.headers)
    assert resp.status_code == 200
    results = resp.json()["items"]
    assert [r["id"] for r in results] == [theirs["id"], mine["id"]]  # LEGENDRE < LEGER
    assert all(set(r) == MINIMAL_KEYS for r in results)
    assert {r["id"]: r["is_member"] for r in results} == {mine["id"]: True, theirs["id"]: False}

    by_used_name = await client.get("/api/v1/patients", params={"q": "DUPRE"}, headers=bob.headers)
    assert [r["id"] for r in by_used_name.json()["items"]] == [mine["id"]]

    with_date = await client.get(
        "/api/v1/patients", params={"q": "leg", "birth_date": "1969-05-12"}, headers=alice.headers
    )
    assert len(with_date.json()["items"]) == 2
    none = await client.get(
        "/api/v1/patients", params={"q": "leg", "birth_date": "1970-01-01"}, headers=alice.headers
    )
    assert none.json()["items"] == []

    assert ("patient.search_hit", bob.national_id) in await audit_actions(db, mine["id"])
    assert ("patient.search_hit", alice.national_id) in await audit_actions(db, theirs["id"])


async def test_search_is_truncated_and_needs_three_letters(client: httpx.AsyncClient, alice: Pro) -> None:
    for first in ("Anne", "Berthe", "Claire"):
        await create_patient(client, alice, birth_first_names=[first])
    page = await client.get("/api/v1/patients", params={"q": "dup", "limit": 2}, headers=alice.headers)
    assert len(page.json()["items"]) == 2 and page.json()["next_cursor"] is not None
    rest = await client.get(
        "/api/v1/patients",
        params={"q": "dup", "limit": 2, "cursor": page.json()["next_cursor"]},
        headers=alice.headers,
    )
    seen = [r["id"] for r in page.json()["items"] + rest.json()["items"]]
    assert len(set(seen)) == 3 and rest.json()["next_cursor"] is None

    for q in ("du", "d-'", "", "é1"):
        resp = await client.get("/api/v1/patients", params={"q": q}, headers=alice.headers)
        assert resp.status_code == 422, q
        assert resp.json()["fields"][0]["field"] == "q"
    huge = await client.get("/api/v1/patients", params={"q": "a" * 5000}, headers=alice.headers)
    assert huge.status_code == 422


async def test_read_and_update_need_membership_and_are_audited(
    client: httpx.AsyncClient, alice: Pro, bob: Pro, db: AsyncSession
) -> None:
    created = await create_patient(client, alice)
    pid = created["id"]
    assert (await client.get(f"/api/v1/patients/{pid}", headers=alice.headers)).status_code == 200

    refused = await client.get(f"/api/v1/patients/{pid}", headers=bob.headers)
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("Vous n'êtes pas membre habilité du cercle de soins")
    patch = await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 1, "phone": "0600000000"}, headers=bob.headers
    )
    assert patch.status_code == 403

    unknown = await client.get("/api/v1/patients/00000000-0000-4000-8000-000000000000", headers=alice.headers)
    assert unknown.status_code == 404
    malformed = await client.get("/api/v1/patients/not-a-uuid", headers=alice.headers)
    assert malformed.status_code == 422

    actions = await audit_actions(db, pid)
    assert ("patient.read", alice.national_id) in actions
    assert not any(n == bob.national_id for _, n in actions)


async def test_stale_version_answers_409_and_changes_nothing(client: httpx.AsyncClient, alice: Pro) -> None:
    pid = (await create_patient(client, alice))["id"]
    first = await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 1, "phone": "06 01 02 03 04"}, headers=alice.headers
    )
    assert first.status_code == 200 and first.json()["version"] == 2

    stale = await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 1, "phone": "0699999999"}, headers=alice.headers
    )
    assert stale.status_code == 409
    assert stale.json()["errcode"] == "AZ_STALE_VERSION"
    assert "rechargez" in stale.json()["error"]
    current = (await client.get(f"/api/v1/patients/{pid}", headers=alice.headers)).json()
    assert current["phone"] == "+33601020304" and current["version"] == 2

    missing = await client.patch(
        f"/api/v1/patients/{pid}", json={"phone": "0600000000"}, headers=alice.headers
    )
    assert missing.status_code == 422 and missing.json()["fields"][0]["field"] == "version"


async def test_changing_a_strict_trait_withdraws_the_checks(client: httpx.AsyncClient, alice: Pro) -> None:
    created = await create_patient(client, alice, insi={}, identity_document={"document_type": "CNI"})
    assert created["identity_status"] == "qualifiee"
    pid = created["id"]
    contact = await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 1, "email": "marie@example.org"}, headers=alice.headers
    )
    assert contact.json()["identity_status"] == "qualifiee"
    traits = await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 2, "birth_place_code": "13055"}, headers=alice.headers
    )
    assert traits.status_code == 200
    assert traits.json()["identity_status"] == "provisoire"
    assert traits.json()["insi"] is None and traits.json()["identity_document"] is None

    cleared = await client.patch(
        f"/api/v1/patients/{pid}", json={"version": 3, "birth_name": None}, headers=alice.headers
    )
    assert cleared.status_code == 422 and cleared.json()["fields"][0]["field"] == "birth_name"
    sex_vs_ins = await client.patch(
        f"/api/v1/patients/{pid}",
        json={"version": 3, "ins_number": VALID_NIR_F, "sex": "M"},
        headers=alice.headers,
    )
    assert sex_vs_ins.status_code == 422 and sex_vs_ins.json()["fields"][0]["field"] == "ins_number"


async def test_consent_is_recorded_with_author_and_time(client: httpx.AsyncClient, alice: Pro) -> None:
    pid = (await create_patient(client, alice))["id"]
    resp = await client.patch(
        f"/api/v1/patients/{pid}",
        json={
            "version": 1,
            "consent": {"given": True, "mode": "écrit", "recorded_at": "2025-03-01T09:30:00+01:00"},
        },
        headers=alice.headers,
    )
    consent = resp.json()["consent"]
    assert consent["given"] is True and consent["mode"] == "ecrit"
    assert consent["recorded_by"] == alice.national_id
    assert consent["recorded_at"].startswith("2025-03-01T08:30:00")


async def test_sortie_and_reactivation(client: httpx.AsyncClient, alice: Pro) -> None:
    pid = (await create_patient(client, alice))["id"]
    other = await client.post(
        f"/api/v1/patients/{pid}/discharge", json={"version": 1, "reason": "autre"}, headers=alice.headers
    )
    assert other.status_code == 422 and other.json()["fields"][0]["field"] == "note"
    out = await client.post(
        f"/api/v1/patients/{pid}/discharge",
        json={"version": 1, "reason": "déménagement", "date": "2025-01-31"},
        headers=alice.headers,
    )
    assert out.status_code == 200
    assert out.json()["status"] == "sortie"
    assert out.json()["discharge"] == {"reason": "demenagement", "date": "2025-01-31", "note": None}
    again = await client.post(
        f"/api/v1/patients/{pid}/discharge", json={"version": 2, "reason": "décès"}, headers=alice.headers
    )
    assert again.status_code == 409

    back = await client.post(f"/api/v1/patients/{pid}/reactivate", json={"version": 2}, headers=alice.headers)
    assert back.status_code == 200
    assert back.json()["status"] == "active" and back.json()["discharge"] is None
    stale = await client.post(
        f"/api/v1/patients/{pid}/reactivate", json={"version": 2}, headers=alice.headers
    )
    assert stale.status_code == 409


async def test_my_patients_direct_or_through_my_structure(
    client: httpx.AsyncClient, alice: Pro, db: AsyncSession, tokens: FakeTokens
) -> None:
    await add_structure(db, "finess:060000001", "Cabinet infirmier du Port")
    nurse = await add_professional(
        db, tokens, localpart="nurse", national_id="810000000003", structure_ids=("finess:060000001",)
    )
    mine = await create_patient(client, alice)
    shared = await create_patient(client, alice, birth_name="MARTIN")
    await add_circle_member(
        client,
        alice,
        shared["id"],
        kind="structure",
        structure_id="finess:060000001",
        role="infirmier",
        habilite=True,
    )
    await create_patient(client, nurse, birth_name="NURSEPATIENT")

    alice_list = await client.get("/api/v1/patients/mine", headers=alice.headers)
    assert {r["id"] for r in alice_list.json()["items"]} == {mine["id"], shared["id"]}
    nurse_list = await client.get("/api/v1/patients/mine", headers=nurse.headers)
    names = [r["birth_name"] for r in nurse_list.json()["items"]]
    assert names == ["MARTIN", "NURSEPATIENT"]
    assert all(r["is_member"] for r in nurse_list.json()["items"])
    # Through the structure the nurse reads the full dossier too.
    assert (await client.get(f"/api/v1/patients/{shared['id']}", headers=nurse.headers)).status_code == 200

    page = await client.get("/api/v1/patients/mine", params={"limit": 1}, headers=alice.headers)
    assert len(page.json()["items"]) == 1 and page.json()["next_cursor"] is not None
    rest = await client.get(
        "/api/v1/patients/mine",
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
        headers=alice.headers,
    )
    assert {r["id"] for r in page.json()["items"] + rest.json()["items"]} == {mine["id"], shared["id"]}
    assert rest.json()["next_cursor"] is None
