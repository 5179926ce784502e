"""The care circle: who is in it, with which role, and who is *habilité*.

The access rule itself lives in ``coordination.circle.access`` (reads only); this module writes.

"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit import service as audit
from coordination.circle import access
from coordination.circle.models import CircleMember
from coordination.circle.schemas import (
    MemberCard,
    MemberIn,
    MemberOut,
    MemberUpdate,
    ProfessionalMemberIn,
    RelativeMemberIn,
    StructureMemberIn,
)
from coordination.db import utcnow
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode, Invalid, NotFound
from coordination.ids import MemberId, NationalId, PatientId, StructureId
from coordination.outbox import service as outbox
from coordination.outbox.events import CircleMemberAdded, CircleMemberRemoved, CircleMemberUpdated
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.patients.models import Patient
from coordination.security import Actor

logger = logging.getLogger(__name__)

UNKNOWN_MEMBER = "Membre du cercle inconnu pour ce patient : rechargez le cercle de soins."
ALREADY_MEMBER = (
    "Ce membre fait déjà partie du cercle de soins : modifiez son rôle ou son habilitation "
    "plutôt que de l'ajouter à nouveau."
)
LAST_AUTHORISED = (
    "Vous êtes le dernier membre habilité du cercle de soins : habilitez d'abord un autre "
    "professionnel ou une structure, sinon plus personne ne pourrait suivre ce dossier."
)


# --- directory look-ups ------------------------------------------------------------------------


async def _checked_directory_entry(
    session: AsyncSession, *, national_id: str | None, structure_id: str | None
) -> None:
    """Refuse (422, French) a professional or structure that is not an active directory entry."""
    if national_id is not None:
        if not await directory.display_names(session=session, national_ids=[national_id]):
            raise Invalid(
                "Ce professionnel n'est pas dans l'annuaire national : vérifiez son identifiant "
                "RPPS/ADELI (idNatPS) ou recherchez-le dans l'annuaire.",
                field="national_id",
            )
        if not await directory.active_national_ids(session=session, national_ids=[national_id]):
            raise Invalid(
                "Ce professionnel n'est plus actif dans l'annuaire national : il ne peut pas "
                "rejoindre un cercle de soins.",
                field="national_id",
            )
    if structure_id is not None:
        if not await directory.structure_names(session=session, structure_ids=[structure_id]):
            raise Invalid(
                "Cette structure n'est pas dans l'annuaire : vérifiez son identifiant "
                "(par exemple « finess:060780491 ») ou recherchez-la dans l'annuaire.",
                field="structure_id",
            )
        if not await directory.active_structure_ids(session=session, structure_ids=[structure_id]):
            raise Invalid(
                "Cette structure n'est plus active dans l'annuaire : elle ne peut pas rejoindre "
                "un cercle de soins.",
                field="structure_id",
            )


# --- reading -----------------------------------------------------------------------------------


async def _to_out(session: AsyncSession, rows: Sequence[CircleMember]) -> list[MemberOut]:
    """Attach display names, bindings and effective access to member rows (directory look-ups through
    ``coordination.directory.service``, so names read the same everywhere)."""
    nids = [r.national_id for r in rows if r.national_id]
    sids = [r.structure_id for r in rows if r.structure_id]
    names = await directory.display_names(session=session, national_ids=nids)
    active = await directory.active_national_ids(session=session, national_ids=nids)
    users = await directory.bound_user_ids(session=session, national_ids=nids)
    structures = await directory.structure_names(session=session, structure_ids=sids)
    out: list[MemberOut] = []
    for r in rows:
        name = r.relative_name or ""
        has_access = False
        user_id = None
        if r.kind == "professional" and r.national_id:
            name = names.get(r.national_id, r.national_id)
            user_id = users.get(r.national_id)
            has_access = bool(r.habilite and r.national_id in active and user_id)
        elif r.kind == "structure" and r.structure_id:
            name = structures.get(r.structure_id, r.structure_id)
            has_access = r.habilite  # through the professionals working there
        out.append(
            MemberOut(
                id=MemberId(r.id),
                patient_id=PatientId(r.patient_id),
                kind=r.kind,
                national_id=r.national_id,
                structure_id=r.structure_id,
                display_name=name,
                relationship=r.relationship,
                phone=r.phone,
                email=r.email,
                role=r.role,
                habilite=r.habilite,
                has_access=has_access,
                user_id=user_id,
                added_at=r.added_at,
                added_by=r.added_by,
            )
        )
    return out


async def members_of(*, session: AsyncSession, patient_id: PatientId) -> list[CircleMember]:
    """The circle rows, professionals and structures first (no access check: internal use)."""
    rows = await session.scalars(
        select(CircleMember)
        .where(CircleMember.patient_id == patient_id)
        .order_by(CircleMember.added_at, CircleMember.id)
    )
    return list(rows)


MAX_PAGE = 200


def _after(cursor: str | None) -> ColumnElement[bool] | None:
    """Keyset condition of the page after ``cursor`` (members in the order they joined)."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        at, last = datetime.fromisoformat(str(position["t"])), uuid.UUID(str(position["i"]))
    except (KeyError, ValueError) as exc:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente.",
            field="cursor",
        ) from exc
    return or_(CircleMember.added_at > at, and_(CircleMember.added_at == at, CircleMember.id > last))


async def list_members(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, limit: int = 100, cursor: str | None = None
) -> Page[MemberOut]:
    """The patient's circle in the order members joined (authorised members only); audited read."""
    await access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    stmt = select(CircleMember).where(CircleMember.patient_id == patient_id)
    after = _after(cursor)
    if after is not None:
        stmt = stmt.where(after)
    rows = list(await session.scalars(stmt.order_by(CircleMember.added_at, CircleMember.id).limit(limit + 1)))
    page = rows[:limit]
    out = await _to_out(session, page)
    await audit.record(
        session=session,
        actor=actor,
        action="circle.read",
        object_type="circle",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    next_cursor = (
        encode_cursor({"t": page[-1].added_at.isoformat(), "i": str(page[-1].id)})
        if len(rows) > limit
        else None
    )
    return Page[MemberOut](items=out, next_cursor=next_cursor)


async def _member(session: AsyncSession, patient_id: PatientId, member_id: MemberId) -> CircleMember:
    row = await session.get(CircleMember, member_id)
    if row is None or row.patient_id != patient_id:
        raise NotFound(UNKNOWN_MEMBER, errcode=ErrCode.UNKNOWN_MEMBER)
    return row


async def get_member_card(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, member_id: MemberId
) -> MemberCard:
    """One member with the directory details of the professional or structure (audited read)."""
    await access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    row = await _member(session, patient_id, member_id)
    (base,) = await _to_out(session, [row])
    card = MemberCard(**base.model_dump())
    try:
        if row.kind == "professional" and row.national_id:
            card.person = await directory.get_person(session=session, national_id=row.national_id)
        elif row.kind == "structure" and row.structure_id:
            card.structure = await directory.get_structure(session=session, structure_id=row.structure_id)
    except NotFound:
        pass  # gone from the directory since it was added: the card shows the member alone
    await audit.record(
        session=session,
        actor=actor,
        action="circle.member_read",
        object_type="circle_member",
        object_id=member_id,
        patient_id=patient_id,
    )
    await session.commit()
    return card


# --- writing -----------------------------------------------------------------------------------


async def _lock_patient(session: AsyncSession, patient_id: PatientId) -> None:
    """Serialise circle changes of one patient (PostgreSQL row lock; SQLite serialises writers)."""
    await session.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())


async def _announce_member(
    session: AsyncSession, *, row: CircleMember, added_by: str, recipients_extra: Sequence[str] = ()
) -> None:
    """Emit ``circle.member_added`` in the current transaction (identifiers only, no names)."""
    recipients = set(await access.authorised_user_ids(session=session, patient_id=row.patient_id))
    recipients.update(recipients_extra)
    if row.kind == "professional" and row.national_id:
        recipients.update(
            (await directory.bound_user_ids(session=session, national_ids=[row.national_id])).values()
        )
    await outbox.emit(
        session=session,
        recipients=recipients,
        event=CircleMemberAdded(
            patient_id=PatientId(row.patient_id),
            member_id=MemberId(row.id),
            member_kind=row.kind,
            national_id=NationalId(row.national_id) if row.national_id else None,
            structure_id=StructureId(row.structure_id) if row.structure_id else None,
            role=row.role,
            habilite=row.habilite,
            added_by=added_by,
        ),
    )


async def add_member(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    member: MemberIn,
    commit: bool = True,
) -> MemberOut:
    """Add a professional, a structure or a relative to the circle (authorised members only).

    Professionals and structures must be active directory entries; a relative is never habilité.
    Audits ``circle.member_added`` and emits the ``circle.member_added`` event in the same
    transaction. With ``commit=False`` the caller commits (to bundle the addition with its change).
    """
    await access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    await _lock_patient(session, patient_id)
    row = CircleMember(
        id=uuid.uuid4(),
        patient_id=patient_id,
        kind=member.kind,
        role=member.role,
        habilite=member.habilite,
        added_at=utcnow(),
        added_by=actor.national_id,
    )
    if isinstance(member, ProfessionalMemberIn):
        await _checked_directory_entry(session, national_id=member.national_id, structure_id=None)
        await _refuse_existing(session, patient_id, national_id=member.national_id)
        row.national_id = member.national_id
    elif isinstance(member, StructureMemberIn):
        await _checked_directory_entry(session, national_id=None, structure_id=member.structure_id)
        await _refuse_existing(session, patient_id, structure_id=member.structure_id)
        row.structure_id = member.structure_id
    elif isinstance(member, RelativeMemberIn):
        row.relative_name = member.name
        row.relationship = member.relationship
        row.phone = member.phone
        row.email = member.email
        row.habilite = False  # the schema already refuses true; the rule is restated where it binds
    session.add(row)
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="circle.member_added",
        object_type="circle_member",
        object_id=row.id,
        patient_id=patient_id,
    )
    await _announce_member(session, row=row, added_by=actor.national_id)
    (out,) = await _to_out(session, [row])
    if commit:
        try:
            await session.commit()
        except IntegrityError as exc:  # the same member added by someone else at the same moment
            await session.rollback()
            raise Conflict(ALREADY_MEMBER, errcode=ErrCode.ALREADY_MEMBER) from exc
    logger.info("circle member %s (%s) added to patient %s", row.id, row.kind, patient_id)
    return out


async def _refuse_existing(
    session: AsyncSession,
    patient_id: PatientId,
    *,
    national_id: str | None = None,
    structure_id: str | None = None,
) -> None:
    stmt = select(CircleMember.id).where(CircleMember.patient_id == patient_id)
    if national_id is not None:
        stmt = stmt.where(CircleMember.national_id == national_id)
    else:
        stmt = stmt.where(CircleMember.structure_id == structure_id)
    if await session.scalar(stmt) is not None:
        raise Conflict(ALREADY_MEMBER, errcode=ErrCode.ALREADY_MEMBER)


async def add_system_member(
    *,
    session: AsyncSession,
    patient_id: PatientId,
    national_id: str | None = None,
    structure_id: str | None = None,
    role: str,
    habilite: bool,
    reason: str,
) -> None:
    """Add a professional or a structure without an actor check (e.g. a DAC including a patient).

    Idempotent: an existing member is kept, and only gains ``habilite`` if asked (never loses it).
    Exactly one of ``national_id`` / ``structure_id``. Does NOT commit and does NOT audit: the
    caller records its own audit entry and commits. A new member is announced with the
    ``circle.member_added`` event (``added_by`` "system").
    """
    if (national_id is None) == (structure_id is None):
        raise ValueError("add_system_member needs exactly one of national_id / structure_id")
    if await session.get(Patient, patient_id) is None:
        raise NotFound(access.UNKNOWN_PATIENT, errcode=ErrCode.UNKNOWN_PATIENT)
    await _checked_directory_entry(session, national_id=national_id, structure_id=structure_id)
    await _lock_patient(session, patient_id)
    stmt = select(CircleMember).where(CircleMember.patient_id == patient_id)
    if national_id is not None:
        stmt = stmt.where(CircleMember.national_id == national_id)
    else:
        stmt = stmt.where(CircleMember.structure_id == structure_id)
    existing = await session.scalar(stmt)
    if existing is not None:
        if habilite and not existing.habilite:
            existing.habilite = True
        await session.flush()
        return
    row = CircleMember(
        id=uuid.uuid4(),
        patient_id=patient_id,
        kind="professional" if national_id is not None else "structure",
        national_id=national_id,
        structure_id=structure_id,
        role=role[:60],
        habilite=habilite,
        added_at=utcnow(),
        added_by="system",
        reason=reason[:200],
    )
    session.add(row)
    await session.flush()
    await _announce_member(session, row=row, added_by="system")


async def _remaining_authorised(session: AsyncSession, patient_id: PatientId, *, excluding: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count(CircleMember.id)).where(
            CircleMember.patient_id == patient_id,
            CircleMember.habilite.is_(True),
            CircleMember.kind.in_(["professional", "structure"]),
            CircleMember.id != excluding,
        )
    )
    return int(count or 0)


async def update_member(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    member_id: MemberId,
    change: MemberUpdate,
) -> MemberOut:
    """Change a member's role or habilitation (authorised members only, audited).

    Refuses (409) to withdraw the habilitation of the last authorised member, and (422) to make a
    relative habilité.
    """
    await access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    await _lock_patient(session, patient_id)
    row = await _member(session, patient_id, member_id)
    if change.habilite is True and row.kind == "relative":
        raise Invalid(
            "Un proche ou un aidant ne peut pas être habilité : seuls les professionnels et les "
            "structures de l'annuaire accèdent au dossier.",
            field="habilite",
        )
    if (
        change.habilite is False
        and row.habilite
        and await _remaining_authorised(session, patient_id, excluding=row.id) == 0
    ):
        raise Conflict(LAST_AUTHORISED, errcode=ErrCode.LAST_AUTHORISED)
    if change.role is not None:
        row.role = change.role
    habilitation_changed = change.habilite is not None and change.habilite != row.habilite
    if change.habilite is not None:
        row.habilite = change.habilite
    await audit.record(
        session=session,
        actor=actor,
        action="circle.member_updated",
        object_type="circle_member",
        object_id=row.id,
        patient_id=patient_id,
    )
    if habilitation_changed:
        # The patient's rooms follow the habilitation (the bot invites or removes, issue 9).
        await outbox.emit(
            session=session,
            recipients=[],
            event=CircleMemberUpdated(
                patient_id=patient_id, member_id=MemberId(row.id), habilite=row.habilite
            ),
        )
    await session.flush()
    (out,) = await _to_out(session, [row])
    await session.commit()
    return out


async def remove_member(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, member_id: MemberId
) -> None:
    """Remove a member (authorised members only, audited); never the last authorised one (409)."""
    await access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    await _lock_patient(session, patient_id)
    row = await _member(session, patient_id, member_id)
    if row.habilite and await _remaining_authorised(session, patient_id, excluding=row.id) == 0:
        raise Conflict(LAST_AUTHORISED, errcode=ErrCode.LAST_AUTHORISED)
    removed = CircleMemberRemoved(
        patient_id=patient_id,
        member_id=member_id,
        member_kind=row.kind,
        national_id=NationalId(row.national_id) if row.national_id else None,
        structure_id=StructureId(row.structure_id) if row.structure_id else None,
    )
    await session.execute(delete(CircleMember).where(CircleMember.id == row.id))
    await audit.record(
        session=session,
        actor=actor,
        action="circle.member_removed",
        object_type="circle_member",
        object_id=member_id,
        patient_id=patient_id,
    )
    # The bot removes whoever lost access from the patient's rooms (issue 9).
    await outbox.emit(session=session, recipients=[], event=removed)
    await session.commit()


def add_creator(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> CircleMember:
    """The creator of a dossier becomes its first authorised member (called by ``patients``)."""
    row = CircleMember(
        id=uuid.uuid4(),
        patient_id=patient_id,
        kind="professional",
        national_id=actor.national_id,
        role="créateur du dossier",
        habilite=True,
        added_at=utcnow(),
        added_by=actor.national_id,
    )
    session.add(row)
    return row
