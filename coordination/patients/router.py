"""HTTP edge of the patient dossiers: parse, call one service function, answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from coordination.db import SessionDep
from coordination.ids import PatientId
from coordination.pagination import Cursor, Page
from coordination.patients import service
from coordination.patients.schemas import (
    DischargeIn,
    DuplicateWarning,
    PatientCreate,
    PatientOut,
    PatientStatus,
    PatientSummary,
    PatientUpdate,
    ReactivateIn,
)
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PatientOut,
    responses={
        409: {
            "model": DuplicateWarning,
            "description": "Likely duplicates (minimal identity): confirm with confirm_duplicate",
        },
    },
    summary="Create a patient dossier (the caller becomes its first authorised member)",
)
async def create_patient(
    body: PatientCreate, session: SessionDep, actor: CurrentActor
) -> PatientOut | JSONResponse:
    try:
        return await service.create_patient(session=session, actor=actor, data=body)
    except service.DuplicateSuspected as exc:
        warning = DuplicateWarning(errcode=exc.errcode, error=exc.message, candidates=exc.candidates)
        return JSONResponse(status_code=409, content=warning.model_dump(mode="json"))


@router.get(
    "",
    response_model=Page[PatientSummary],
    summary="Search patients by the first letters of the birth or used name (minimal identity)",
)
async def search_patients(
    session: SessionDep,
    actor: CurrentActor,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="At least 3 letters of the birth or used name (case and accents ignored)",
        ),
    ],
    birth_date: Annotated[date | None, Query(description="AAAA-MM-JJ")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> Page[PatientSummary]:
    return await service.search_patients(
        session=session, actor=actor, q=q, birth_date=birth_date, limit=limit, cursor=cursor
    )


@router.get(
    "/mine",
    response_model=Page[PatientSummary],
    summary="My patients: those whose circle authorises me or my structure",
)
async def my_patients(
    session: SessionDep,
    actor: CurrentActor,
    status_filter: Annotated[PatientStatus | None, Query(alias="status")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[PatientSummary]:
    return await service.my_patients(
        session=session, actor=actor, status=status_filter, limit=limit, cursor=cursor
    )


@router.get(
    "/{patient_id}",
    response_model=PatientOut,
    summary="The full dossier (authorised members only)",
)
async def get_patient(patient_id: PatientId, session: SessionDep, actor: CurrentActor) -> PatientOut:
    return await service.get_patient(session=session, actor=actor, patient_id=patient_id)


@router.patch(
    "/{patient_id}",
    response_model=PatientOut,
    summary="Change a dossier; send the version you read (409 if someone changed it meanwhile)",
)
async def update_patient(
    patient_id: PatientId, body: PatientUpdate, session: SessionDep, actor: CurrentActor
) -> PatientOut:
    return await service.update_patient(session=session, actor=actor, patient_id=patient_id, change=body)


@router.post(
    "/{patient_id}/discharge",
    response_model=PatientOut,
    summary="Record the patient's sortie (reason and date)",
)
async def discharge_patient(
    patient_id: PatientId, body: DischargeIn, session: SessionDep, actor: CurrentActor
) -> PatientOut:
    return await service.discharge_patient(session=session, actor=actor, patient_id=patient_id, data=body)


@router.post(
    "/{patient_id}/reactivate",
    response_model=PatientOut,
    summary="Bring a patient back after a sortie",
)
async def reactivate_patient(
    patient_id: PatientId, body: ReactivateIn, session: SessionDep, actor: CurrentActor
) -> PatientOut:
    return await service.reactivate_patient(session=session, actor=actor, patient_id=patient_id, data=body)
