"""FHIR R4 export of an agenda over a period, after the ANS "Gestion d'agendas partagés" guide
(Schedule, Slot, Appointment on FR Core): a ``collection`` Bundle with one Schedule (the agenda and
its actor), its Slots (free slots of the bookable types, and the busy ones) and its Appointments.

Built with ``fhir.resources.R4B`` objects, so a malformed element fails where it is built. A patient
is referenced (``Patient/<id>``, never an identity) only when the exporting manager is an authorised
member of the patient's circle; each such reference is audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.appointment import AppointmentParticipant
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.agenda import rules, service
from coordination.agenda.schemas import AgendaOut, AppointmentOut, SlotOut
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.db import utcnow
from coordination.fhir.schemas import FhirBundleOut
from coordination.ids import AgendaId, PatientId
from coordination.security import Actor
from coordination.vocab import AppointmentStatus

IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
STRUCTURE_SYSTEM = "urn:azurezo:structure"
AGENDA_SYSTEM = "urn:azurezo:agenda"
CATEGORY_SYSTEM = "urn:azurezo:agenda:event-category"
FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
PROFILES = {
    "Schedule": FR_CORE + "fr-core-schedule",
    "Slot": FR_CORE + "fr-core-slot",
    "Appointment": FR_CORE + "fr-core-appointment",
}
_STATUS = {
    AppointmentStatus.PROPOSE: "proposed",
    AppointmentStatus.RESERVE: "booked",
    AppointmentStatus.ANNULE: "cancelled",
    AppointmentStatus.EFFECTUE: "fulfilled",
    AppointmentStatus.ABSENT: "noshow",
}


def _ref(resource_id: uuid.UUID) -> str:
    return f"urn:uuid:{resource_id}"


def _structure(structure_id: str) -> Identifier:
    scheme, _, value = structure_id.partition(":")
    if scheme == "finess" and value:
        return Identifier(system=FINESS_SYSTEM, value=value)
    return Identifier(system=STRUCTURE_SYSTEM, value=structure_id)


def _actor(agenda: AgendaOut) -> Reference:
    """The Schedule's actor: the professional (RPPS), or the structure (FINESS / directory key)."""
    if agenda.owner_national_id:
        return Reference(
            type="Practitioner",
            identifier=Identifier(system=IDNATPS_SYSTEM, value=agenda.owner_national_id),
            display=agenda.owner_label,
        )
    assert agenda.structure_id is not None  # a structure or resource agenda always has one
    kind = "HealthcareService" if agenda.owner_kind == "ressource" else "Organization"
    return Reference(type=kind, identifier=_structure(agenda.structure_id), display=agenda.owner_label)


def _category(code: str, label: str) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=CATEGORY_SYSTEM, code=code, display=label)], text=label)


def _schedule(agenda: AgendaOut, sid: uuid.UUID, start: datetime, end: datetime) -> Schedule:
    return Schedule(
        id=str(sid),
        meta=Meta(profile=[PROFILES["Schedule"]]),
        identifier=[Identifier(system=AGENDA_SYSTEM, value=str(agenda.id))],
        active=True,
        actor=[_actor(agenda)],
        serviceType=[_category(t.category.value, t.category.label) for t in agenda.event_types if t.bookable]
        or None,
        planningHorizon=Period(start=start, end=end),
        comment=agenda.name,
    )


def _slot(
    sid: uuid.UUID, schedule: uuid.UUID, start: datetime, end: datetime, status: str, label: str | None
) -> Slot:
    return Slot(
        id=str(sid),
        meta=Meta(profile=[PROFILES["Slot"]]),
        schedule=Reference(reference=_ref(schedule)),
        status=status,
        start=start,
        end=end,
        serviceType=[CodeableConcept(text=label)] if label else None,
    )


def _appointment(
    appt: AppointmentOut, aid: uuid.UUID, slot: uuid.UUID, agenda: AgendaOut, patient: bool
) -> FhirAppointment:
    participants = [AppointmentParticipant(actor=_actor(agenda), status="accepted", required="required")]
    for nid in appt.participant_national_ids:
        participants.append(
            AppointmentParticipant(
                actor=Reference(type="Practitioner", identifier=Identifier(system=IDNATPS_SYSTEM, value=nid)),
                status="accepted",
            )
        )
    for sid in appt.participant_structure_ids:
        participants.append(
            AppointmentParticipant(
                actor=Reference(type="Organization", identifier=_structure(sid)), status="accepted"
            )
        )
    if patient and appt.patient_id is not None:
        participants.append(
            AppointmentParticipant(actor=Reference(reference=f"Patient/{appt.patient_id}"), status="accepted")
        )
    return FhirAppointment(
        id=str(aid),
        meta=Meta(profile=[PROFILES["Appointment"]]),
        identifier=[Identifier(system="urn:azurezo:appointment", value=str(appt.id))],
        status=_STATUS[appt.status],
        serviceType=[_category(appt.category.value, appt.category.label)],
        appointmentType=CodeableConcept(text=appt.event_type_name),
        start=appt.start,
        end=appt.end,
        slot=[Reference(reference=_ref(slot))],
        created=appt.created_at,
        participant=participants,
    )


async def export_agenda(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, start: datetime | None, end: datetime | None
) -> FhirBundleOut:
    """The agenda over ``[start, end)`` (default: the next 14 days) as a FHIR Bundle (managers only)."""
    begin = rules.aware(start or utcnow())
    finish = rules.aware(end) if end else begin + timedelta(days=14)
    agenda = await service.get_agenda(session=session, actor=actor, agenda_id=agenda_id)
    appointments = await service.list_appointments(
        session=session, actor=actor, agenda_id=agenda_id, start=begin, end=finish, limit=service.MAX_PAGE
    )
    free: list[SlotOut] = (
        await service.agenda_slots(
            session=session, actor=actor, agenda_id=agenda_id, start=begin, end=finish, limit=500
        )
    ).items
    schedule_id = uuid.uuid4()
    resources: list[Resource] = [_schedule(agenda, schedule_id, begin, finish)]
    for s in free:
        resources.append(_slot(uuid.uuid4(), schedule_id, s.start, s.end, "free", s.event_type_name))
    for appt in appointments.items:
        slot_id, appt_id = uuid.uuid4(), uuid.uuid4()
        busy = "busy-tentative" if appt.status is AppointmentStatus.PROPOSE else "busy"
        holds = appt.status in (AppointmentStatus.PROPOSE, AppointmentStatus.RESERVE)
        resources.append(
            _slot(slot_id, schedule_id, appt.start, appt.end, busy if holds else "free", appt.event_type_name)
        )
        patient = appt.patient_id is not None and await circle_access.is_authorised(
            session=session, actor=actor, patient_id=appt.patient_id
        )
        if patient:
            await audit.record(
                session=session,
                actor=actor,
                action="appointment.fhir_export",
                object_type="appointment",
                object_id=appt.id,
                patient_id=PatientId(appt.patient_id) if appt.patient_id else None,
            )
        resources.append(_appointment(appt, appt_id, slot_id, agenda, patient))
    await session.commit()
    bundle = Bundle(
        id=str(uuid.uuid4()),
        type="collection",
        timestamp=utcnow(),
        entry=[BundleEntry(fullUrl=_ref(uuid.UUID(str(r.id))), resource=r) for r in resources],
    )
    return FhirBundleOut.model_validate(bundle.model_dump(mode="json", exclude_none=True))
