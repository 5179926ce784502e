"""Dashboard pages of evaluations: the patient's list and score history, starting one, and the form
page rendered generically from the form's FHIR Questionnaire (each item type becomes a labelled input).

"Enregistrer le brouillon" and "Signer" both post the whole form, which works without any script; with
the dashboard's htmx (a file of the site: the CSP forbids inline code only), the form also saves itself
as a draft a moment after each change (``/brouillon``, a fragment: the status line and the new
version). Every read and write goes through the service, so it is checked against the circle and
audited exactly as through the API.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.datastructures import FormData
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from coordination.db import SessionDep, utcnow
from coordination.errors import Conflict, Invalid, ServiceError
from coordination.evaluations import service
from coordination.evaluations.schemas import (
    EvaluationCreate,
    EvaluationOut,
    EvaluationUpdate,
    FormOut,
    ItemOut,
)
from coordination.ids import EvaluationId, PatientId
from coordination.patients import service as patients
from coordination.security import Actor
from coordination.web.deps import FormActor, PageActor, flash
from coordination.web.templating import render

router = APIRouter(prefix="/app/patients/{patient_id}/evaluations", include_in_schema=False)

FIELD_PREFIX = "q-"
"""Form fields of answers are ``q-<linkId>`` so they never collide with the page's own fields."""


def _forms_dir(request: Request) -> Path | None:
    forms_dir: Path | None = request.app.state.settings.evaluation_forms_dir
    return forms_dir


def _value(item: ItemOut, raw: str) -> Any:
    """The typed answer of one field (``None`` clears it); a value that is not a number is refused."""
    raw = raw.strip()
    if not raw:
        return None
    if item.type == "boolean":
        return raw == "oui"
    if item.type in ("integer", "decimal"):
        try:
            number = float(raw.replace(",", ".").replace(" ", ""))
        except ValueError:
            raise Invalid(
                f"Question « {item.text} » : écrivez un nombre (par exemple 12 ou 3,5).",
                field=f"answers.{item.link_id}",
            ) from None
        return int(number) if item.type == "integer" and number.is_integer() else number
    return raw.replace("\r\n", "\n")


def _shown(answers: dict[str, Any]) -> dict[str, str]:
    """The stored answers as the form's fields show them."""
    shown = {}
    for link_id, value in answers.items():
        if isinstance(value, bool):
            shown[link_id] = "oui" if value else "non"
        elif isinstance(value, float) and value.is_integer():
            shown[link_id] = str(int(value))
        else:
            shown[link_id] = str(value).replace(".", ",") if isinstance(value, float) else str(value)
    return shown


@router.get("")
async def evaluations_page(
    request: Request, patient_id: PatientId, actor: PageActor, db: SessionDep
) -> Response:
    """The patient's evaluations (drafts and signed), the history of scores, and the forms to start."""
    patient = await patients.get_patient(session=db, actor=actor, patient_id=patient_id)
    evaluations = await service.list_evaluations(session=db, actor=actor, patient_id=patient_id, limit=100)
    scores = await service.score_history(session=db, actor=actor, patient_id=patient_id)
    forms = service.list_forms(forms_dir=_forms_dir(request))
    return render(
        request,
        "evaluations/list.html",
        {
            "patient": patient,
            "evaluations": evaluations.items,
            "scores": list(reversed(scores.items)),
            "forms": forms.items,
        },
    )


@router.post("")
async def start(request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep) -> Response:
    """Start a draft with the chosen form, then open its page."""
    form = await request.form()
    back = RedirectResponse(f"/app/patients/{patient_id}/evaluations", status_code=303)
    try:
        data = EvaluationCreate(form_id=str(form.get("form_id", "")))
        created = await service.create_evaluation(
            session=db, actor=actor, patient_id=patient_id, data=data, forms_dir=_forms_dir(request)
        )
    except ValidationError:
        await flash(request, db, "Choisissez un formulaire dans la liste, puis recommencez.", kind="erreur")
        return back
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return back
    return RedirectResponse(f"/app/patients/{patient_id}/evaluations/{created.id}", status_code=303)


async def _form_page(
    request: Request,
    db: SessionDep,
    actor: Actor,
    evaluation: EvaluationOut,
    *,
    values: dict[str, str] | None = None,
    error: Invalid | None = None,
) -> Response:
    patient = await patients.get_patient(session=db, actor=actor, patient_id=evaluation.patient_id)
    form: FormOut = service.get_form(forms_dir=_forms_dir(request), form_id=evaluation.form_id)
    sections: list[tuple[str | None, list[ItemOut]]] = []
    for item in form.items:
        if not sections or sections[-1][0] != item.section_text:
            sections.append((item.section_text, []))
        sections[-1][1].append(item)
    field = error.field.removeprefix("answers.") if error is not None and error.field else None
    return render(
        request,
        "evaluations/form.html",
        {
            "patient": patient,
            "evaluation": evaluation,
            "form": form,
            "sections": sections,
            "values": values if values is not None else _shown(evaluation.answers),
            "error": error.message if error is not None else None,
            "error_field": field,
            "prefix": FIELD_PREFIX,
        },
        status_code=422 if error is not None else 200,
    )


@router.get("/{evaluation_id}")
async def evaluation_page(
    request: Request, patient_id: PatientId, evaluation_id: EvaluationId, actor: PageActor, db: SessionDep
) -> Response:
    """The form to fill (a draft), or the signed evaluation with its score (read-only)."""
    evaluation = await service.get_evaluation(
        session=db, actor=actor, patient_id=patient_id, evaluation_id=evaluation_id
    )
    return await _form_page(request, db, actor, evaluation)


async def _refill(
    request: Request,
    db: SessionDep,
    actor: Actor,
    patient_id: PatientId,
    evaluation_id: EvaluationId,
    values: dict[str, str],
    error: Invalid,
) -> Response:
    """The form again with what was typed and the French reason (nothing was saved)."""
    await db.rollback()
    current = await service.get_evaluation(
        session=db, actor=actor, patient_id=patient_id, evaluation_id=evaluation_id
    )
    return await _form_page(request, db, actor, current, values=values, error=error)


def _answer_fields(raw: FormData) -> dict[str, str]:
    return {
        k.removeprefix(FIELD_PREFIX): v
        for k, v in raw.items()
        if k.startswith(FIELD_PREFIX) and isinstance(v, str)
    }


AUTOSAVE_GRACE = timedelta(seconds=30)


def _own_recent_draft(current: EvaluationOut, actor: Actor) -> bool:
    """The draft was last saved by ``actor`` within the autosave's grace period."""
    updated_at = current.updated_at
    if updated_at.tzinfo is None:  # SQLite gives back naive UTC
        updated_at = updated_at.replace(tzinfo=UTC)
    return (
        current.signed_by is None
        and current.updated_by == actor.national_id
        and utcnow() - updated_at < AUTOSAVE_GRACE
    )


async def _save_answers(
    request: Request,
    db: SessionDep,
    actor: Actor,
    patient_id: PatientId,
    evaluation_id: EvaluationId,
    raw: FormData,
    *,
    sign: bool,
    after_own_autosave: bool = False,
) -> EvaluationOut:
    """Every answer of the posted form, typed by its question, saved (and signed when asked) through
    the service. Raises ``Invalid``, pydantic's ``ValidationError`` or another ``ServiceError``.
    ``after_own_autosave``: a button's post may follow this page's own autosave (see below)."""
    version = str(raw.get("version", ""))
    values = _answer_fields(raw)
    current = await service.get_evaluation(
        session=db, actor=actor, patient_id=patient_id, evaluation_id=evaluation_id
    )
    form = service.get_form(forms_dir=_forms_dir(request), form_id=current.form_id)
    answers = {item.link_id: _value(item, values.get(item.link_id, "")) for item in form.items}
    if not version.isdigit() or not 1 <= int(version) < 2**31:
        raise Invalid("Formulaire incomplet : rechargez la page puis recommencez.")
    wanted = int(version)
    if after_own_autosave and wanted < current.version and _own_recent_draft(current, actor):
        # The button was pressed while this page's autosave was in flight: that autosave (same
        # person, seconds ago) took the version the page had not received yet. The posted form
        # holds every answer and is the newer one, so it goes on top instead of a "modified by
        # another member" refusal. Another member's save in between is still refused.
        wanted = current.version
    return await service.update_evaluation(
        session=db,
        actor=actor,
        patient_id=patient_id,
        evaluation_id=evaluation_id,
        data=EvaluationUpdate(version=wanted, answers=answers, sign=sign),
        forms_dir=_forms_dir(request),
    )


@router.post("/{evaluation_id}/brouillon")
async def autosave(
    request: Request, patient_id: PatientId, evaluation_id: EvaluationId, actor: FormActor, db: SessionDep
) -> Response:
    """The form's autosave (htmx, a moment after each change): the answers saved as a draft; answers a
    fragment, the status line and the new version for the form (out of band). A refusal of the
    answers (a value that is not a number, a stale version) is said in that line, status 200 so the
    page shows it; one of access keeps its status (403, 404) and says nothing of the patient."""
    raw = await request.form()
    try:
        saved = await _save_answers(request, db, actor, patient_id, evaluation_id, raw, sign=False)
    except ValidationError:
        await db.rollback()
        return _autosaved(request, None, "Une réponse dépasse 5 000 caractères : raccourcissez-la.")
    except (Invalid, Conflict) as exc:
        await db.rollback()
        return _autosaved(request, None, exc.message)
    except ServiceError as exc:
        await db.rollback()
        return _autosaved(request, None, exc.message, status_code=exc.status_code)
    return _autosaved(request, saved, None)


def _autosaved(
    request: Request, saved: EvaluationOut | None, error: str | None, *, status_code: int = 200
) -> Response:
    return render(
        request,
        "evaluations/_autosave.html",
        {"saved": saved, "error": error, "at": utcnow()},
        status_code=status_code,
    )


@router.post("/{evaluation_id}")
async def save(
    request: Request, patient_id: PatientId, evaluation_id: EvaluationId, actor: FormActor, db: SessionDep
) -> Response:
    """Save every answer as a draft (an empty field clears its answer), or sign when asked."""
    raw = await request.form()
    sign = raw.get("action") == "signer"
    back = f"/app/patients/{patient_id}/evaluations/{evaluation_id}"
    values = _answer_fields(raw)
    try:
        saved = await _save_answers(
            request, db, actor, patient_id, evaluation_id, raw, sign=sign, after_own_autosave=True
        )
    except ValidationError:
        too_long = Invalid("Une réponse dépasse 5 000 caractères : raccourcissez-la puis enregistrez.")
        return await _refill(request, db, actor, patient_id, evaluation_id, values, too_long)
    except Invalid as exc:
        return await _refill(request, db, actor, patient_id, evaluation_id, values, exc)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return RedirectResponse(back, status_code=303)
    if sign:
        result = f" Résultat : {saved.score_label}." if saved.score_label else ""
        await flash(request, db, f"Évaluation signée.{result}")
    else:
        await flash(request, db, "Brouillon enregistré.")
    return RedirectResponse(back, status_code=303)
