"""HTTP edge of requests to a DAC: parse, call one service function, format."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from coordination.dac_requests import rules
from coordination.dac_requests import service as dac_requests
from coordination.dac_requests.models import DacRequest
from coordination.dac_requests.schemas import (
    AnswerIn,
    RequestCreate,
    RequestOut,
    RequestPage,
    RequestStatus,
    RequestUpdate,
    Urgency,
    VersionIn,
)
from coordination.db import SessionDep, utcnow
from coordination.ids import PatientId, RequestId, StructureId
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/requests", tags=["demandes DAC"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Inactif, non habilité, ou pas l'auteur / le DAC"},
    404: {"model": ErrorOut, "description": "Demande inconnue ou non accessible"},
    409: {"model": ErrorOut, "description": "Version périmée ou transition de statut interdite"},
    422: {"model": ErrorOut, "description": "Saisie invalide, structure qui n'est pas un DAC"},
}


def _out(req: DacRequest, names: dict[str, str]) -> RequestOut:
    return RequestOut(
        id=req.id,
        version=req.version,
        patient_id=req.patient_id,
        dac_structure_id=req.dac_structure_id,
        dac_name=names.get(req.dac_structure_id, req.dac_structure_id),
        status=req.status,
        status_label=rules.REQUEST_STATUSES.get(req.status, req.status),
        urgency=req.urgency,
        urgency_label=rules.URGENCIES.get(req.urgency, req.urgency),
        reason=req.reason,
        description=req.description,
        requester_user_id=req.requester_user_id,
        requester_national_id=req.requester_national_id,
        requester_structure_id=req.requester_structure_id,
        contact_phone=req.contact_phone,
        contact_email=req.contact_email,
        actions=list(req.actions),
        alerts=list(req.alerts),
        decision=req.decision,
        decision_label=rules.DECISIONS.get(req.decision) if req.decision else None,
        answer_comment=req.answer_comment,
        patient_included=req.patient_included,
        taken_by_national_id=req.taken_by_national_id,
        answered_by_national_id=req.answered_by_national_id,
        created_at=req.created_at,
        updated_at=req.updated_at,
        received_at=req.received_at,
        sent_at=req.sent_at,
        taken_at=req.taken_at,
        answered_at=req.answered_at,
        cancelled_at=req.cancelled_at,
        age_days=max(0, (utcnow() - req.received_at).days),
    )


async def _one(session: SessionDep, req: DacRequest) -> RequestOut:
    return _out(req, await dac_requests.dac_names(session=session, structure_ids=[req.dac_structure_id]))


@router.post(
    "",
    response_model=RequestOut,
    status_code=201,
    summary="Créer une demande (brouillon)",
    responses=_ERRORS,
)
async def create_request(body: RequestCreate, actor: CurrentActor, session: SessionDep) -> RequestOut:
    return await _one(session, await dac_requests.create_request(session=session, actor=actor, data=body))


@router.get("", response_model=RequestPage, summary="Tableau de bord des demandes", responses=_ERRORS)
async def list_requests(
    actor: CurrentActor,
    session: SessionDep,
    dac: Annotated[str | None, Query(max_length=80, description="Structure du DAC")] = None,
    status: Annotated[list[RequestStatus] | None, Query(description="Répétable")] = None,
    urgency: Annotated[list[Urgency] | None, Query(description="Répétable")] = None,
    min_age_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    max_age_days: Annotated[int | None, Query(ge=0, le=36500)] = None,
    patient_id: Annotated[uuid.UUID | None, Query()] = None,
    mine: Annotated[bool, Query(description="Seulement les demandes que j'ai créées")] = False,
    limit: Annotated[int, Query(ge=1, le=dac_requests.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RequestPage:
    """Requests I sent, and those received by the DACs I work at; newest received first."""
    page, next_offset = await dac_requests.list_requests(
        session=session,
        actor=actor,
        filters=dac_requests.RequestFilters(
            dac=StructureId(dac) if dac else None,
            statuses=tuple(dict.fromkeys(status or [])),
            urgencies=tuple(dict.fromkeys(urgency or [])),
            min_age_days=min_age_days,
            max_age_days=max_age_days,
            patient_id=PatientId(patient_id) if patient_id else None,
            mine=mine,
        ),
        limit=limit,
        offset=offset,
    )
    names = await dac_requests.dac_names(session=session, structure_ids=[r.dac_structure_id for r in page])
    return RequestPage(items=[_out(r, names) for r in page], next_offset=next_offset)


@router.get("/{request_id}", response_model=RequestOut, summary="Lire une demande", responses=_ERRORS)
async def get_request(request_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> RequestOut:
    req = await dac_requests.get_request(session=session, actor=actor, request_id=RequestId(request_id))
    return await _one(session, req)


@router.patch(
    "/{request_id}",
    response_model=RequestOut,
    summary="Modifier les étapes 1 et 2 (brouillon)",
    responses=_ERRORS,
)
async def update_request(
    request_id: uuid.UUID, body: RequestUpdate, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    req = await dac_requests.update_request(
        session=session, actor=actor, request_id=RequestId(request_id), data=body
    )
    return await _one(session, req)


@router.post("/{request_id}/send", response_model=RequestOut, summary="Envoyer au DAC", responses=_ERRORS)
async def send_request(
    request_id: uuid.UUID, body: VersionIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    req = await dac_requests.send_request(
        session=session, actor=actor, request_id=RequestId(request_id), version=body.version
    )
    return await _one(session, req)


@router.post(
    "/{request_id}/cancel", response_model=RequestOut, summary="Annuler la demande", responses=_ERRORS
)
async def cancel_request(
    request_id: uuid.UUID, body: VersionIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    req = await dac_requests.cancel_request(
        session=session, actor=actor, request_id=RequestId(request_id), version=body.version
    )
    return await _one(session, req)


@router.post(
    "/{request_id}/take",
    response_model=RequestOut,
    summary="Prendre en charge (DAC)",
    responses=_ERRORS,
)
async def take_request(
    request_id: uuid.UUID, body: VersionIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    req = await dac_requests.take_request(
        session=session, actor=actor, request_id=RequestId(request_id), version=body.version
    )
    return await _one(session, req)


@router.post(
    "/{request_id}/answer",
    response_model=RequestOut,
    summary="Répondre (étape 3, DAC)",
    responses=_ERRORS,
)
async def answer_request(
    request_id: uuid.UUID, body: AnswerIn, actor: CurrentActor, session: SessionDep
) -> RequestOut:
    req = await dac_requests.answer_request(
        session=session, actor=actor, request_id=RequestId(request_id), data=body
    )
    return await _one(session, req)
