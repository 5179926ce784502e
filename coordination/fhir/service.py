"""FHIR R4 export of a dossier: a ``collection`` Bundle with a FR Core-style Patient, the care circle
as a CareTeam (RelatedPerson resources for relatives) and the patient's tasks as Task resources.

Professionals and structures are referenced by their national identifiers (RPPS idNatPS, FINESS),
not copied: the receiver resolves them in the national directory. Every resource is built as a
``fhir.resources.R4B`` object, so a malformed element fails where it is built (a bug caught here, not
downstream), never in a nested dict validated at the end.
"""

from __future__ import annotations

import logging
import uuid

from fhir.resources.R4B.address import Address
from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.careteam import CareTeam, CareTeamParticipant
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.contactpoint import ContactPoint
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.relatedperson import RelatedPerson
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task as FhirTask
from fhir.resources.R4B.task import TaskRestriction
from sqlalchemy.ext.asyncio import AsyncSession

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
from coordination.tasks import service as tasks_service
from coordination.tasks.schemas import AssigneeOut, TaskOut
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


def _structure_identifier(structure_id: str) -> Identifier:
    scheme, _, value = structure_id.partition(":")
    if scheme == "finess" and value:
        return Identifier(system=FINESS_SYSTEM, value=value)
    return Identifier(system=STRUCTURE_SYSTEM, value=structure_id)


def _practitioner(national_id: str, display: str | None = None) -> Reference:
    return Reference(
        type="Practitioner", identifier=Identifier(system=IDNATPS_SYSTEM, value=national_id), display=display
    )


def _reliability(patient: Patient, status: IdentityStatus, forced: list[str]) -> list[Extension]:
    """FR Core identity reliability: the status (with the document check) and each forcing attribute."""
    code, display = _STATUS_CODES[status]
    parts = [
        Extension(
            url="identityStatus", valueCoding=Coding(system=RELIABILITY_SYSTEM, code=code, display=display)
        )
    ]
    if patient.identity_document_checked_at is not None:
        parts.append(Extension(url="validationDate", valueDate=patient.identity_document_checked_at.date()))
        parts.append(
            Extension(
                url="validationMode",
                valueCoding=Coding(display=_document_label(patient.identity_document_type)),
            )
        )
    extensions = [Extension(url=RELIABILITY_URL, extension=parts)]
    for attribute in forced:
        coding = Coding(system=ATTRIBUTE_SYSTEM, code=attribute, display=attribute)
        extensions.append(
            Extension(url=RELIABILITY_URL, extension=[Extension(url="identityStatus", valueCoding=coding)])
        )
    return extensions


def _birth_place(code: str) -> Extension:
    system = COUNTRY_SYSTEM if code.startswith("99") else COMMUNE_SYSTEM
    insee = Extension(url=INSEE_CODE_URL, valueCoding=Coding(system=system, code=code))
    return Extension(url=BIRTH_PLACE_URL, valueAddress=Address(extension=[insee]))


def _identifiers(patient: Patient, status: IdentityStatus) -> list[Identifier]:
    identifiers = [Identifier(use="usual", system="urn:azurezo:patient", value=str(patient.id))]
    # The national identity-vigilance rules (RNIV, référentiel INS) allow the INS to be shared only
    # once the identity is "qualifiée": before that the number is kept but never exported.
    if patient.ins_number and status is IdentityStatus.QUALIFIEE:
        nia = rules.is_nia(patient.ins_number)
        identifiers.append(
            Identifier(
                use="official",
                type=CodeableConcept(
                    coding=[Coding(system=IDENTIFIER_TYPE_SYSTEM, code="INS-NIA" if nia else "INS-NIR")]
                ),
                system=INS_NIA_SYSTEM if nia else INS_NIR_SYSTEM,
                value=patient.ins_number,
            )
        )
    return identifiers


def _names(patient: Patient) -> list[HumanName]:
    names = [HumanName(use="official", family=patient.birth_name, given=list(patient.birth_first_names))]
    if patient.used_name or patient.used_first_name:
        names.append(
            HumanName(
                use="usual",
                family=patient.used_name or patient.birth_name,
                given=[patient.used_first_name] if patient.used_first_name else None,
            )
        )
    return names


def _telecom(phone: str | None, email: str | None) -> list[ContactPoint] | None:
    points = [ContactPoint(system="phone", value=phone)] if phone else []
    if email:
        points.append(ContactPoint(system="email", value=email))
    return points or None


def patient_resource(patient: Patient) -> FhirPatient:
    """A FR Core-style Patient: INS identifier, birth and used names, birthplace, reliability."""
    status, forced = rules.identity_status(
        insi_retrieved=patient.insi_retrieved_at is not None,
        document_checked=patient.identity_document_checked_at is not None,
        homonyme=patient.homonyme,
        douteuse=patient.douteuse,
        fictive=patient.fictive,
    )
    deceased = patient.status == "sortie" and patient.discharge_reason == DischargeReason.DECES
    return FhirPatient(
        id=str(patient.id),
        extension=[*_reliability(patient, status, forced), _birth_place(patient.birth_place_code)],
        identifier=_identifiers(patient, status),
        active=patient.status == "active",
        name=_names(patient),
        gender=_GENDER.get(patient.sex, "unknown"),
        birthDate=patient.birth_date,
        telecom=_telecom(patient.phone, patient.email),
        address=[Address(text=patient.address)] if patient.address else None,
        deceasedDateTime=patient.discharge_date.isoformat() if deceased and patient.discharge_date else None,
    )


def _related_person(patient: Patient, m: CircleMember) -> RelatedPerson:
    return RelatedPerson(
        id=str(m.id),
        patient=Reference(reference=_ref(patient.id)),
        relationship=[CodeableConcept(text=m.relationship or m.role)],
        name=[HumanName(text=m.relative_name or "")],
        telecom=_telecom(m.phone, m.email),
    )


async def _care_team(session: AsyncSession, patient: Patient, members: list[CircleMember]) -> list[Resource]:
    """The CareTeam resource, then one RelatedPerson per relative."""
    persons = await directory.display_names(
        session=session, national_ids=[m.national_id for m in members if m.national_id]
    )
    structures = await directory.structure_names(
        session=session, structure_ids=[m.structure_id for m in members if m.structure_id]
    )
    participants: list[CareTeamParticipant] = []
    related: list[Resource] = []
    for m in members:
        if m.kind == "professional" and m.national_id:
            member = _practitioner(m.national_id, persons.get(m.national_id))
        elif m.kind == "structure" and m.structure_id:
            member = Reference(
                type="Organization",
                identifier=_structure_identifier(m.structure_id),
                display=structures.get(m.structure_id),
            )
        else:
            related.append(_related_person(patient, m))
            member = Reference(reference=_ref(m.id), type="RelatedPerson")
        participants.append(CareTeamParticipant(role=[CodeableConcept(text=m.role)], member=member))
    team = CareTeam(
        id=str(uuid.uuid5(patient.id, "careteam")),
        status="active" if patient.status == "active" else "inactive",
        name="Cercle de soins",
        subject=Reference(reference=_ref(patient.id), type="Patient"),
        participant=participants or None,
    )
    return [team, *related]


def _assignee_key(assignee: AssigneeOut) -> str:
    return f"pp:{assignee.national_id}" if assignee.national_id else f"st:{assignee.structure_id}"


def _task_owner(task: TaskOut) -> Reference | None:
    """FHIR gives a Task one owner: the first assignee (by key order) stands for all of them."""
    first = min(task.assignees, key=_assignee_key, default=None)
    if first is None:
        return None
    if first.national_id:
        return _practitioner(first.national_id, first.label)
    if first.structure_id:
        return Reference(
            type="Organization", identifier=_structure_identifier(first.structure_id), display=first.label
        )
    return None


def _task_resource(patient: Patient, task: TaskOut) -> FhirTask:
    return FhirTask(
        id=str(task.id),
        status=_TASK_STATUS.get(task.status, "requested"),
        intent="order",
        code=CodeableConcept(text=task.type.label),
        description=task.title,
        for_fhir=Reference(reference=_ref(patient.id), type="Patient"),
        authoredOn=task.created_at,
        lastModified=task.updated_at,
        requester=_practitioner(task.creator_national_id),
        priority=_TASK_PRIORITY.get(task.priority or ""),
        note=[Annotation(text=task.description)] if task.description else None,
        restriction=TaskRestriction(period=Period(end=task.due_date.isoformat())) if task.due_date else None,
        owner=_task_owner(task),
        executionPeriod=Period(end=task.completed_at) if task.completed_at else None,
    )


async def export_patient(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> FhirBundleOut:
    """The dossier as a FHIR R4 ``collection`` Bundle (authorised members only, audited)."""
    patient = await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    members = await circle.members_of(session=session, patient_id=patient_id)
    tasks = await tasks_service.tasks_of_patient(session=session, patient_id=patient_id)
    resources: list[Resource] = [
        patient_resource(patient),
        *await _care_team(session, patient, members),
        *(_task_resource(patient, t) for t in tasks),
    ]
    bundle = Bundle(
        id=str(uuid.uuid4()),
        type="collection",
        timestamp=utcnow(),
        entry=[BundleEntry(fullUrl=_ref(uuid.UUID(str(r.id))), resource=r) for r in resources],
    )
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
    return FhirBundleOut.model_validate(bundle.model_dump(mode="json", exclude_none=True))
