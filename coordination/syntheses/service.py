"""The synthesis text of a dossier: read and replaced by authorised members, every version kept.

Rules: only authorised members of the circle read or write it (``circle_access``); each read and write
is audited; a write names the version it replaces, and a stale one answers 409 ``AZ_STALE_VERSION``
(another member saved meanwhile: reload, merge, resend); the outbox tells the circle (ids only).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode
from coordination.ids import NationalId, PatientId
from coordination.outbox import service as outbox
from coordination.outbox.events import SynthesisUpdated
from coordination.security import Actor
from coordination.syntheses.models import SynthesisVersion
from coordination.syntheses.schemas import SynthesisOut

STALE = (
    "La synthèse a été modifiée par un autre membre depuis votre lecture : rechargez-la, reportez vos "
    "changements sur la nouvelle version, puis enregistrez à nouveau."
)
MAX_VERSIONS_PAGE = 100


async def _latest(session: AsyncSession, patient_id: PatientId) -> SynthesisVersion | None:
    return (
        await session.scalars(
            select(SynthesisVersion)
            .where(SynthesisVersion.patient_id == patient_id)
            .order_by(SynthesisVersion.version.desc())
            .limit(1)
        )
    ).first()


async def _out(
    session: AsyncSession, patient_id: PatientId, rows: Sequence[SynthesisVersion]
) -> list[SynthesisOut]:
    names = await directory.display_names(session=session, national_ids=[r.author_national_id for r in rows])
    return [
        SynthesisOut(
            patient_id=patient_id,
            text=r.text,
            version=r.version,
            author_national_id=NationalId(r.author_national_id),
            author_display_name=names.get(r.author_national_id),
            created_at=r.created_at,
        )
        for r in rows
    ]


async def get_synthesis(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> SynthesisOut:
    """The current synthesis (empty, version 0, when none was written). Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    latest = await _latest(session, patient_id)
    await audit.record(
        session=session,
        actor=actor,
        action="synthesis.read",
        object_type="synthesis",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    if latest is None:
        return SynthesisOut(
            patient_id=patient_id,
            text="",
            version=0,
            author_national_id=None,
            author_display_name=None,
            created_at=None,
        )
    return (await _out(session, patient_id, [latest]))[0]


async def replace_synthesis(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, text: str, version: int
) -> SynthesisOut:
    """Save ``text`` as the version after ``version`` (409 when someone saved another one meanwhile)."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    latest = await _latest(session, patient_id)
    current = latest.version if latest else 0
    if version != current:
        raise Conflict(STALE, errcode=ErrCode.STALE_VERSION)
    recipients = await circle_access.authorised_user_ids(session=session, patient_id=patient_id)
    row = SynthesisVersion(
        patient_id=patient_id,
        version=current + 1,
        text=text,
        author_national_id=actor.national_id,
        author_user_id=actor.user_id,
    )
    session.add(row)
    try:
        # The audit's insert autoflushes the new version: a concurrent save of the same number
        # fails there on PostgreSQL, so it is inside the conflict handling.
        await audit.record(
            session=session,
            actor=actor,
            action="synthesis.update",
            object_type="synthesis",
            object_id=patient_id,
            patient_id=patient_id,
        )
        await outbox.emit(
            session=session,
            event=SynthesisUpdated(patient_id=patient_id, version=current + 1, updated_by=actor.user_id),
            recipients=recipients,
        )
        await session.commit()
    except IntegrityError as exc:  # a concurrent save took this version number first
        await session.rollback()
        raise Conflict(STALE, errcode=ErrCode.STALE_VERSION) from exc
    return (await _out(session, patient_id, [row]))[0]


async def list_versions(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, before: int | None, limit: int
) -> tuple[list[SynthesisOut], int | None]:
    """Older versions, newest first; returns the page and the version to continue before. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    stmt = select(SynthesisVersion).where(SynthesisVersion.patient_id == patient_id)
    if before is not None:
        stmt = stmt.where(SynthesisVersion.version < before)
    rows = (await session.scalars(stmt.order_by(SynthesisVersion.version.desc()).limit(limit + 1))).all()
    page = list(rows[:limit])
    await audit.record(
        session=session,
        actor=actor,
        action="synthesis.history",
        object_type="synthesis",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    return await _out(session, patient_id, page), (page[-1].version if len(rows) > limit else None)
