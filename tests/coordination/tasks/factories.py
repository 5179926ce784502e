"""Arrange patients and care circles directly in the database (shared by the tasks, requests and
documents tests)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from coordination.circle.models import CircleMember
from coordination.db import utcnow
from coordination.patients.models import Patient


async def add_patient(session: AsyncSession, *, created_by: str = "810000000001") -> uuid.UUID:
    """A fictitious patient with a provisional identity, and no circle yet."""
    pid = uuid.uuid4()
    session.add(
        Patient(
            id=pid,
            birth_name="DUPONT",
            birth_first_names=["Marie"],
            first_birth_first_name="Marie",
            birth_date=date(1940, 5, 17),
            sex="F",
            birth_place_code="06088",
            search_birth_name="DUPONT",
            search_first_given_name="MARIE",
            identity_status="provisoire",
            created_by=created_by,
        )
    )
    await session.commit()
    return pid


async def add_member(
    session: AsyncSession,
    patient_id: uuid.UUID,
    *,
    national_id: str | None = None,
    structure_id: str | None = None,
    habilite: bool = True,
    role: str = "médecin traitant",
) -> uuid.UUID:
    """A professional (``national_id``) or structure (``structure_id``) member of the circle."""
    mid = uuid.uuid4()
    session.add(
        CircleMember(
            id=mid,
            patient_id=patient_id,
            kind="professional" if national_id else "structure",
            national_id=national_id,
            structure_id=structure_id,
            role=role,
            habilite=habilite,
            added_at=utcnow(),
            added_by="810000000001",
        )
    )
    await session.commit()
    return mid


async def add_relative(session: AsyncSession, patient_id: uuid.UUID) -> uuid.UUID:
    mid = uuid.uuid4()
    session.add(
        CircleMember(
            id=mid,
            patient_id=patient_id,
            kind="relative",
            relative_name="Paul Dupont",
            relationship="fils",
            role="aidant",
            habilite=False,
            added_at=utcnow(),
            added_by="810000000001",
        )
    )
    await session.commit()
    return mid
