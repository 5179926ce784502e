"""The PPCS as a FHIR R4B ``CarePlan``: problems as contained Conditions, objectives as contained Goals,
actions as activities (linked to their Task when one was created, and to their Appointment when one is
linked: both as outcomes, since an activity holds a ``detail`` or a ``reference``, not both). Built
with ``fhir.resources`` so a malformed element fails where it is built."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.careplan import CarePlan, CarePlanActivity, CarePlanActivityDetail
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference

from coordination.plans.schemas import ActionOut, PlanOut
from coordination.vocab import PlanActionStatus, PlanStatus

IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
STRUCTURE_SYSTEM = "urn:azurezo:structure"
_ACTION_STATUS = {
    PlanActionStatus.A_FAIRE: "not-started",
    PlanActionStatus.EN_COURS: "in-progress",
    PlanActionStatus.REALISEE: "completed",
    PlanActionStatus.ABANDONNEE: "stopped",
}


def _performer(action: ActionOut) -> list[Reference] | None:
    if action.responsible_national_id:
        return [Reference(identifier=Identifier(system=IDNATPS_SYSTEM, value=action.responsible_national_id))]
    if action.responsible_structure_id:
        return [
            Reference(identifier=Identifier(system=STRUCTURE_SYSTEM, value=action.responsible_structure_id))
        ]
    if action.responsible_other:
        return [Reference(display=action.responsible_other)]
    return None


def _activity(action: ActionOut, goals: dict[str, str]) -> CarePlanActivity:
    detail = CarePlanActivityDetail(
        status=_ACTION_STATUS[action.status],
        description=action.title,
        performer=_performer(action),
        scheduledString=f"avant le {action.deadline.isoformat()}" if action.deadline else None,
        goal=[Reference(reference=f"#{goals[action.objective_id]}")]
        if action.objective_id in goals
        else None,
    )
    outcome = [Reference(reference=f"Task/{action.task_id}")] if action.task_id else []
    if action.appointment_id:
        outcome.append(Reference(reference=f"Appointment/{action.appointment_id}"))
    return CarePlanActivity(detail=detail, outcomeReference=outcome or None)


def care_plan(plan: PlanOut) -> dict[str, Any]:
    """The FHIR CarePlan of ``plan`` as JSON."""
    subject = Reference(reference=f"Patient/{plan.patient_id}")
    conditions = {p.id: f"pb-{p.id}" for p in plan.problems}
    goals = {o.id: f"obj-{o.id}" for o in plan.objectives}
    contained: list[Any] = [
        Condition(id=conditions[p.id], subject=subject, code=CodeableConcept(text=p.title))
        for p in plan.problems
    ]
    contained += [
        Goal(
            id=goals[o.id],
            lifecycleStatus="active",
            description=CodeableConcept(text=o.title),
            subject=subject,
            addresses=[Reference(reference=f"#{conditions[o.problem_id]}")]
            if o.problem_id in conditions
            else None,
        )
        for o in plan.objectives
    ]
    notes = [Annotation(text=t) for t in (plan.situation, plan.patient_wishes) if t]
    resource = CarePlan(
        id=str(plan.patient_id),
        status="active" if plan.status == PlanStatus.EN_COURS else "completed",
        intent="plan",
        title="Plan personnalisé de coordination en santé (PPCS)",
        subject=subject,
        created=plan.updated_at,
        author=Reference(identifier=Identifier(system=IDNATPS_SYSTEM, value=plan.updated_by))
        if plan.updated_by
        else None,
        contained=contained or None,
        addresses=[Reference(reference=f"#{c}") for c in conditions.values()] or None,
        goal=[Reference(reference=f"#{g}") for g in goals.values()] or None,
        activity=[_activity(a, goals) for a in plan.actions] or None,
        note=notes or None,
    )
    return resource.model_dump(mode="json", exclude_none=True)
