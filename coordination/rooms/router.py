"""HTTP edge of the room links: parse, call one service function, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from coordination.db import SessionDep
from coordination.ids import PatientId, RoomId, UserId
from coordination.pagination import Cursor, Page
from coordination.rooms import service
from coordination.rooms.schemas import (
    ROOM_ID_PATTERN,
    PatientRoomIn,
    PatientRoomOut,
    RoomAccessOut,
    RoomMembersOut,
    RoomOut,
    RoomRequestOut,
    ThemeIn,
    ThemeOut,
)
from coordination.security import CurrentActor, InternalCaller

public = APIRouter(prefix="/api/v1", tags=["salons"])


@public.post(
    "/patients/{patient_id}/rooms",
    status_code=status.HTTP_201_CREATED,
    response_model=PatientRoomOut | RoomRequestOut,
    responses={
        200: {"model": PatientRoomOut, "description": "Already linked to this patient"},
        202: {"model": RoomRequestOut, "description": "`create`: the bot creates and links the room"},
    },
    summary="Link a Matrix room to the patient, or have the bot create one (authorised members only)",
)
async def link_patient_room(
    patient_id: PatientId, body: PatientRoomIn, session: SessionDep, actor: CurrentActor, response: Response
) -> PatientRoomOut | RoomRequestOut:
    if body.room_id is None:
        response.status_code = status.HTTP_202_ACCEPTED
        return await service.request_patient_room(session=session, actor=actor, patient_id=patient_id)
    link, created = await service.link_patient_room(
        session=session, actor=actor, patient_id=patient_id, room_id=body.room_id
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return link


@public.get(
    "/patients/{patient_id}/rooms",
    response_model=Page[PatientRoomOut],
    summary="The rooms linked to the patient (authorised members only)",
)
async def patient_rooms(
    patient_id: PatientId,
    session: SessionDep,
    actor: CurrentActor,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> Page[PatientRoomOut]:
    return await service.patient_rooms(
        session=session, actor=actor, patient_id=patient_id, limit=limit, cursor=cursor
    )


@public.post(
    "/themes",
    status_code=status.HTTP_201_CREATED,
    response_model=ThemeOut,
    summary="Declare a thematic room (any active professional)",
)
async def create_theme(body: ThemeIn, session: SessionDep, actor: CurrentActor) -> ThemeOut:
    return await service.create_theme(session=session, actor=actor, name=body.name, room_id=body.room_id)


@public.get("/themes", response_model=Page[ThemeOut], summary="The thematic rooms")
async def list_themes(
    session: SessionDep,
    actor: CurrentActor,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> Page[ThemeOut]:
    return await service.list_themes(session=session, limit=limit, cursor=cursor)


@public.get(
    "/rooms/{room_id}",
    response_model=RoomOut,
    summary="What a room is about (a patient room only for the patient's authorised members)",
)
async def describe_room(
    room_id: Annotated[RoomId, Path(max_length=255, pattern=ROOM_ID_PATTERN)],
    session: SessionDep,
    actor: CurrentActor,
) -> RoomOut:
    return await service.describe_room(session=session, actor=actor, room_id=room_id)


# Not for professionals: the Synapse module and the bot ask these with the internal secret.
internal = APIRouter(prefix="/internal/v1", include_in_schema=False)


@internal.get("/rooms/{room_id}/access/{user_id}", response_model=RoomAccessOut)
async def room_access(
    room_id: Annotated[RoomId, Path(max_length=255, pattern=ROOM_ID_PATTERN)],
    user_id: Annotated[UserId, Path(min_length=3, max_length=255)],
    session: SessionDep,
    _caller: InternalCaller,
) -> RoomAccessOut:
    """May ``user_id`` be invited into / join ``room_id``? (the Synapse module's patient-room rule)"""
    return await service.room_access(session=session, room_id=room_id, user_id=user_id)


@internal.get("/patient-rooms", response_model=Page[RoomMembersOut])
async def patient_rooms_members(
    session: SessionDep,
    _caller: InternalCaller,
    patient_id: PatientId | None = None,
    room_id: Annotated[RoomId | None, Query(max_length=255, pattern=ROOM_ID_PATTERN)] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> Page[RoomMembersOut]:
    """Patient rooms with who should be in them now (the bot's reconciliation)."""
    return await service.rooms_with_members(
        session=session, patient_id=patient_id, room_id=room_id, limit=limit, cursor=cursor
    )


router = APIRouter()
router.include_router(public)
router.include_router(internal)
