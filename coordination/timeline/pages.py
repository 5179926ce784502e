"""Dashboard page of the patient's timeline (chronologie): every kind of event newest first, filtered by
kind, the form to enter an event (hospitalisation, fall...), and the complex-situation flag (shown to
the circle's authorised members; set or cleared with a reason by a DAC coordinator of the circle). Read
and written through the service: checked against the circle, audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from coordination.db import SessionDep
from coordination.directory import service as directory
from coordination.errors import ServiceError
from coordination.ids import PatientId
from coordination.patients import service as patients
from coordination.timeline import service
from coordination.timeline.schemas import ComplexSituationIn, PatientEventIn
from coordination.validation import french_validation_message
from coordination.vocab import PatientEventKind, TimelineKind
from coordination.web.deps import FormActor, PageActor, flash
from coordination.web.templating import render

router = APIRouter(prefix="/app/patients/{patient_id}/chronologie", include_in_schema=False)

PAGE_SIZE = 50
_LABELS = {"kind": "Type d'événement", "occurred_on": "Date", "title": "Intitulé", "note": "Précisions"}


@router.get("")
async def timeline_page(
    request: Request,
    patient_id: PatientId,
    actor: PageActor,
    db: SessionDep,
    type: Annotated[list[TimelineKind] | None, Query()] = None,
    curseur: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Newest first; ``type`` (repeatable) keeps only those kinds."""
    patient = await patients.get_patient(session=db, actor=actor, patient_id=patient_id)
    kinds = tuple(type or ())
    page = await service.timeline(
        session=db, actor=actor, patient_id=patient_id, kinds=kinds, limit=PAGE_SIZE, cursor=curseur
    )
    next_query = [("type", k.value) for k in kinds] + [("curseur", page.next_cursor or "")]
    situation = await service.get_complex_situation(session=db, actor=actor, patient_id=patient_id)
    dac_coordinator = bool(await directory.active_dac_ids(session=db, structure_ids=actor.structure_ids))
    return render(
        request,
        "timeline/timeline.html",
        {
            "patient": patient,
            "items": page.items,
            "next_query": next_query if page.next_cursor else None,
            "kinds": TimelineKind,
            "selected": {k.value for k in kinds},
            "event_kinds": PatientEventKind,
            "situation": situation,
            "dac_coordinator": dac_coordinator,
        },
    )


@router.post("/evenements")
async def add_event(request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep) -> Response:
    """Enter an event of the patient's life (hospitalisation, discharge, fall...)."""
    back = RedirectResponse(f"/app/patients/{patient_id}/chronologie", status_code=303)
    form = await request.form()
    try:
        data = PatientEventIn.model_validate(
            {
                "kind": form.get("kind") or None,
                "occurred_on": form.get("occurred_on") or None,
                "title": form.get("title") or None,
                "note": form.get("note") or None,
            }
        )
        await service.add_event(session=db, actor=actor, patient_id=patient_id, data=data)
    except ValidationError as exc:
        details = "; ".join(
            f"{_LABELS.get(str(e['loc'][0]), str(e['loc'][0]))} : {french_validation_message(dict(e))}"
            for e in exc.errors()
        )
        await flash(
            request, db, f"Événement non enregistré — {details}. Corrigez puis renvoyez.", kind="erreur"
        )
        return back
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return back
    await flash(request, db, "Événement ajouté à la chronologie.")
    return back


@router.post("/situation")
async def set_situation(
    request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep
) -> Response:
    """Flag (``flagged=oui``) or clear the complex situation, with the reason (a DAC coordinator)."""
    back = RedirectResponse(f"/app/patients/{patient_id}/chronologie", status_code=303)
    form = await request.form()
    try:
        data = ComplexSituationIn.model_validate(
            {"flagged": form.get("flagged") == "oui", "reason": form.get("reason") or None}
        )
        await service.set_complex_situation(session=db, actor=actor, patient_id=patient_id, data=data)
    except ValidationError as exc:
        details = "; ".join(french_validation_message(dict(e)) for e in exc.errors())
        await flash(
            request,
            db,
            f"Signalement non enregistré — Motif : {details}. Corrigez puis renvoyez.",
            kind="erreur",
        )
        return back
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return back
    done = (
        "Situation complexe signalée : le patient figure au tableau du DAC."
        if data.flagged
        else ("Signalement de situation complexe levé.")
    )
    await flash(request, db, done)
    return back
