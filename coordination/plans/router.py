"""HTTP edge of the PPCS: parse, call one service function, format."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from coordination.db import SessionDep
from coordination.errors import Invalid
from coordination.ids import PatientId
from coordination.pagination import Cursor, Page, decode_cursor, encode_cursor
from coordination.plans import service
from coordination.plans.schemas import PlanIn, PlanOut, PlanVersionOut
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients/{patient_id}/plan", tags=["plan personnalisé (PPCS)"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Pas membre habilité du cercle de soins"},
    404: {"model": ErrorOut, "description": "Patient inconnu"},
    409: {"model": ErrorOut, "description": "Version périmée, ou consentement du patient non enregistré"},
    422: {
        "model": ErrorOut,
        "description": "Saisie invalide, responsable hors du cercle, ou pas encore de plan",
    },
}


@router.get("", response_model=PlanOut, summary="Le plan en cours", responses=_ERRORS)
async def get_plan(patient_id: PatientId, actor: CurrentActor, session: SessionDep) -> PlanOut:
    return await service.get_plan(session=session, actor=actor, patient_id=patient_id)


@router.put("", response_model=PlanOut, summary="Enregistrer une nouvelle version du plan", responses=_ERRORS)
async def save_plan(patient_id: PatientId, body: PlanIn, actor: CurrentActor, session: SessionDep) -> PlanOut:
    return await service.save_plan(session=session, actor=actor, patient_id=patient_id, data=body)


@router.get(
    "/versions", response_model=Page[PlanVersionOut], summary="Versions enregistrées", responses=_ERRORS
)
async def list_versions(
    patient_id: PatientId,
    actor: CurrentActor,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_VERSIONS_PAGE)] = 20,
) -> Page[PlanVersionOut]:
    position = decode_cursor(cursor)
    before = position.get("before") if position else None
    if before is not None and not isinstance(before, int):
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor")
    items, next_before = await service.list_versions(
        session=session, actor=actor, patient_id=patient_id, before=before, limit=limit
    )
    return Page(items=items, next_cursor=encode_cursor({"before": next_before}) if next_before else None)


@router.get(
    "/pdf",
    response_class=Response,
    summary="Le plan en PDF (modèle HAS du PPCS)",
    responses={**_ERRORS, 200: {"content": {"application/pdf": {}}, "description": "Le PDF"}},
)
async def plan_pdf(patient_id: PatientId, actor: CurrentActor, session: SessionDep) -> Response:
    content = await service.plan_pdf(session=session, actor=actor, patient_id=patient_id)
    return Response(
        content=content,
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="ppcs.pdf"', "Cache-Control": "no-store"},
    )


@router.get("/fhir", summary="Le plan en CarePlan FHIR R4", responses=_ERRORS)
async def plan_care_plan(patient_id: PatientId, actor: CurrentActor, session: SessionDep) -> dict[str, Any]:
    return await service.plan_care_plan(session=session, actor=actor, patient_id=patient_id)
