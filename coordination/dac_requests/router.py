"""HTTP edge of requests to a DAC: parse, call one service function, return its read model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coordination.dac_requests import service as dac_requests
from coordination.dac_requests.schemas import (
    AnswerIn,
    DacRoomIn,
    DacRoomOut,
    RequestCreate,
    RequestOut,
    RequestUpdate,
    StructureIdStr,
    VersionIn,
)
from coordination.db import SessionDep
from coordination.ids import PatientId, RequestId, StructureId
from coordination.pagination import Cursor, Page
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.vocab import RequestStatus, Urgency

router = APIRouter(prefix="/api/v1/requests", tags=["demandes DAC"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Inactif, non habilité, ou pas l'auteur / le DAC"},
    404: {"model": ErrorOut, "description": "Demande inconnue ou non accessible"},
    409: {"model": ErrorOut, "description": "Version périmée ou transition de statut interdite"},
    422: {"model": ErrorOut, "description": "Saisie invalide, structure qui n'est pas un DAC"},
}


@router.post(
    "",
    response_model=RequestOut,
    status_code=201,
    summary="Créer une demande (brouillon)",
    responses=_ERRORS,
)
async def create_request(body: RequestCreate, actor: CurrentActor, session: SessionDep) -> RequestOut:
    return await dac_requests.create_request(session=session, actor=actor, data=body)


@router.get("", response_model=Page[RequestOut], summary="Tableau de bord des demandes", responses=_ERRORS)
async def list_requests(
    actor: CurrentActor,
    session: SessionDep,
    dac: Annotated[str | None, Query(max_length=80, description="Structure du DAC")] = None,
    status: Annotated[list[RequestStatus] | None, Query(description="Répétable")] = None,
    urgency: Annotated[list[Urgency] | None, Query(description="Répétable")] = None,
    min_age_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    max_age_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    patient_id: Annotated[PatientId | None, Query()] = None,
    mine: Annotated[bool, Query(description="Seulement les demandes que j'ai créées")] = False,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=dac_requests.MAX_PAGE)] = 50,
) -> Page[RequestOut]:
    """Requests I sent, and those received by the DACs I work at; newest received first."""
    return await dac_requests.list_requests(
        session=session,
        actor=actor,
        filters=dac_requests.RequestFilters(
            dac=StructureId(dac) if dac else None,
            statuses=tuple(dict.fromkeys(status or [])),
            urgencies=tuple(dict.fromkeys(urgency or [])),
            min_age_days=min_age_days,
            max_age_days=max_age_days,
            patient_id=patient_id,
            mine=mine,
        ),
        limit=limit,
        cursor=cursor,
    )


@router.get("/{request_id}", response_model=RequestOut, summary="Lire une demande", responses=_ERRORS)
async def get_request(request_id: RequestId, actor: CurrentActor, session: SessionDep) -> RequestOut:
    return await dac_requests.get_request(session=session, actor=actor, request_id=request_id)


@router.patch(
    "/{request_id}",
    response_model=RequestOut,
    summary="Modifier les étapes 1 et 2 (brouillon)",
    responses=_ERRORS,
)
async def update_request(
    request_id: RequestId, body: RequestUpdate, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    return await dac_requests.update_request(session=session, actor=actor, request_id=request_id, data=body)


@router.post("/{request_id}/send", response_model=RequestOut, summary="Envoyer au DAC", responses=_ERRORS)
async def send_request(
    request_id: RequestId, body: VersionIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    return await dac_requests.send_request(
        session=session, actor=actor, request_id=request_id, version=body.version
    )


@router.post(
    "/{request_id}/cancel", response_model=RequestOut, summary="Annuler la demande", responses=_ERRORS
)
async def cancel_request(
    request_id: RequestId, body: VersionIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    return await dac_requests.cancel_request(
        session=session, actor=actor, request_id=request_id, version=body.version
    )


@router.post(
    "/{request_id}/take",
    response_model=RequestOut,
    summary="Prendre en charge (DAC)",
    responses=_ERRORS,
)
async def take_request(
    request_id: RequestId, body: VersionIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    return await dac_requests.take_request(
        session=session, actor=actor, request_id=request_id, version=body.version
    )


@router.post(
    "/{request_id}/answer",
    response_model=RequestOut,
    summary="Répondre (étape 3, DAC)",
    responses=_ERRORS,
)
async def answer_request(
    request_id: RequestId, body: AnswerIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    return await dac_requests.answer_request(session=session, actor=actor, request_id=request_id, data=body)


# --- the DAC's own room (its coordinators) --------------------------------------------------------
dac_router = APIRouter(prefix="/api/v1/dacs", tags=["demandes DAC"])

_ROOM_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Pas coordinateur de ce DAC (ou inactif)"},
    409: {"model": ErrorOut, "description": "Salon déjà rattaché à un patient, un thème ou un autre DAC"},
}


@dac_router.get(
    "/{structure_id}/room",
    response_model=DacRoomOut,
    summary="Salon du DAC (où ses coordinateurs apprennent les nouvelles demandes)",
    responses=_ROOM_ERRORS,
)
async def get_dac_room(structure_id: StructureIdStr, actor: CurrentActor, session: SessionDep) -> DacRoomOut:
    """``room_id`` null: each coordinator gets a direct message from the bot."""
    return await dac_requests.get_dac_room(session=session, actor=actor, dac_structure_id=structure_id)


@dac_router.put(
    "/{structure_id}/room",
    response_model=DacRoomOut,
    summary="Choisir le salon du DAC (coordinateurs du DAC)",
    responses=_ROOM_ERRORS,
)
async def set_dac_room(
    structure_id: StructureIdStr, body: DacRoomIn, actor: CurrentActor, session: SessionDep
) -> DacRoomOut:
    """New requests are announced in this room (encrypted, with the bot in it), mentioning the
    coordinators; the coordinators not in it still get a direct message."""
    return await dac_requests.set_dac_room(
        session=session, actor=actor, dac_structure_id=structure_id, room_id=body.room_id
    )


@dac_router.delete(
    "/{structure_id}/room",
    response_model=DacRoomOut,
    summary="Ne plus utiliser de salon du DAC (un message direct à chaque coordinateur)",
    responses=_ROOM_ERRORS,
)
async def clear_dac_room(
    structure_id: StructureIdStr, actor: CurrentActor, session: SessionDep
) -> DacRoomOut:
    return await dac_requests.clear_dac_room(session=session, actor=actor, dac_structure_id=structure_id)
