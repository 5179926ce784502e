"""Dashboard pages of patients: search (3 letters), my patients, create (with the duplicate warning), the
patient page (identity, status, circle, documents, tasks, requests, synthesis, audit trail), and the
Element widget that shows the dossier inside a patient room.

Every section is read through the same service function as the API, so each read is checked against
the circle *now* and recorded in the audit trail exactly as an API read would be.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordination.agenda import service as agenda
from coordination.audit import service as audit
from coordination.circle import service as circle
from coordination.circle.schemas import SUGGESTED_ROLES
from coordination.dac_requests import service as dac_requests
from coordination.db import SessionDep
from coordination.directory import service as directory
from coordination.documents import service as documents
from coordination.errors import ErrCode, Forbidden, Invalid, ServiceError
from coordination.evaluations import service as evaluations
from coordination.ids import PatientId
from coordination.patients import service
from coordination.patients.schemas import DischargeIn, PatientCreate, ReactivateIn
from coordination.security import actor_for_user
from coordination.syntheses import service as syntheses
from coordination.tasks import service as tasks
from coordination.validation import french_validation_message
from coordination.vocab import (
    ConsentMode,
    DischargeReason,
    DocumentCategory,
    DocumentVisibility,
    IdentityDocumentType,
    TaskPriority,
    TaskType,
)
from coordination.web.deps import CSRF_FIELD, FormActor, PageActor, flash, matrix_auth
from coordination.web.templating import render

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/app", include_in_schema=False)

LABELS = {
    "birth_name": "Nom de naissance",
    "birth_first_names": "Prénoms de naissance",
    "birth_date": "Date de naissance",
    "sex": "Sexe",
    "birth_place_code": "Code INSEE du lieu de naissance",
    "used_name": "Nom utilisé",
    "used_first_name": "Prénom utilisé",
    "ins_number": "Matricule INS",
    "consent": "Consentement",
    "identity_document": "Pièce d'identité",
    "phone": "Téléphone",
    "email": "Courriel",
    "address": "Adresse",
    "q": "Recherche",
}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """``{form field: French sentence}`` from a pydantic refusal (first error of each field)."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        name = str(e["loc"][0]) if e["loc"] else "formulaire"
        errors.setdefault(name, french_validation_message(dict(e)))
    return errors


# --- list, search ---------------------------------------------------------------------------------


@router.get("/patients")
async def patients(
    request: Request,
    actor: PageActor,
    db: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    curseur: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Search by the first letters of the birth or used name (minimal identity), or "my patients"."""
    error = None
    page = None
    if q.strip():
        try:
            page = await service.search_patients(session=db, actor=actor, q=q, limit=20, cursor=curseur)
        except Invalid as exc:
            error = exc.message
    else:
        page = await service.my_patients(session=db, actor=actor, limit=50, cursor=curseur)
    return render(
        request, "patients/list.html", {"q": q, "page": page, "error": error, "searching": bool(q.strip())}
    )


# --- create ---------------------------------------------------------------------------------------


class CreateForm(BaseModel):
    """What the creation form sends (strings), kept to refill the form after a refusal."""

    model_config = ConfigDict(extra="ignore")

    birth_name: str = ""
    birth_first_names: str = ""
    birth_date: str = ""
    sex: str = ""
    birth_place_code: str = ""
    used_name: str = ""
    used_first_name: str = ""
    ins_number: str = ""
    consent: str = ""
    consent_mode: str = ConsentMode.ORAL.value
    identity_document: str = ""
    confirm_duplicate: str = ""

    def to_create(self) -> PatientCreate:
        data: dict[str, Any] = {
            "birth_name": self.birth_name,
            "birth_first_names": self.birth_first_names.split(),
            "birth_date": self.birth_date or None,
            "sex": self.sex or None,
            "birth_place_code": self.birth_place_code,
            "confirm_duplicate": self.confirm_duplicate == "oui",
        }
        for name in ("used_name", "used_first_name", "ins_number"):
            if value := getattr(self, name).strip():
                data[name] = value
        if self.consent in ("oui", "non"):
            data["consent"] = {"given": self.consent == "oui", "mode": self.consent_mode}
        if self.identity_document:
            data["identity_document"] = {"document_type": self.identity_document}
        return PatientCreate.model_validate(data)


def _create_context(form: CreateForm, **extra: Any) -> dict[str, Any]:
    return {
        "form": form,
        "errors": {},
        "candidates": [],
        "consent_modes": ConsentMode,
        "document_types": IdentityDocumentType,
        "labels": LABELS,
        "general_error": None,
        **extra,
    }


@router.get("/patients/nouveau")
async def create_form(request: Request, actor: PageActor) -> Response:
    return render(request, "patients/create.html", _create_context(CreateForm()))


@router.post("/patients/nouveau")
async def create(request: Request, actor: FormActor, db: SessionDep) -> Response:
    """Create the dossier; on likely duplicates, show the candidates and ask to confirm."""
    raw = await request.form()
    form = CreateForm.model_validate({k: v for k, v in raw.items() if isinstance(v, str) and k != CSRF_FIELD})
    try:
        data = form.to_create()
    except ValidationError as exc:
        return render(
            request, "patients/create.html", _create_context(form, errors=field_errors(exc)), status_code=422
        )
    try:
        created = await service.create_patient(session=db, actor=actor, data=data)
    except service.DuplicateSuspected as exc:
        return render(
            request,
            "patients/create.html",
            _create_context(form, candidates=exc.candidates, general_error=exc.message),
            status_code=409,
        )
    except Invalid as exc:
        errors = {exc.field or "formulaire": exc.message}
        return render(request, "patients/create.html", _create_context(form, errors=errors), status_code=422)
    except ServiceError as exc:
        return render(
            request,
            "patients/create.html",
            _create_context(form, general_error=exc.message),
            status_code=exc.status_code,
        )
    await flash(request, db, "Dossier créé : vous êtes son premier membre habilité.")
    return RedirectResponse(f"/app/patients/{created.id}", status_code=303)


# --- the patient page -----------------------------------------------------------------------------


async def dossier_context(db: SessionDep, actor: Any, patient_id: PatientId) -> dict[str, Any]:
    """Every section of the patient page, each read through its domain's service (audited)."""
    patient = await service.get_patient(session=db, actor=actor, patient_id=patient_id)
    members = await circle.list_members(session=db, actor=actor, patient_id=patient_id, limit=200)
    docs = await documents.list_documents(session=db, actor=actor, patient_id=patient_id, limit=100)
    patient_tasks = await tasks.list_tasks(
        session=db, actor=actor, filters=tasks.TaskFilters(patient_id=patient_id), limit=100
    )
    requests = await dac_requests.list_requests(
        session=db, actor=actor, filters=dac_requests.RequestFilters(patient_id=patient_id), limit=50
    )
    synthesis = await syntheses.get_synthesis(session=db, actor=actor, patient_id=patient_id)
    appointments = await agenda.patient_appointments(session=db, actor=actor, patient_id=patient_id, limit=50)
    trail = await audit.patient_trail(session=db, actor=actor, patient_id=patient_id, limit=50)
    people = {d.uploader_national_id for d in docs.items} | {e.actor_national_id for e in trail.items}
    people |= {t.creator_national_id for t in patient_tasks.items}
    return {
        "patient": patient,
        "members": members.items,
        "documents": docs.items,
        "tasks": patient_tasks.items,
        "requests": requests.items,
        "appointments": appointments.items,
        "synthesis": synthesis,
        "trail": trail.items,
        "names": await directory.display_names(session=db, national_ids=people),
    }


@router.get("/patients/{patient_id}")
async def patient_page(request: Request, patient_id: PatientId, actor: PageActor, db: SessionDep) -> Response:
    """The dossier: a professional outside the circle gets the French refusal page (403)."""
    context = await dossier_context(db, actor, patient_id)
    scores = await evaluations.score_history(session=db, actor=actor, patient_id=patient_id)
    last_scores = {point.form_id: point for point in scores.items}  # oldest first: the last one wins
    context.update(
        {
            "last_scores": sorted(last_scores.values(), key=lambda point: point.signed_at, reverse=True),
            "discharge_reasons": DischargeReason,
            "categories": DocumentCategory,
            "visibilities": DocumentVisibility,
            "task_types": TaskType,
            "priorities": TaskPriority,
            "roles": SUGGESTED_ROLES,
            "today": date.today().isoformat(),
        }
    )
    return render(request, "patients/patient.html", context)


def _back(patient_id: PatientId, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/app/patients/{patient_id}{anchor}", status_code=303)


def _form_error(exc: ValidationError) -> str:
    return (
        "Saisie invalide — "
        + "; ".join(f"{LABELS.get(k, k)} : {v}" for k, v in field_errors(exc).items())
        + ". Corrigez puis renvoyez."
    )


@router.post("/patients/{patient_id}/sortie")
async def discharge(request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep) -> Response:
    """Record the patient's sortie (reason, date, note when the reason is « autre »)."""
    form = await request.form()
    try:
        data = DischargeIn.model_validate(
            {
                "version": form.get("version"),
                "reason": form.get("reason") or None,
                "date": form.get("date") or None,
                "note": form.get("note") or None,
            }
        )
        await service.discharge_patient(session=db, actor=actor, patient_id=patient_id, data=data)
    except ValidationError as exc:
        await flash(request, db, _form_error(exc), kind="erreur")
        return _back(patient_id)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id)
    await flash(request, db, "Sortie enregistrée : le patient n'est plus suivi.")
    return _back(patient_id)


@router.post("/patients/{patient_id}/reactiver")
async def reactivate(request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep) -> Response:
    form = await request.form()
    try:
        data = ReactivateIn.model_validate({"version": form.get("version")})
        await service.reactivate_patient(session=db, actor=actor, patient_id=patient_id, data=data)
    except ValidationError as exc:
        await flash(request, db, _form_error(exc), kind="erreur")
        return _back(patient_id)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id)
    await flash(request, db, "Suivi réactivé.")
    return _back(patient_id)


@router.post("/patients/{patient_id}/synthese")
async def save_synthesis(
    request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep
) -> Response:
    form = await request.form()
    text, version = str(form.get("text", "")).replace("\r\n", "\n").strip(), str(form.get("version", "0"))
    if not text or not version.isdigit():
        await flash(request, db, "La synthèse est vide : écrivez-la puis enregistrez.", kind="erreur")
        return _back(patient_id, "#synthese")
    try:
        await syntheses.replace_synthesis(
            session=db, actor=actor, patient_id=patient_id, text=text, version=int(version)
        )
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id, "#synthese")
    await flash(request, db, "Synthèse enregistrée.")
    return _back(patient_id, "#synthese")


# --- Element widget -------------------------------------------------------------------------------


class WidgetAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    openid_token: str = Field(min_length=1, max_length=1024)


@router.get("/widget/patients/{patient_id}")
async def widget_shell(request: Request, patient_id: PatientId) -> Response:
    """The page Element frames: its script asks Element for an OpenID token, then loads the dossier."""
    return render(request, "patients/widget.html", {"patient_id": patient_id})


@router.post("/widget/patients/{patient_id}")
async def widget_dossier(
    request: Request, patient_id: PatientId, body: WidgetAuth, db: SessionDep
) -> Response:
    """The dossier for the professional Synapse vouches for (OpenID ``userinfo``), checked like any read.

    No cookie: the widget runs in a third-party frame, so each load proves who is looking again.
    """
    user_id = await matrix_auth(request).openid_user(openid_token=body.openid_token)
    if user_id is None:
        raise Forbidden(
            "Votre jeton Element n'a pas été reconnu par le serveur de messagerie : rechargez le widget.",
            errcode=ErrCode.UNAUTHENTICATED,
        )
    actor = await actor_for_user(session=db, user_id=user_id)
    context = await dossier_context(db, actor, patient_id)
    return render(request, "patients/widget_dossier.html", context)
