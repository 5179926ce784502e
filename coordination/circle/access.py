"""THE access rule of every patient-scoped domain. Reads only: this module writes nothing.

Access rule (the one place it is decided):
    an actor may read and change a patient's data if and only if
    - the actor's ``national_id`` is a *professional* member of the circle with ``habilite`` true, or
    - one of ``actor.structure_ids`` (the structures the actor works at, from the directory) is a
      *structure* member of the circle with ``habilite`` true.
    The actor is by construction an active directory professional bound to a Matrix account
    (``coordination.security.get_actor`` refuses anyone else), which is the "habilité AND bound"
    condition of the product. Relatives are never habilité, so never have access.

Every patient-scoped service calls ``require_authorised`` first thing, then records its audit entry in
the same transaction. The audit domain and every other domain import this module; it imports no
service, so there is no cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.circle.models import CircleMember
from coordination.directory import service as directory
from coordination.errors import ErrCode, Forbidden, NotFound
from coordination.patients.models import Patient
from coordination.security import Actor

NOT_AUTHORISED = (
    "Vous n'êtes pas membre habilité du cercle de soins de ce patient : "
    "demandez à un membre de vous y ajouter."
)
UNKNOWN_PATIENT = "Patient inconnu : vérifiez l'identifiant du dossier."


def _authorised_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL condition: this circle row grants access to ``actor`` (see the module docstring)."""
    via_person = and_(CircleMember.kind == "professional", CircleMember.national_id == actor.national_id)
    via_structure = (
        and_(CircleMember.kind == "structure", CircleMember.structure_id.in_(sorted(actor.structure_ids)))
        if actor.structure_ids
        else false()
    )
    return and_(CircleMember.habilite.is_(True), or_(via_person, via_structure))


async def is_authorised(*, session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> bool:
    """Whether ``actor`` is an authorised member of the patient's circle (no check the patient exists)."""
    stmt = (
        select(CircleMember.id)
        .where(CircleMember.patient_id == patient_id, _authorised_clause(actor))
        .limit(1)
    )
    return (await session.scalar(stmt)) is not None


async def authorised_patient_ids(
    *, session: AsyncSession, actor: Actor, patient_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Among ``patient_ids``, those the actor may read (one query, for search answers)."""
    if not patient_ids:
        return set()
    stmt = select(CircleMember.patient_id).where(
        CircleMember.patient_id.in_(list(patient_ids)),
        _authorised_clause(actor),
    )
    return set((await session.scalars(stmt)).all())


def authorised_patients_subquery(actor: Actor) -> Select[uuid.UUID]:
    """A ``SELECT patient_id`` of every patient the actor may read ("my patients")."""
    return select(CircleMember.patient_id).where(_authorised_clause(actor))


async def require_authorised(*, session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> Patient:
    """Return the patient if ``actor`` may access it.

    Raises ``NotFound`` for an unknown id and ``Forbidden`` (French, says whom to ask) when the
    patient exists but the actor is not an authorised member: authorised means the actor's
    national id is a habilité professional member, or one of ``actor.structure_ids`` is a habilité
    structure member.
    """
    # One statement for both questions: every patient-scoped request starts here.
    granted = (
        select(CircleMember.id)
        .where(CircleMember.patient_id == Patient.id, _authorised_clause(actor))
        .exists()
        .label("granted")
    )
    row = (await session.execute(select(Patient, granted).where(Patient.id == patient_id))).one_or_none()
    if row is None:
        raise NotFound(UNKNOWN_PATIENT, errcode=ErrCode.UNKNOWN_PATIENT)
    patient, authorised = row
    if not authorised:
        raise Forbidden(NOT_AUTHORISED, errcode=ErrCode.NOT_IN_CIRCLE)
    return patient


async def authorised_user_ids(*, session: AsyncSession, patient_id: uuid.UUID) -> list[str]:
    """Matrix IDs of everyone who may read the dossier now (sorted, no duplicates).

    Habilité professional members and every professional working at a habilité structure member,
    in both cases only if active in the directory and bound to a Matrix account (the directory's
    ``bound_active_users_query``, so "bound and active" means the same thing everywhere).
    """
    habilite = select(CircleMember.kind, CircleMember.national_id, CircleMember.structure_id).where(
        CircleMember.patient_id == patient_id, CircleMember.habilite.is_(True)
    )
    rows = (await session.execute(habilite)).all()
    return await directory.bound_active_user_ids(
        session=session,
        national_ids=[n for kind, n, _ in rows if kind == "professional" and n],
        structure_ids=[s for kind, _, s in rows if kind == "structure" and s],
    )


# --- circle look-ups for tasks and documents --------------------------------------------------------
# Read-only views of circle rows, so that other domains never query the circle table themselves.


@dataclass(frozen=True, slots=True)
class MemberRef:
    """What another domain may know of a circle member: who it designates and whether habilité."""

    member_id: uuid.UUID
    kind: str
    habilite: bool
    national_id: str | None
    structure_id: str | None


async def member_refs(
    *, session: AsyncSession, patient_id: uuid.UUID, member_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, MemberRef]:
    """The members of ``patient_id``'s circle among ``member_ids`` (others are simply absent)."""
    if not member_ids:
        return {}
    rows = await session.execute(
        select(
            CircleMember.id,
            CircleMember.kind,
            CircleMember.habilite,
            CircleMember.national_id,
            CircleMember.structure_id,
        ).where(CircleMember.patient_id == patient_id, CircleMember.id.in_(sorted(set(member_ids))))
    )
    return {r[0]: MemberRef(*r) for r in rows.tuples()}


async def habilite_among(
    *,
    session: AsyncSession,
    patient_id: uuid.UUID,
    national_ids: Sequence[str] = (),
    structure_ids: Sequence[str] = (),
) -> tuple[set[str], set[str]]:
    """Those of ``national_ids`` / ``structure_ids`` that are habilité members of the circle."""
    if not national_ids and not structure_ids:
        return set(), set()
    rows = await session.execute(
        select(CircleMember.national_id, CircleMember.structure_id).where(
            CircleMember.patient_id == patient_id,
            CircleMember.habilite.is_(True),
            or_(
                CircleMember.national_id.in_(sorted(set(national_ids))) if national_ids else false(),
                CircleMember.structure_id.in_(sorted(set(structure_ids))) if structure_ids else false(),
            ),
        )
    )
    persons: set[str] = set()
    structures: set[str] = set()
    for nid, sid in rows.tuples():
        if nid is not None:
            persons.add(nid)
        if sid is not None:
            structures.add(sid)
    return persons, structures


def structure_patients_subquery(structure_id: str) -> Select[uuid.UUID]:
    """A ``SELECT patient_id`` of every patient whose circle has ``structure_id`` as a habilitée
    structure member: the patients that structure's professionals reach through it (a DAC's file)."""
    return select(CircleMember.patient_id).where(
        CircleMember.kind == "structure",
        CircleMember.structure_id == structure_id,
        CircleMember.habilite.is_(True),
    )
