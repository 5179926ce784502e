"""The PPCS (plan personnalisé de coordination en santé): one living plan per patient.

Rules:
- only authorised members of the circle read or change it (``circle_access``); every read and change is
  audited in the same transaction, and each save is kept as a version (``CarePlanVersion``);
- a save names the version it replaces (0 for the first): another one answers 409 ``AZ_STALE_VERSION``;
- writing needs the patient's recorded consent to sharing (``Patient.consent_given``): without it,
  409 ``AZ_NO_CONSENT`` (record the consent in the dossier first). Reading an existing plan does not;
- an action's responsible is a habilité member of the circle (professional or structure), or a person
  named in free text (the patient, a relative); an action with ``create_task`` gets its task through the
  tasks service (assigned to its responsible professional or structure, due at its deadline);
- setting or moving the review date creates a reminder task for the author, due that day;
- an action may link an appointment of the agenda (``appointment_id``): it must name this patient, so
  the saver, an authorised member of the circle, reads it in the patient's appointments
  (``agenda.service.patient_appointments``) as every reader of the plan does; the plan shows its time,
  what and where, and its status. A link kept from the previous version is not checked again.

The tasks are created (and committed by the tasks service) after every check of the save has passed and
before the plan is written: a plan saved concurrently in between (409) leaves those tasks in place, linked
to nothing, which the author sees in their task list (never a plan action pointing at a missing task).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from coordination.agenda.models import Agenda, Appointment, EventType
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle import service as circle
from coordination.db import utcnow
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode, Invalid
from coordination.ids import AppointmentId, NationalId, PatientId, TaskId
from coordination.outbox import service as outbox
from coordination.outbox.events import PlanUpdated
from coordination.patients.models import Patient
from coordination.plans import fhir, pdf, rules
from coordination.plans.models import CarePlan, CarePlanVersion
from coordination.plans.schemas import (
    ActionIn,
    ActionOut,
    ObjectiveOut,
    PlanIn,
    PlanOut,
    PlanVersionOut,
    ProblemOut,
)
from coordination.security import Actor
from coordination.tasks import service as tasks
from coordination.tasks.models import Task
from coordination.tasks.schemas import TaskCreate
from coordination.vocab import (
    AppointmentStatus,
    ConsentMode,
    PlanActionStatus,
    PlanStatus,
    TaskStatus,
    TaskType,
    parse,
)

logger = logging.getLogger(__name__)

MAX_VERSIONS_PAGE = 100
STALE = (
    "Le plan a été modifié par un autre membre depuis votre lecture : rechargez-le, reportez vos "
    "changements sur la nouvelle version, puis enregistrez à nouveau."
)
NO_CONSENT = (
    "Le consentement du patient au partage de ses informations n'est pas enregistré : recueillez-le et "
    "enregistrez-le dans le dossier avant d'établir le plan personnalisé de coordination."
)


def require_consent(patient: Patient) -> None:
    """409 ``AZ_NO_CONSENT`` unless the patient's consent to sharing is recorded (and given)."""
    if patient.consent_given is not True:
        raise Conflict(NO_CONSENT, errcode=ErrCode.NO_CONSENT)


async def _current(session: AsyncSession, patient_id: PatientId) -> CarePlan | None:
    return (await session.scalars(select(CarePlan).where(CarePlan.patient_id == patient_id))).one_or_none()


# --- read models --------------------------------------------------------------------------------


async def _labels(session: AsyncSession, actions: Sequence[dict[str, Any]]) -> dict[str, str]:
    nids = [a["responsible_national_id"] for a in actions if a.get("responsible_national_id")]
    sids = [a["responsible_structure_id"] for a in actions if a.get("responsible_structure_id")]
    labels = dict(await directory.display_names(session=session, national_ids=nids))
    labels.update(await directory.structure_names(session=session, structure_ids=sids))
    return labels


def responsible_key(action: dict[str, Any]) -> str | None:
    return action.get("responsible_national_id") or action.get("responsible_structure_id")


async def _task_states(session: AsyncSession, task_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(number, status) of the linked tasks: the plan shows where each action's task stands."""
    if not task_ids:
        return {}
    rows = await session.execute(
        select(Task.id, Task.number, Task.status).where(Task.id.in_([uuid.UUID(t) for t in task_ids]))
    )
    return {str(i): (n, s) for i, n, s in rows.tuples()}


async def _appointment_states(
    session: AsyncSession, patient_id: PatientId, appointment_ids: Sequence[str]
) -> dict[str, tuple[datetime, str, str]]:
    """(start, status, « type (agenda) ») of the linked appointments of the patient."""
    if not appointment_ids:
        return {}
    rows = await session.execute(
        select(Appointment.id, Appointment.start_at, Appointment.status, EventType.name, Agenda.name)
        .join(Agenda, Agenda.id == Appointment.agenda_id)
        .join(EventType, EventType.id == Appointment.event_type_id)
        .where(
            Appointment.id.in_([uuid.UUID(a) for a in appointment_ids]), Appointment.patient_id == patient_id
        )
    )
    return {str(i): (start, status, f"{kind} ({agenda})") for i, start, status, kind, agenda in rows.tuples()}


async def _action_outs(
    session: AsyncSession, patient_id: PatientId, actions: Sequence[dict[str, Any]]
) -> list[ActionOut]:
    labels = await _labels(session, actions)
    states = await _task_states(session, [a["task_id"] for a in actions if a.get("task_id")])
    appointments = await _appointment_states(
        session, patient_id, [a["appointment_id"] for a in actions if a.get("appointment_id")]
    )
    outs = []
    for a in actions:
        key = responsible_key(a)
        state = states.get(a["task_id"]) if a.get("task_id") else None
        appt = appointments.get(a["appointment_id"]) if a.get("appointment_id") else None
        outs.append(
            ActionOut(
                id=a["id"],
                objective_id=a.get("objective_id"),
                title=a["title"],
                responsible_national_id=a.get("responsible_national_id"),
                responsible_structure_id=a.get("responsible_structure_id"),
                responsible_other=a.get("responsible_other"),
                responsible_label=labels.get(key, key) if key else a.get("responsible_other"),
                deadline=a.get("deadline"),
                status=parse(PlanActionStatus, a["status"]),
                task_id=TaskId(uuid.UUID(a["task_id"])) if a.get("task_id") else None,
                task_number=state[0] if state else None,
                task_status=parse(TaskStatus, state[1]) if state else None,
                appointment_id=AppointmentId(uuid.UUID(a["appointment_id"]))
                if a.get("appointment_id")
                else None,
                appointment_start=appt[0] if appt else None,
                appointment_status=parse(AppointmentStatus, appt[1]) if appt else None,
                appointment_label=appt[2] if appt else None,
            )
        )
    return outs


async def _plan_out(session: AsyncSession, patient_id: PatientId, plan: CarePlan | None) -> PlanOut:
    if plan is None:
        return PlanOut(
            patient_id=patient_id,
            version=0,
            status=PlanStatus.EN_COURS,
            situation="",
            patient_wishes="",
            problems=[],
            objectives=[],
            actions=[],
            next_review_date=None,
            review_task_id=None,
            updated_by=None,
            updated_by_name=None,
            updated_at=None,
        )
    content = plan.content
    names = await directory.display_names(session=session, national_ids=[plan.updated_by])
    return PlanOut(
        patient_id=patient_id,
        version=plan.version,
        status=parse(PlanStatus, plan.status),
        situation=content.get("situation", ""),
        patient_wishes=content.get("patient_wishes", ""),
        problems=[ProblemOut(**p) for p in content.get("problems", [])],
        objectives=[ObjectiveOut(**o) for o in content.get("objectives", [])],
        actions=await _action_outs(session, patient_id, content.get("actions", [])),
        next_review_date=plan.next_review_date,
        review_task_id=TaskId(plan.review_task_id) if plan.review_task_id else None,
        updated_by=NationalId(plan.updated_by),
        updated_by_name=names.get(plan.updated_by),
        updated_at=plan.updated_at,
    )


async def _record(session: AsyncSession, actor: Actor, action: str, patient_id: PatientId) -> None:
    await audit.record(
        session=session,
        actor=actor,
        action=action,
        object_type="care_plan",
        object_id=patient_id,
        patient_id=patient_id,
    )


# --- reading ------------------------------------------------------------------------------------


async def get_plan(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> PlanOut:
    """The current plan (empty, version 0, when none was written), with each action's task. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    plan = await _current(session, patient_id)
    await _record(session, actor, "plan.read", patient_id)
    await session.commit()
    return await _plan_out(session, patient_id, plan)


async def list_versions(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, before: int | None, limit: int
) -> tuple[list[PlanVersionOut], int | None]:
    """Saved versions, newest first; returns the page and the version to continue before. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    stmt = select(CarePlanVersion).where(CarePlanVersion.patient_id == patient_id)
    if before is not None:
        stmt = stmt.where(CarePlanVersion.version < before)
    rows = (await session.scalars(stmt.order_by(CarePlanVersion.version.desc()).limit(limit + 1))).all()
    page = list(rows[:limit])
    await _record(session, actor, "plan.history", patient_id)
    await session.commit()
    names = await directory.display_names(session=session, national_ids=[r.saved_by for r in page])
    items = [
        PlanVersionOut(
            version=r.version,
            status=parse(PlanStatus, r.status),
            saved_by=NationalId(r.saved_by),
            saved_by_name=names.get(r.saved_by),
            saved_at=r.saved_at,
            next_review_date=r.next_review_date,
            open_actions=len(rules.open_actions(r.content)),
        )
        for r in page
    ]
    return items, (page[-1].version if len(rows) > limit else None)


# --- writing ------------------------------------------------------------------------------------


async def _check_responsibles(
    session: AsyncSession, patient_id: PatientId, actions: Sequence[ActionIn]
) -> None:
    """Each responsible professional or structure is a habilité member of the circle (they read the plan)."""
    for action in actions:
        if action.responsible_national_id and action.responsible_structure_id:
            raise Invalid(
                f"Action « {action.title} » : un seul responsable, professionnel ou structure.",
                field="actions",
            )
    nids = [a.responsible_national_id for a in actions if a.responsible_national_id]
    sids = [a.responsible_structure_id for a in actions if a.responsible_structure_id]
    ok_n, ok_s = await circle_access.habilite_among(
        session=session, patient_id=patient_id, national_ids=nids, structure_ids=sids
    )
    bad = sorted({n for n in nids if n not in ok_n} | {s for s in sids if s not in ok_s})
    if bad:
        raise Invalid(
            f"Responsable(s) hors du cercle de soins : {', '.join(bad)}. Ajoutez-les au cercle (habilités) "
            "ou nommez un autre responsable.",
            field="actions",
        )


async def _check_appointments(
    session: AsyncSession,
    patient_id: PatientId,
    actions: Sequence[ActionIn],
    previous: Mapping[str, Any] | None,
) -> None:
    """Each newly linked appointment exists and names this patient (see the module's rules)."""
    kept = {(a["id"], a.get("appointment_id")) for a in (previous or {}).get("actions", [])}
    new = [a for a in actions if a.appointment_id and (a.id, str(a.appointment_id)) not in kept]
    if not new:
        return
    found = set(
        await session.scalars(
            select(Appointment.id).where(
                Appointment.id.in_([a.appointment_id for a in new]), Appointment.patient_id == patient_id
            )
        )
    )
    bad = [a.title for a in new if a.appointment_id not in found]
    if bad:
        raise Invalid(
            f"Action « {bad[0]} » : le rendez-vous lié est introuvable ou ne concerne pas ce patient. "
            "Choisissez l'un des rendez-vous du patient, ou aucun.",
            field="actions",
        )


async def _create_action_tasks(
    session: AsyncSession, actor: Actor, patient_id: PatientId, data: PlanIn, content: dict[str, Any]
) -> list[str]:
    """Create the tasks asked for (``create_task`` on an action without one); returns their ids."""
    created = []
    for wanted, action in zip(data.actions, content["actions"], strict=True):
        if not wanted.create_task or action.get("task_id"):
            continue
        task = await tasks.create_task(
            session=session,
            actor=actor,
            data=TaskCreate(
                title=wanted.title[:200],
                description="Action du plan personnalisé de coordination en santé (PPCS).",
                type=TaskType.AUTRE,
                patient_id=patient_id,
                assignee_national_ids=[wanted.responsible_national_id]
                if wanted.responsible_national_id
                else [],
                assignee_structure_ids=[wanted.responsible_structure_id]
                if wanted.responsible_structure_id
                else [],
                due_date=wanted.deadline,
            ),
        )
        action["task_id"] = str(task.id)
        created.append(str(task.id))
    return created


async def _review_task(
    session: AsyncSession, actor: Actor, patient_id: PatientId, data: PlanIn, plan: CarePlan | None
) -> uuid.UUID | None:
    """The review reminder: a new task when the review date is set or moved, else the current one."""
    if data.next_review_date is None:
        return None
    if plan is not None and plan.next_review_date == data.next_review_date and plan.review_task_id:
        return plan.review_task_id
    task = await tasks.create_task(
        session=session,
        actor=actor,
        data=TaskCreate(
            title="Révision du plan personnalisé de coordination (PPCS)",
            description="Revoir le PPCS avec l'équipe et le patient : actions, objectifs, prochaine date.",
            type=TaskType.CONCERTATION_PLURIPROFESSIONNELLE,
            patient_id=patient_id,
            assignee_national_ids=[actor.national_id],
            due_date=data.next_review_date,
        ),
    )
    return task.id


async def save_plan(*, session: AsyncSession, actor: Actor, patient_id: PatientId, data: PlanIn) -> PlanOut:
    """Replace the plan with ``data`` as the version after ``data.version`` (see the module's rules)."""
    patient = await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    require_consent(patient)
    plan = await _current(session, patient_id)
    if data.version != (plan.version if plan else 0):
        raise Conflict(STALE, errcode=ErrCode.STALE_VERSION)
    await _check_responsibles(session, patient_id, data.actions)
    await _check_appointments(session, patient_id, data.actions, plan.content if plan else None)
    content = rules.build_content(data, plan.content if plan else None)
    await _create_action_tasks(session, actor, patient_id, data, content)
    review_task_id = await _review_task(session, actor, patient_id, data, plan)
    now = utcnow()
    if plan is None:
        plan = CarePlan(id=uuid.uuid4(), patient_id=patient_id, created_by=actor.national_id, created_at=now)
        session.add(plan)
    plan.status = data.status.value
    plan.content = content
    plan.next_review_date = data.next_review_date
    plan.review_task_id = review_task_id
    plan.updated_by = actor.national_id
    plan.updated_at = now
    session.add(
        CarePlanVersion(
            patient_id=patient_id,
            version=data.version + 1,
            status=data.status.value,
            content=content,
            next_review_date=data.next_review_date,
            saved_by=actor.national_id,
            saved_at=now,
        )
    )
    try:
        # Flushed here, not at the audit's query (autoflush): a concurrent first save of the same
        # patient's plan fails on the unique patient row at this point on PostgreSQL.
        await session.flush()
        await _record(session, actor, "plan.update", patient_id)
        await outbox.emit(
            session=session,
            event=PlanUpdated(patient_id=patient_id, version=data.version + 1, updated_by=actor.user_id),
            recipients=await circle_access.authorised_user_ids(session=session, patient_id=patient_id),
        )
        await session.commit()
    except (IntegrityError, StaleDataError) as exc:  # a concurrent save took this version first
        await session.rollback()
        raise Conflict(STALE, errcode=ErrCode.STALE_VERSION) from exc
    logger.info("plan of %s saved as version %d by %s", patient_id, plan.version, actor.national_id)
    return await _plan_out(session, patient_id, plan)


# --- exports ------------------------------------------------------------------------------------


async def plan_for_export(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, action: str
) -> tuple[Patient, PlanOut, list[tuple[str, str]]]:
    """What the PDF and FHIR exports need: the patient, the plan and the circle's professionals
    (name, role). Needs the consent (409) and a saved plan (422). Audited as ``action``."""
    patient = await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    require_consent(patient)
    plan = await _current(session, patient_id)
    if plan is None:
        raise Invalid("Ce patient n'a pas encore de plan personnalisé : établissez-le avant de l'exporter.")
    members = await circle.members_of(session=session, patient_id=patient_id)
    names = await directory.display_names(
        session=session, national_ids=[m.national_id for m in members if m.national_id]
    )
    structures = await directory.structure_names(
        session=session, structure_ids=[m.structure_id for m in members if m.structure_id]
    )
    contacts = []
    for m in members:
        if m.kind == "professional" and m.national_id:
            contacts.append((names.get(m.national_id, m.national_id), m.role or ""))
        elif m.kind == "structure" and m.structure_id:
            contacts.append((structures.get(m.structure_id, m.structure_id), m.role or ""))
    await _record(session, actor, action, patient_id)
    await session.commit()
    return patient, await _plan_out(session, patient_id, plan), contacts


def _consent_line(patient: Patient) -> str:
    mode = parse(ConsentMode, patient.consent_mode).label.lower() if patient.consent_mode else "non précisé"
    when = (
        patient.consent_recorded_at.strftime("%d/%m/%Y") if patient.consent_recorded_at else "date inconnue"
    )
    return (
        f"La personne a consenti au partage des informations nécessaires à sa prise en charge "
        f"(consentement {mode}, enregistré le {when})."
    )


async def plan_pdf(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> bytes:
    """The current plan as a PDF (HAS PPCS layout, French), to print or share in the patient's room.
    Needs the consent and a saved plan. Audited."""
    patient, plan, contacts = await plan_for_export(
        session=session, actor=actor, patient_id=patient_id, action="plan.pdf"
    )
    first = patient.used_first_name or patient.first_birth_first_name
    name = f"{(patient.used_name or patient.birth_name).upper()} {first}"
    return pdf.render(
        plan=plan,
        patient_name=name,
        birth_date=patient.birth_date,
        contacts=contacts,
        consent_line=_consent_line(patient),
    )


async def plan_care_plan(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> dict[str, Any]:
    """The current plan as a FHIR R4B CarePlan. Needs the consent and a saved plan. Audited."""
    _, plan, _ = await plan_for_export(
        session=session, actor=actor, patient_id=patient_id, action="plan.fhir"
    )
    return fhir.care_plan(plan)
