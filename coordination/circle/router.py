"""HTTP edge of the care circle: parse, call one service function, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from coordination.circle import service
from coordination.circle.schemas import MemberCard, MemberIn, MemberOut, MemberUpdate
from coordination.db import SessionDep
from coordination.ids import MemberId, PatientId
from coordination.pagination import Cursor, Page
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients/{patient_id}/circle", tags=["cercle de soins"])


@router.get("", response_model=Page[MemberOut], summary="The patient's care circle (authorised members only)")
async def list_members(
    patient_id: PatientId,
    session: SessionDep,
    actor: CurrentActor,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> Page[MemberOut]:
    return await service.list_members(
        session=session, actor=actor, patient_id=patient_id, limit=limit, cursor=cursor
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    summary="Add a directory professional, a directory structure, or a relative typed by hand",
)
async def add_member(
    patient_id: PatientId,
    member: Annotated[MemberIn, Body()],
    session: SessionDep,
    actor: CurrentActor,
) -> MemberOut:
    return await service.add_member(session=session, actor=actor, patient_id=patient_id, member=member)


@router.get(
    "/{member_id}",
    response_model=MemberCard,
    summary="A member's card with the directory details",
)
async def get_member(
    patient_id: PatientId, member_id: MemberId, session: SessionDep, actor: CurrentActor
) -> MemberCard:
    return await service.get_member_card(
        session=session, actor=actor, patient_id=patient_id, member_id=member_id
    )


@router.patch(
    "/{member_id}",
    response_model=MemberOut,
    summary="Change a member's role or habilitation (never the last authorised member's)",
)
async def update_member(
    patient_id: PatientId,
    member_id: MemberId,
    change: MemberUpdate,
    session: SessionDep,
    actor: CurrentActor,
) -> MemberOut:
    return await service.update_member(
        session=session, actor=actor, patient_id=patient_id, member_id=member_id, change=change
    )


@router.delete(
    "/{member_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove a member (never the last authorised one)",
)
async def remove_member(
    patient_id: PatientId, member_id: MemberId, session: SessionDep, actor: CurrentActor
) -> Response:
    await service.remove_member(session=session, actor=actor, patient_id=patient_id, member_id=member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
