"""Dashboard pages of the PPCS (plan personnalisé de coordination en santé): the plan as it reads now,
its edit form (problems, objectives, actions with responsible, deadline and status), and the PDF.

The edit form posts the whole plan, as the API's ``PUT`` does: each row keeps its ``id``, a row whose
title is left empty is removed, and a few empty rows let a professional add items without any script.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.datastructures import FormData
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from coordination.agenda import rules as agenda_rules
from coordination.agenda import service as agenda
from coordination.circle import service as circle
from coordination.db import SessionDep
from coordination.errors import ServiceError
from coordination.ids import PatientId
from coordination.patients import service as patients
from coordination.plans import service
from coordination.plans.schemas import PlanIn
from coordination.validation import french_validation_message
from coordination.vocab import PlanActionStatus, PlanStatus
from coordination.web.deps import FormActor, PageActor, flash
from coordination.web.templating import render

router = APIRouter(prefix="/app/patients/{patient_id}/plan", include_in_schema=False)

EMPTY_ROWS = 2
"""Blank rows offered under each list, to add items."""
MAX_ROWS = 200
_LABELS = {
    "situation": "Synthèse de la situation",
    "patient_wishes": "Attentes et souhaits de la personne",
    "problems": "Problème",
    "objectives": "Objectif",
    "actions": "Action",
    "next_review_date": "Date de révision",
    "status": "Statut du plan",
    "version": "Version",
}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""


def _rows(form: FormData, kind: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The ``<kind>-<n>-<field>`` rows of the form, in order, without those whose title is empty."""
    rows = []
    for n in range(MAX_ROWS):
        if f"{kind}-{n}-title" not in form:
            break
        row = {f: _text(form, f"{kind}-{n}-{f}") for f in fields}
        if row["title"]:
            rows.append(row)
    return rows


def _or_none(value: str) -> str | None:
    return value or None


def _action(row: dict[str, str]) -> dict[str, Any]:
    responsible = row["responsible"]
    return {
        "id": _or_none(row["id"]),
        "objective_id": _or_none(row["objective_id"]),
        "title": row["title"],
        "responsible_national_id": responsible.removeprefix("pro:")
        if responsible.startswith("pro:")
        else None,
        "responsible_structure_id": responsible.removeprefix("str:")
        if responsible.startswith("str:")
        else None,
        "responsible_other": _or_none(row["responsible_other"]),
        "deadline": _or_none(row["deadline"]),
        "status": row["status"] or PlanActionStatus.A_FAIRE.value,
        "create_task": row["create_task"] == "oui",
        "appointment_id": _or_none(row["appointment_id"]),
    }


def plan_from_form(form: FormData) -> PlanIn:
    """The whole plan as the edit form sends it (a pydantic refusal when a field is wrong)."""
    problems = _rows(form, "problems", ("id", "title", "detail"))
    objectives = _rows(form, "objectives", ("id", "problem_id", "title"))
    actions = _rows(
        form,
        "actions",
        (
            "id",
            "objective_id",
            "title",
            "responsible",
            "responsible_other",
            "deadline",
            "status",
            "create_task",
            "appointment_id",
        ),
    )
    return PlanIn.model_validate(
        {
            "version": _text(form, "version") or "-1",
            "status": _text(form, "status") or PlanStatus.EN_COURS.value,
            "situation": _text(form, "situation"),
            "patient_wishes": _text(form, "patient_wishes"),
            "problems": [
                {"id": _or_none(p["id"]), "title": p["title"], "detail": p["detail"]} for p in problems
            ],
            "objectives": [
                {"id": _or_none(o["id"]), "problem_id": _or_none(o["problem_id"]), "title": o["title"]}
                for o in objectives
            ],
            "actions": [_action(a) for a in actions],
            "next_review_date": _text(form, "next_review_date") or None,
        }
    )


def _refusal(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = [str(x) for x in e["loc"]]
        where = _LABELS.get(loc[0], loc[0]) if loc else "Formulaire"
        if len(loc) > 1 and loc[1].isdigit():
            where += f" n° {int(loc[1]) + 1}"
        parts.append(f"{where} : {french_validation_message(dict(e))}")
    return "Plan non enregistré — " + "; ".join(parts) + ". Corrigez puis enregistrez à nouveau."


def appointment_choice(start: datetime, what: str, status: str) -> str:
    """An appointment in the action's list: « 12/03/2026 09:30 — Consultation (agenda) — Réservé »."""
    local = agenda_rules.to_local(start)
    return f"{local:%d/%m/%Y %H:%M} — {what} — {status}"


@router.get("")
async def plan_page(request: Request, patient_id: PatientId, actor: PageActor, db: SessionDep) -> Response:
    """The plan as it reads now, then its edit form (with a few empty rows to add items)."""
    patient = await patients.get_patient(session=db, actor=actor, patient_id=patient_id)
    plan = await service.get_plan(session=db, actor=actor, patient_id=patient_id)
    members = await circle.list_members(session=db, actor=actor, patient_id=patient_id, limit=200)
    responsibles = [
        (f"pro:{m.national_id}" if m.national_id else f"str:{m.structure_id}", f"{m.display_name} ({m.role})")
        for m in members.items
        if m.habilite and (m.national_id or m.structure_id)
    ]
    # The patient's appointments, to link one to an action (read and audited by the agenda service).
    booked = await agenda.patient_appointments(
        session=db, actor=actor, patient_id=patient_id, limit=agenda.MAX_PAGE
    )
    appointments = {
        str(a.id): appointment_choice(a.start, f"{a.event_type_name} ({a.agenda_name})", a.status.label)
        for a in booked.items
    }
    for action in plan.actions:  # a linked appointment beyond the list's first page stays selectable
        if action.appointment_id and str(action.appointment_id) not in appointments:
            appointments[str(action.appointment_id)] = (
                appointment_choice(
                    action.appointment_start,
                    action.appointment_label or "",
                    action.appointment_status_label or "",
                )
                if action.appointment_start
                else "Rendez-vous supprimé de l'agenda"
            )
    return render(
        request,
        "plans/plan.html",
        {
            "patient": patient,
            "plan": plan,
            "responsibles": responsibles,
            "appointments": appointments,
            "empty_rows": EMPTY_ROWS,
            "plan_statuses": PlanStatus,
            "action_statuses": PlanActionStatus,
            "problem_titles": {p.id: p.title for p in plan.problems},
            "objective_titles": {o.id: o.title for o in plan.objectives},
        },
    )


@router.post("")
async def save(request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep) -> Response:
    """Save the form as the plan's next version."""
    back = RedirectResponse(f"/app/patients/{patient_id}/plan", status_code=303)
    form = await request.form()
    try:
        data = plan_from_form(form)
        saved = await service.save_plan(session=db, actor=actor, patient_id=patient_id, data=data)
    except ValidationError as exc:
        await flash(request, db, _refusal(exc), kind="erreur")
        return back
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return back
    await flash(request, db, f"Plan enregistré (version {saved.version}).")
    return back


@router.get("/pdf")
async def plan_pdf(request: Request, patient_id: PatientId, actor: PageActor, db: SessionDep) -> Response:
    """The plan in PDF (the HAS model), downloaded by the browser."""
    content = await service.plan_pdf(session=db, actor=actor, patient_id=patient_id)
    return Response(
        content=content,
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="ppcs.pdf"', "Cache-Control": "no-store"},
    )
