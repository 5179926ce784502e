"""HTTP edge of the care circle: parse, call one service function, answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from coordination.circle import service
from coordination.circle.schemas import CircleOut, MemberCard, MemberIn, MemberOut, MemberUpdate
from coordination.db import SessionDep
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients/{patient_id}/circle", tags=["cercle de soins"])


@router.get("", response_model=CircleOut, summary="The patient's care circle (authorised members only)")
async def list_members(patient_id: uuid.UUID, session: SessionDep, actor: CurrentActor) -> CircleOut:
    members = await service.list_members(session=session, actor=actor, patient_id=patient_id)
    return CircleOut(patient_id=patient_id, members=members)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    summary="Add a directory professional, a directory structure, or a relative typed by hand",
)
async def add_member(
    patient_id: uuid.UUID,
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
    patient_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, actor: CurrentActor
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
    patient_id: uuid.UUID,
    member_id: uuid.UUID,
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
    patient_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, actor: CurrentActor
) -> Response:
    await service.remove_member(session=session, actor=actor, patient_id=patient_id, member_id=member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
