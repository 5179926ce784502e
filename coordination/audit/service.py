"""Recording and reading the audit trail.

``record`` adds the entry to the caller's session so it commits atomically with the change it
describes: a write is never kept without its trace. For reads the caller commits after recording.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.audit.schemas import AuditEntryOut
from coordination.circle import access as circle_access
from coordination.db import utcnow
from coordination.errors import Invalid
from coordination.ids import PatientId
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.security import Actor


async def record(
    *,
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None = None,
    patient_id: PatientId | uuid.UUID | None = None,
) -> None:
    """Add one audit entry to the current transaction (identifiers only, never names or content)."""
    session.add(
        AuditEntry(
            actor_user_id=actor.user_id,
            actor_national_id=actor.national_id,
            via_bot=actor.via_bot,
            action=action,
            patient_id=patient_id,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else None,
        )
    )


async def record_many(
    *,
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    patient_ids: Sequence[uuid.UUID],
) -> None:
    """One entry per patient, e.g. for every hit of a patient search or a task list.

    A single Core ``INSERT`` with many parameter sets, in the caller's transaction: searches and lists
    record every hit, so this sits on their hot path (ORM objects cost more than the query itself).
    """
    if not patient_ids:
        return
    at = utcnow()
    await session.execute(
        insert(AuditEntry),
        [
            {
                "at": at,
                "actor_user_id": actor.user_id,
                "actor_national_id": actor.national_id,
                "via_bot": actor.via_bot,
                "action": action,
                "patient_id": pid,
                "object_type": object_type,
                "object_id": str(pid),
            }
            for pid in patient_ids
        ],
    )


async def list_for_patient(
    *, session: AsyncSession, patient_id: PatientId, limit: int = 200, before_id: int | None = None
) -> Sequence[AuditEntry]:
    """Newest first; the caller has already checked the actor is an authorised member."""
    stmt = select(AuditEntry).where(AuditEntry.patient_id == patient_id)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return (await session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit))).all()


def _before(cursor: str | None) -> int | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    before = position.get("b")
    if not isinstance(before, int) or not 0 < before < 2**63:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente.",
            field="cursor",
        )
    return before


async def patient_trail(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditEntryOut]:
    """A page of the patient's trail, newest first, for an authorised member of the circle.

    Reading the trail is itself recorded (after the page is read, so it shows on the next one).
    """
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    rows = await list_for_patient(
        session=session, patient_id=patient_id, limit=limit + 1, before_id=_before(cursor)
    )
    page = [AuditEntryOut.model_validate(e, from_attributes=True) for e in rows[:limit]]
    next_cursor = encode_cursor({"b": page[-1].id}) if len(rows) > limit else None
    await record(
        session=session,
        actor=actor,
        action="audit.read",
        object_type="audit",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    return Page[AuditEntryOut](items=page, next_cursor=next_cursor)
