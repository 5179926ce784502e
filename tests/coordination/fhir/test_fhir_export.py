"""The FHIR export validates as an R4 Bundle and carries the identity, the circle and the tasks."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import utcnow
from coordination.tasks.models import Task, TaskAssignee
from tests.coordination.patients.support import VALID_NIR_F, add_circle_member, audit_actions, create_patient
from tests.support.service import FakeTokens, add_professional, add_structure


def _by_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


async def _add_task(session: AsyncSession, patient_id: str, creator: str, assignee_key: str) -> uuid.UUID:
    tid = uuid.uuid4()
    now = utcnow()
    session.add(
        Task(
            id=tid,
            patient_id=uuid.UUID(patient_id),
            number=1,
            number_scope=f"patient:{patient_id}",
            title="Organiser la concertation de sortie",
            description="Appeler l'infirmière libérale",
            type="concertation_pluriprofessionnelle",
            status="en_cours",
            priority="haute",
            due_date=date(2031, 3, 1),
            sort_due=date(2031, 3, 1),
            creator_user_id="@alice:azurezo.test",
            creator_national_id=creator,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    session.add(TaskAssignee(task_id=tid, key=assignee_key, status="en_cours", sort_due=date(2031, 3, 1)))
    await session.commit()
    return tid


async def test_export_is_a_valid_r4_bundle_with_patient_careteam_and_tasks(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    await add_structure(db, "finess:060000001", "Cabinet infirmier du Port")
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    created = await create_patient(
        client,
        alice,
        used_name="MARTIN",
        used_first_name="Malou",
        ins_number=VALID_NIR_F,
        birth_place_code="2A004",
        phone="0600000000",
        insi={},
        identity_document={"document_type": "CNI"},
    )
    pid = created["id"]
    await add_circle_member(
        client, alice, pid, kind="structure", structure_id="finess:060000001", role="infirmier", habilite=True
    )
    await add_circle_member(client, alice, pid, kind="relative", name="Paul Dupont", relationship="fils")
    task_id = await _add_task(db, pid, alice.national_id, f"pp:{alice.national_id}")

    resp = await client.get(f"/api/v1/patients/{pid}/fhir", headers=alice.headers)
    assert resp.status_code == 200
    raw = resp.json()
    bundle = Bundle.model_validate(raw)  # the R4 models accept it
    assert bundle.type == "collection"

    [patient] = _by_type(raw, "Patient")
    [ins] = [i for i in patient["identifier"] if i.get("system") == "urn:oid:1.2.250.1.213.1.4.8"]
    assert ins["value"] == VALID_NIR_F
    official = next(n for n in patient["name"] if n["use"] == "official")
    assert official == {"use": "official", "family": "DUPONT", "given": ["Marie", "Louise"]}
    usual = next(n for n in patient["name"] if n["use"] == "usual")
    assert usual == {"use": "usual", "family": "MARTIN", "given": ["Malou"]}
    assert patient["gender"] == "female" and patient["birthDate"] == "1969-05-12"
    exts = {e["url"]: e for e in patient["extension"]}
    birth_place = exts["http://hl7.org/fhir/StructureDefinition/patient-birthPlace"]
    assert birth_place["valueAddress"]["extension"][0]["valueCoding"]["code"] == "2A004"
    reliability = exts["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"]
    status = next(x for x in reliability["extension"] if x["url"] == "identityStatus")
    assert status["valueCoding"]["code"] == "QUAL"

    [team] = _by_type(raw, "CareTeam")
    members = [p["member"] for p in team["participant"]]
    assert {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": alice.national_id} in [
        m.get("identifier") for m in members
    ]
    assert {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "060000001"} in [
        m.get("identifier") for m in members
    ]
    [relative] = _by_type(raw, "RelatedPerson")
    assert relative["name"] == [{"text": "Paul Dupont"}]
    assert {"reference": f"urn:uuid:{relative['id']}", "type": "RelatedPerson"} in members
    assert team["subject"]["reference"] == f"urn:uuid:{pid}"

    [task] = _by_type(raw, "Task")
    assert task["id"] == str(task_id)
    assert (task["status"], task["intent"], task["priority"]) == ("in-progress", "order", "urgent")
    assert task["for"]["reference"] == f"urn:uuid:{pid}"
    assert task["owner"]["identifier"]["value"] == alice.national_id
    assert task["restriction"]["period"]["end"] == "2031-03-01"

    assert ("patient.fhir_export", alice.national_id) in await audit_actions(db, pid)


async def test_homonym_and_unknown_ins_export(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    pid = (
        await create_patient(client, alice, attributes={"homonyme": True}, birth_place_code="99134", sex="I")
    )["id"]
    raw = (await client.get(f"/api/v1/patients/{pid}/fhir", headers=alice.headers)).json()
    Bundle.model_validate(raw)
    [patient] = _by_type(raw, "Patient")
    assert all(i.get("system") != "urn:oid:1.2.250.1.213.1.4.8" for i in patient["identifier"])
    assert patient["gender"] == "other"
    codes = [
        x["valueCoding"]["code"]
        for e in patient["extension"]
        if e["url"].endswith("fr-core-identity-reliability")
        for x in e["extension"]
    ]
    assert codes == ["PROV", "homonyme"]
    assert _by_type(raw, "Task") == []


async def test_ins_is_not_exported_before_the_identity_is_qualified(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    # INSi retrieval without an identity-document check: "récupérée", not "qualifiée".
    created = await create_patient(client, alice, ins_number=VALID_NIR_F, insi={})
    resp = await client.get(f"/api/v1/patients/{created['id']}/fhir", headers=alice.headers)
    assert resp.status_code == 200
    [patient] = _by_type(resp.json(), "Patient")
    assert all(i.get("system") != "urn:oid:1.2.250.1.213.1.4.8" for i in patient["identifier"])
    reliability = next(e for e in patient["extension"] if e["url"].endswith("fr-core-identity-reliability"))
    status = next(x for x in reliability["extension"] if x["url"] == "identityStatus")
    assert status["valueCoding"]["code"] == "RECUP"
