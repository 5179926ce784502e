"""FHIR R4 export of a dossier: a ``collection`` Bundle with a FR Core-style Patient, the care circle
as a CareTeam (RelatedPerson resources for relatives) and the patient's tasks as Task resources.

Professionals and structures are referenced by their national identifiers (RPPS idNatPS, FINESS),
not copied: the receiver resolves them in the national directory. The Bundle is checked with
``fhir.resources.R4B`` before it leaves, so a malformed export is a bug caught here, not downstream.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle import service as circle
from coordination.circle.models import CircleMember
from coordination.db import utcnow
from coordination.directory import service as directory
from coordination.fhir.schemas import FhirBundleOut
from coordination.ids import PatientId
from coordination.patients import rules
from coordination.patients.models import Patient
from coordination.security import Actor
from coordination.tasks.models import Task
from coordination.vocab import DischargeReason, IdentityDocumentType, IdentityStatus, TaskStatus, parse

logger = logging.getLogger(__name__)

# Identifier systems (ANS / FR Core).
INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA_SYSTEM = "urn:oid:1.2.250.1.213.1.4.9"
IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
STRUCTURE_SYSTEM = "urn:azurezo:structure"  # other directory keys (ror:..., siret:...)
IDENTIFIER_TYPE_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
RELIABILITY_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
RELIABILITY_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445"
ATTRIBUTE_SYSTEM = "urn:azurezo:identity-attribute"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
COMMUNE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
COUNTRY_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R20-Pays/FHIR/TRE-R20-Pays"

_STATUS_CODES = {
    IdentityStatus.PROVISOIRE: ("PROV", "Identité provisoire"),
    IdentityStatus.RECUPEREE: ("RECUP", "Identité récupérée"),
    IdentityStatus.VALIDEE: ("VALI", "Identité validée"),
    IdentityStatus.QUALIFIEE: ("QUAL", "Identité qualifiée"),
}
_GENDER = {"F": "female", "M": "male", "I": "other"}
_TASK_STATUS: dict[str, str] = {
    TaskStatus.A_FAIRE: "requested",
    TaskStatus.EN_COURS: "in-progress",
    TaskStatus.TERMINEE: "completed",
    TaskStatus.ANNULEE: "cancelled",
}
_TASK_PRIORITY = {"basse": "routine", "normale": "routine", "haute": "urgent"}


def _document_label(code: str | None) -> str:
    return parse(IdentityDocumentType, code).label if code else ""


def _ref(resource_id: uuid.UUID) -> str:
    return f"urn:uuid:{resource_id}"


def _structure_identifier(structure_id: str) -> dict[str, str]:
    scheme, _, value = structure_id.partition(":")
    if scheme == "finess" and value:
        return {"system": FINESS_SYSTEM, "value": value}
    return {"system": STRUCTURE_SYSTEM, "value": structure_id}


def patient_resource(patient: Patient) -> dict[str, Any]:
    """A FR Core-style Patient: INS identifier, birth and used names, birthplace, reliability."""
    status, forced = rules.identity_status(
        insi_retrieved=patient.insi_retrieved_at is not None,
        document_checked=patient.identity_document_checked_at is not None,
        homonyme=patient.homonyme,
        douteuse=patient.douteuse,
        fictive=patient.fictive,
    )
    code, display = _STATUS_CODES[status]
    reliability: list[dict[str, Any]] = [
        {
            "url": "identityStatus",
            "valueCoding": {"system": RELIABILITY_SYSTEM, "code": code, "display": display},
        }
    ]
    if patient.identity_document_checked_at is not None:
        reliability.append(
            {"url": "validationDate", "valueDate": patient.identity_document_checked_at.date().isoformat()}
        )
        reliability.append(
            {
                "url": "validationMode",
                "valueCoding": {"display": _document_label(patient.identity_document_type)},
            }
        )
    extensions: list[dict[str, Any]] = [{"url": RELIABILITY_URL, "extension": reliability}]
    for attribute in forced:
        extensions.append(
            {
                "url": RELIABILITY_URL,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {"system": ATTRIBUTE_SYSTEM, "code": attribute, "display": attribute},
                    }
                ],
            }
        )
    place = patient.birthplace_code
    extensions.append(
        {
            "url": BIRTH_PLACE_URL,
            "valueAddress": {
                "extension": [
                    {
                        "url": INSEE_CODE_URL,
                        "valueCoding": {
                            "system": COUNTRY_SYSTEM if place.startswith("99") else COMMUNE_SYSTEM,
                            "code": place,
                        },
                    }
                ]
            },
        }
    )

    identifiers: list[dict[str, Any]] = [
        {"use": "usual", "system": "urn:azurezo:patient", "value": str(patient.id)}
    ]
    # The national identity-vigilance rules (RNIV, référentiel INS) allow the INS to be shared only
    # once the identity is "qualifiée": before that the number is kept but never exported.
    if patient.ins_number and status is IdentityStatus.QUALIFIEE:
        nia = rules.is_nia(patient.ins_number)
        identifiers.append(
            {
                "use": "official",
                "type": {
                    "coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "INS-NIA" if nia else "INS-NIR"}]
                },
                "system": INS_NIA_SYSTEM if nia else INS_NIR_SYSTEM,
                "value": patient.ins_number,
            }
        )
    names: list[dict[str, Any]] = [
        {"use": "official", "family": patient.birth_name, "given": list(patient.birth_given_names)}
    ]
    if patient.used_name or patient.used_given_name:
        used: dict[str, Any] = {"use": "usual", "family": patient.used_name or patient.birth_name}
        if patient.used_given_name:
            used["given"] = [patient.used_given_name]
        names.append(used)
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "extension": extensions,
        "identifier": identifiers,
        "active": patient.status == "active",
        "name": names,
        "gender": _GENDER.get(patient.sex, "unknown"),
        "birthDate": patient.birth_date.isoformat(),
    }
    if telecom:
        resource["telecom"] = telecom
    if patient.address:
        resource["address"] = [{"text": patient.address}]
    if (
        patient.status == "sortie"
        and patient.discharge_reason == DischargeReason.DECES
        and patient.discharge_date
    ):
        resource["deceasedDateTime"] = patient.discharge_date.isoformat()
    return resource


async def _care_team(
    session: AsyncSession, patient: Patient, members: list[CircleMember]
) -> list[dict[str, Any]]:
    """The CareTeam resource, then one RelatedPerson per relative."""
    persons = await directory.display_names(
        session=session, national_ids=[m.national_id for m in members if m.national_id]
    )
    structures = await directory.structure_names(
        session=session, structure_ids=[m.structure_id for m in members if m.structure_id]
    )
    participants: list[dict[str, Any]] = []
    related: list[dict[str, Any]] = []
    for m in members:
        role = [{"text": m.role}]
        if m.kind == "professional" and m.national_id:
            member_ref: dict[str, Any] = {
                "type": "Practitioner",
                "identifier": {"system": IDNATPS_SYSTEM, "value": m.national_id},
            }
            if m.national_id in persons:
                member_ref["display"] = persons[m.national_id]
        elif m.kind == "structure" and m.structure_id:
            member_ref = {"type": "Organization", "identifier": _structure_identifier(m.structure_id)}
            if m.structure_id in structures:
                member_ref["display"] = structures[m.structure_id]
        else:
            person_resource: dict[str, Any] = {
                "resourceType": "RelatedPerson",
                "id": str(m.id),
                "patient": {"reference": _ref(patient.id)},
                "relationship": [{"text": m.relationship or m.role}],
                "name": [{"text": m.relative_name or ""}],
            }
            telecom = []
            if m.phone:
                telecom.append({"system": "phone", "value": m.phone})
            if m.email:
                telecom.append({"system": "email", "value": m.email})
            if telecom:
                person_resource["telecom"] = telecom
            related.append(person_resource)
            member_ref = {"reference": _ref(m.id), "type": "RelatedPerson"}
        participants.append({"role": role, "member": member_ref})
    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": str(uuid.uuid5(patient.id, "careteam")),
        "status": "active" if patient.status == "active" else "inactive",
        "name": "Cercle de soins",
        "subject": {"reference": _ref(patient.id), "type": "Patient"},
    }
    if participants:
        team["participant"] = participants
    return [team, *related]


def _task_resource(patient: Patient, task: Task) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(task.id),
        "status": _TASK_STATUS.get(task.status, "requested"),
        "intent": "order",
        "code": {"text": task.type},
        "description": task.title,
        "for": {"reference": _ref(patient.id), "type": "Patient"},
        "authoredOn": task.created_at.isoformat(),
        "lastModified": task.updated_at.isoformat(),
        "requester": {
            "type": "Practitioner",
            "identifier": {"system": IDNATPS_SYSTEM, "value": task.creator_national_id},
        },
    }
    if task.priority in _TASK_PRIORITY:
        resource["priority"] = _TASK_PRIORITY[task.priority]
    if task.description:
        resource["note"] = [{"text": task.description}]
    if task.due_date is not None:
        resource["restriction"] = {"period": {"end": task.due_date.isoformat()}}
    # FHIR gives a Task one owner: the first assignee (by key order) stands for all of them.
    refs = []
    for assignee in task.assignees:
        kind, _, value = assignee.key.partition(":")
        if kind == "pp":
            refs.append({"type": "Practitioner", "identifier": {"system": IDNATPS_SYSTEM, "value": value}})
        elif kind == "st":
            refs.append({"type": "Organization", "identifier": _structure_identifier(value)})
    if refs:
        resource["owner"] = refs[0]
    if task.completed_at is not None:
        resource["executionPeriod"] = {"end": task.completed_at.isoformat()}
    return resource


async def export_patient(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> FhirBundleOut:
    """The dossier as a FHIR R4 ``collection`` Bundle (authorised members only, audited)."""
    patient = await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    members = await circle.members_of(session=session, patient_id=patient_id)
    tasks = (
        await session.scalars(
            select(Task)
            .where(Task.patient_id == patient_id)
            .options(selectinload(Task.assignees))
            .order_by(Task.created_at, Task.id)
        )
    ).all()
    resources = [
        patient_resource(patient),
        *await _care_team(session, patient, members),
        *(_task_resource(patient, t) for t in tasks),
    ]
    raw = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "collection",
        "timestamp": utcnow().isoformat(),
        "entry": [{"fullUrl": _ref(uuid.UUID(r["id"])), "resource": r} for r in resources],
    }
    checked = Bundle.model_validate(raw)  # raises on a malformed export: a bug, never a user error
    await audit.record(
        session=session,
        actor=actor,
        action="patient.fhir_export",
        object_type="patient",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    logger.info("FHIR export of patient %s (%d resources)", patient_id, len(resources))
    return FhirBundleOut.model_validate(checked.model_dump(mode="json", exclude_none=True))
