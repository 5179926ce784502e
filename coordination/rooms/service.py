"""Linking Matrix rooms to patients and themes; telling the bot what a room is about.

A room is about one thing at most: one patient, or one theme. Linking a room to a patient is a
change of that patient's dossier (authorised members only, audited); themes are open to any
active professional and hold no patient data.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.dac_requests.models import DacRoom
from coordination.db import utcnow
from coordination.errors import Conflict, ErrCode, Invalid, NotFound
from coordination.ids import PatientId, RoomId, UserId
from coordination.outbox import service as outbox
from coordination.outbox.events import RoomLinked, RoomRequested
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.rooms.models import PatientRoom, ThemeRoom
from coordination.rooms.schemas import (
    PatientRoomOut,
    RoomAccessOut,
    RoomMembersOut,
    RoomOut,
    RoomRequestOut,
    ThemeOut,
)
from coordination.security import Actor

logger = logging.getLogger(__name__)

ROOM_TAKEN = (
    "Ce salon est déjà rattaché {what} : un salon ne suit qu'un seul patient ou un seul thème. "
    "Créez un nouveau salon."
)


async def _room_taken(session: AsyncSession, room_id: str) -> str | None:
    """What the room is already linked to ("patient" / "theme"), or None."""
    if await session.get(PatientRoom, room_id) is not None:
        return "patient"
    if await session.scalar(select(ThemeRoom.id).where(ThemeRoom.room_id == room_id)) is not None:
        return "theme"
    if await session.scalar(select(DacRoom.structure_id).where(DacRoom.room_id == room_id)) is not None:
        return "dac"  # a DAC's own room (its coordinators, not a patient's circle)
    return None


async def _commit_link(session: AsyncSession) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:  # two links of the same room at the same moment
        await session.rollback()
        raise Conflict(ROOM_TAKEN.format(what="à un autre dossier"), errcode=ErrCode.ROOM_TAKEN) from exc


def _patient_room_out(row: PatientRoom) -> PatientRoomOut:
    return PatientRoomOut(
        room_id=RoomId(row.room_id),
        patient_id=PatientId(row.patient_id),
        linked_by=row.linked_by,
        linked_at=row.linked_at,
    )


def _theme_out(row: ThemeRoom) -> ThemeOut:
    return ThemeOut(
        id=row.id,
        name=row.name,
        room_id=RoomId(row.room_id),
        created_by=row.created_by,
        created_at=row.created_at,
    )


async def link_patient_room(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, room_id: RoomId
) -> tuple[PatientRoomOut, bool]:
    """Link ``room_id`` to the patient (authorised members only, audited).

    Returns the link and whether it was created (linking again the same pair is a no-op).
    A room already linked to another patient or to a theme answers 409.
    """
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    existing = await session.get(PatientRoom, room_id)
    if existing is not None:
        if existing.patient_id == patient_id:
            return _patient_room_out(existing), False
        raise Conflict(ROOM_TAKEN.format(what="à un autre dossier"), errcode=ErrCode.ROOM_TAKEN)
    taken = await _room_taken(session, room_id)
    if taken is not None:
        what = "à un thème" if taken == "theme" else "à un DAC (le salon de ses coordinateurs)"
        raise Conflict(ROOM_TAKEN.format(what=what), errcode=ErrCode.ROOM_TAKEN)
    row = PatientRoom(room_id=room_id, patient_id=patient_id, linked_by=actor.national_id, linked_at=utcnow())
    session.add(row)
    await audit.record(
        session=session,
        actor=actor,
        action="room.linked",
        object_type="room",
        object_id=room_id[:80],
        patient_id=patient_id,
    )
    # The bot brings the room's members in step with the circle from now on (issue 9).
    await outbox.emit(
        session=session,
        recipients=[],
        event=RoomLinked(patient_id=patient_id, room_id=room_id, linked_by=actor.user_id),
    )
    await _commit_link(session)
    logger.info("room linked to patient %s", patient_id)
    return _patient_room_out(row), True


async def request_patient_room(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId
) -> RoomRequestOut:
    """Ask the coordination bot to create a room for the patient (authorised members only, audited).

    The service does not talk to Matrix: it emits ``room.requested`` in the same transaction; the bot
    creates the room (encrypted, invite-only, a pseudonymous name), links it on behalf of ``actor``
    (so the access rule applies when the link is written), pins the identity header and invites the
    circle. ``request_id`` keeps the creation single if the bot restarts half-way.
    """
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    request_id = uuid.uuid4().hex
    await audit.record(
        session=session,
        actor=actor,
        action="room.requested",
        object_type="room_request",
        object_id=request_id,
        patient_id=patient_id,
    )
    await outbox.emit(
        session=session,
        recipients=[actor.user_id],
        event=RoomRequested(patient_id=patient_id, request_id=request_id, requested_by=actor.user_id),
    )
    await session.commit()
    logger.info("room requested for patient %s (%s)", patient_id, request_id)
    return RoomRequestOut(request_id=request_id, patient_id=patient_id)


# --- for our own processes (internal API: the Synapse module and the bot) ---------------------------


async def room_access(*, session: AsyncSession, room_id: RoomId, user_id: UserId) -> RoomAccessOut:
    """Whether ``user_id`` may be invited into / join ``room_id``: anyone the directory lets in, outside
    patient rooms; in a patient room, only who may read the dossier now (``authorised_user_ids``)."""
    link = await session.get(PatientRoom, room_id)
    if link is None:
        return RoomAccessOut(room_id=room_id, user_id=user_id, patient_room=False, authorised=True)
    allowed = await circle_access.authorised_user_ids(session=session, patient_id=link.patient_id)
    return RoomAccessOut(room_id=room_id, user_id=user_id, patient_room=True, authorised=user_id in allowed)


async def rooms_with_members(
    *,
    session: AsyncSession,
    patient_id: PatientId | None = None,
    room_id: RoomId | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[RoomMembersOut]:
    """Patient rooms (all, one patient's, or one room) with the Matrix users who should be in them now,
    by room id. The bot reconciles each room's membership against this list."""
    stmt = select(PatientRoom)
    if patient_id is not None:
        stmt = stmt.where(PatientRoom.patient_id == patient_id)
    if room_id is not None:
        stmt = stmt.where(PatientRoom.room_id == room_id)
    after = _position(cursor, "r")
    if after is not None:
        stmt = stmt.where(PatientRoom.room_id > after[0])
    rows = list(await session.scalars(stmt.order_by(PatientRoom.room_id).limit(limit + 1)))
    page = rows[:limit]
    members: dict[uuid.UUID, list[str]] = {}
    for row in page:
        if row.patient_id not in members:
            members[row.patient_id] = await circle_access.authorised_user_ids(
                session=session, patient_id=row.patient_id
            )
    return Page[RoomMembersOut](
        items=[
            RoomMembersOut(
                room_id=RoomId(r.room_id),
                patient_id=PatientId(r.patient_id),
                members=[UserId(u) for u in members[r.patient_id]],
            )
            for r in page
        ],
        next_cursor=encode_cursor({"r": page[-1].room_id}) if len(rows) > limit else None,
    )


MAX_PAGE = 200


def _position(cursor: str | None, *keys: str) -> list[str] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    if not all(isinstance(position.get(k), str) for k in keys):
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente.",
            field="cursor",
        )
    return [str(position[k]) for k in keys]


async def patient_rooms(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, limit: int = 50, cursor: str | None = None
) -> Page[PatientRoomOut]:
    """The rooms of a patient, oldest link first (authorised members only, audited read)."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    stmt = select(PatientRoom).where(PatientRoom.patient_id == patient_id)
    after = _position(cursor, "t", "r")
    if after is not None:
        at, room = datetime.fromisoformat(after[0]), after[1]
        stmt = stmt.where(
            or_(PatientRoom.linked_at > at, and_(PatientRoom.linked_at == at, PatientRoom.room_id > room))
        )
    rows = list(
        await session.scalars(stmt.order_by(PatientRoom.linked_at, PatientRoom.room_id).limit(limit + 1))
    )
    page = rows[:limit]
    out = [_patient_room_out(r) for r in page]
    await audit.record(
        session=session,
        actor=actor,
        action="room.list",
        object_type="room",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    more = len(rows) > limit
    return Page[PatientRoomOut](
        items=out,
        next_cursor=encode_cursor({"t": page[-1].linked_at.isoformat(), "r": page[-1].room_id})
        if more
        else None,
    )


async def create_theme(*, session: AsyncSession, actor: Actor, name: str, room_id: RoomId) -> ThemeOut:
    """Declare a thematic room ("vaccination covid"); any active professional may."""
    taken = await _room_taken(session, room_id)
    if taken is not None:
        what = {"patient": "à un dossier patient", "theme": "à un thème"}.get(
            taken, "à un DAC (le salon de ses coordinateurs)"
        )
        raise Conflict(ROOM_TAKEN.format(what=what), errcode=ErrCode.ROOM_TAKEN)
    row = ThemeRoom(
        id=uuid.uuid4(), room_id=room_id, name=name, created_by=actor.national_id, created_at=utcnow()
    )
    session.add(row)
    await _commit_link(session)
    return _theme_out(row)


async def list_themes(*, session: AsyncSession, limit: int = 50, cursor: str | None = None) -> Page[ThemeOut]:
    """The thematic rooms, by name."""
    stmt = select(ThemeRoom)
    after = _position(cursor, "n", "i")
    if after is not None:
        name, last = after[0], uuid.UUID(after[1])
        stmt = stmt.where(or_(ThemeRoom.name > name, and_(ThemeRoom.name == name, ThemeRoom.id > last)))
    rows = list(await session.scalars(stmt.order_by(ThemeRoom.name, ThemeRoom.id).limit(limit + 1)))
    page = rows[:limit]
    more = len(rows) > limit
    return Page[ThemeOut](
        items=[_theme_out(r) for r in page],
        next_cursor=encode_cursor({"n": page[-1].name, "i": str(page[-1].id)}) if more else None,
    )


async def describe_room(*, session: AsyncSession, actor: Actor, room_id: RoomId) -> RoomOut:
    """What a room is about. A patient room is told only to the patient's authorised members (403
    otherwise, audited when told); an unknown room answers 404."""
    link = await session.get(PatientRoom, room_id)
    if link is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=link.patient_id)
        await audit.record(
            session=session,
            actor=actor,
            action="room.read",
            object_type="room",
            object_id=room_id[:80],
            patient_id=link.patient_id,
        )
        await session.commit()
        return RoomOut(room_id=room_id, kind="patient", patient_id=PatientId(link.patient_id))
    theme = await session.scalar(select(ThemeRoom).where(ThemeRoom.room_id == room_id))
    if theme is None:
        raise NotFound(
            "Ce salon n'est rattaché à aucun dossier patient ni à aucun thème.", errcode=ErrCode.UNKNOWN_ROOM
        )
    return RoomOut(room_id=room_id, kind="theme", theme=_theme_out(theme))
