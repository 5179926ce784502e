"""HTTP edge of evaluations and their forms: parse, call one service function, format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from coordination.db import SessionDep
from coordination.evaluations import service
from coordination.evaluations.schemas import (
    EvaluationCreate,
    EvaluationOut,
    EvaluationUpdate,
    FormOut,
    FormSummaryOut,
    ScorePointOut,
)
from coordination.ids import EvaluationId, PatientId
from coordination.pagination import Cursor, Page
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.vocab import EvaluationStatus

forms_router = APIRouter(prefix="/api/v1/evaluation-forms", tags=["évaluations"])
router = APIRouter(prefix="/api/v1/patients/{patient_id}/evaluations", tags=["évaluations"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Pas membre habilité du cercle de soins"},
    404: {"model": ErrorOut, "description": "Patient, évaluation ou formulaire inconnu"},
    409: {"model": ErrorOut, "description": "Version périmée, ou évaluation déjà signée"},
    422: {"model": ErrorOut, "description": "Réponse invalide, ou signature d'une évaluation incomplète"},
}
FormIdQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")]


def _forms_dir(request: Request) -> Path | None:
    forms_dir: Path | None = request.app.state.settings.evaluation_forms_dir
    return forms_dir


@forms_router.get("", response_model=Page[FormSummaryOut], summary="Formulaires d'évaluation disponibles")
async def list_forms(request: Request, actor: CurrentActor) -> Page[FormSummaryOut]:
    return service.list_forms(forms_dir=_forms_dir(request))


@forms_router.get("/{form_id}", response_model=FormOut, summary="Un formulaire et son Questionnaire FHIR")
async def get_form(form_id: str, request: Request, actor: CurrentActor) -> FormOut:
    return service.get_form(forms_dir=_forms_dir(request), form_id=form_id)


@router.post(
    "", response_model=EvaluationOut, status_code=201, summary="Commencer une évaluation", responses=_ERRORS
)
async def create_evaluation(
    patient_id: PatientId, body: EvaluationCreate, request: Request, actor: CurrentActor, session: SessionDep
) -> EvaluationOut:
    return await service.create_evaluation(
        session=session, actor=actor, patient_id=patient_id, data=body, forms_dir=_forms_dir(request)
    )


@router.get("", response_model=Page[EvaluationOut], summary="Évaluations du patient", responses=_ERRORS)
async def list_evaluations(
    patient_id: PatientId,
    actor: CurrentActor,
    session: SessionDep,
    form_id: FormIdQuery = None,
    status: Annotated[EvaluationStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> Page[EvaluationOut]:
    """Newest first."""
    return await service.list_evaluations(
        session=session,
        actor=actor,
        patient_id=patient_id,
        form_id=form_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/scores",
    response_model=Page[ScorePointOut],
    summary="Évolution des scores (évaluations signées)",
    responses=_ERRORS,
)
async def score_history(
    patient_id: PatientId,
    actor: CurrentActor,
    session: SessionDep,
    form_id: FormIdQuery = None,
) -> Page[ScorePointOut]:
    return await service.score_history(session=session, actor=actor, patient_id=patient_id, form_id=form_id)


@router.get(
    "/{evaluation_id}", response_model=EvaluationOut, summary="Lire une évaluation", responses=_ERRORS
)
async def get_evaluation(
    patient_id: PatientId, evaluation_id: EvaluationId, actor: CurrentActor, session: SessionDep
) -> EvaluationOut:
    return await service.get_evaluation(
        session=session, actor=actor, patient_id=patient_id, evaluation_id=evaluation_id
    )


@router.patch(
    "/{evaluation_id}",
    response_model=EvaluationOut,
    summary="Enregistrer des réponses (brouillon) ou signer",
    responses=_ERRORS,
)
async def update_evaluation(
    patient_id: PatientId,
    evaluation_id: EvaluationId,
    body: EvaluationUpdate,
    request: Request,
    actor: CurrentActor,
    session: SessionDep,
) -> EvaluationOut:
    return await service.update_evaluation(
        session=session,
        actor=actor,
        patient_id=patient_id,
        evaluation_id=evaluation_id,
        data=body,
        forms_dir=_forms_dir(request),
    )


@router.get(
    "/{evaluation_id}/fhir",
    summary="L'évaluation en QuestionnaireResponse FHIR R4",
    responses=_ERRORS,
)
async def export_response(
    patient_id: PatientId,
    evaluation_id: EvaluationId,
    request: Request,
    actor: CurrentActor,
    session: SessionDep,
) -> dict[str, Any]:
    return await service.export_response(
        session=session,
        actor=actor,
        patient_id=patient_id,
        evaluation_id=evaluation_id,
        forms_dir=_forms_dir(request),
    )
