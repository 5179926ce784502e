"""HTTP edge of the timeline, entered events and the complex-situation flag and board."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from coordination.db import SessionDep
from coordination.ids import PatientId
from coordination.pagination import Cursor, Page
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.timeline import service
from coordination.timeline.schemas import (
    BoardEntryOut,
    ComplexSituationIn,
    ComplexSituationOut,
    PatientEventIn,
    PatientEventOut,
    TimelineItemOut,
)
from coordination.vocab import TimelineKind

router = APIRouter(prefix="/api/v1/patients/{patient_id}", tags=["chronologie"])
board_router = APIRouter(prefix="/api/v1/complex-situations", tags=["chronologie"])

DacParam = Annotated[
    str | None,
    Query(
        max_length=80,
        pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$",
        description="Seulement les patients suivis par ce DAC (l'un des vôtres) ; défaut : tous vos patients",
        examples=["finess:060000099"],
    ),
]

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Pas membre habilité du cercle, ou pas coordinateur d'un DAC"},
    404: {"model": ErrorOut, "description": "Patient inconnu"},
    422: {"model": ErrorOut, "description": "Saisie invalide"},
}


@router.get(
    "/timeline", response_model=Page[TimelineItemOut], summary="Chronologie du patient", responses=_ERRORS
)
async def timeline(
    patient_id: PatientId,
    actor: CurrentActor,
    session: SessionDep,
    kind: Annotated[list[TimelineKind] | None, Query(description="Répétable ; défaut : tout")] = None,
    since: Annotated[date | None, Query(description="À partir de ce jour")] = None,
    until: Annotated[date | None, Query(description="Jusqu'à ce jour inclus")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> Page[TimelineItemOut]:
    """Newest first."""
    return await service.timeline(
        session=session,
        actor=actor,
        patient_id=patient_id,
        kinds=tuple(kind or ()),
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.post(
    "/timeline/events",
    response_model=PatientEventOut,
    status_code=201,
    summary="Saisir un événement (hospitalisation, sortie...)",
    responses=_ERRORS,
)
async def add_event(
    patient_id: PatientId, body: PatientEventIn, actor: CurrentActor, session: SessionDep
) -> PatientEventOut:
    return await service.add_event(session=session, actor=actor, patient_id=patient_id, data=body)


@router.get(
    "/complex-situation",
    response_model=ComplexSituationOut,
    summary="Situation complexe ?",
    responses=_ERRORS,
)
async def get_complex_situation(
    patient_id: PatientId, actor: CurrentActor, session: SessionDep
) -> ComplexSituationOut:
    return await service.get_complex_situation(session=session, actor=actor, patient_id=patient_id)


@router.put(
    "/complex-situation",
    response_model=ComplexSituationOut,
    summary="Signaler ou lever une situation complexe (coordinateur DAC)",
    responses=_ERRORS,
)
async def set_complex_situation(
    patient_id: PatientId, body: ComplexSituationIn, actor: CurrentActor, session: SessionDep
) -> ComplexSituationOut:
    return await service.set_complex_situation(session=session, actor=actor, patient_id=patient_id, data=body)


@board_router.get(
    "",
    response_model=Page[BoardEntryOut],
    summary="Tableau du DAC : situations complexes, prochaine révision d'abord",
    responses=_ERRORS,
)
async def complex_board(
    actor: CurrentActor,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
    cursor: Cursor = None,
    dac_id: DacParam = None,
) -> Page[BoardEntryOut]:
    return await service.complex_board(session=session, actor=actor, limit=limit, cursor=cursor, dac=dac_id)


@board_router.get(
    "/count", response_model=int, summary="Indicateur : nombre de situations complexes", responses=_ERRORS
)
async def count_complex_situations(actor: CurrentActor, session: SessionDep, dac_id: DacParam = None) -> int:
    return await service.count_complex_situations(session=session, actor=actor, dac=dac_id)
