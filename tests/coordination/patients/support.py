"""Helpers shared by the dossier, circle, rooms, audit and FHIR tests: bodies and API shortcuts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.directory.models import Person
from tests.support.service import Pro

# A NIR that passes the key check: 2 69 05 49 588 157, key 80 (female, born May 1969).
VALID_NIR_F = "269054958815780"


def patient_body(**overrides: Any) -> dict[str, Any]:
    """A fictitious patient's creation body (strict traits only unless overridden)."""
    body: dict[str, Any] = {
        "birth_name": "DUPONT",
        "birth_first_names": ["Marie", "Louise"],
        "birth_date": "1969-05-12",
        "sex": "F",
        "birth_place_code": "06088",
    }
    body.update(overrides)
    return body


async def create_patient(client: httpx.AsyncClient, pro: Pro, **overrides: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/patients", json=patient_body(**overrides), headers=pro.headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def add_circle_member(
    client: httpx.AsyncClient, pro: Pro, patient_id: str, **member: Any
) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/patients/{patient_id}/circle", json=member, headers=pro.headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def delist(session: AsyncSession, national_id: str) -> None:
    """The directory import marks a professional inactive (no longer in RPPS)."""
    await session.execute(update(Person).where(Person.national_id == national_id).values(active=False))
    await session.commit()


async def audit_actions(session: AsyncSession, patient_id: str) -> list[tuple[str, str]]:
    """(action, actor national id) of the patient's trail, oldest first."""
    rows = await session.execute(
        select(AuditEntry.action, AuditEntry.actor_national_id)
        .where(AuditEntry.patient_id == uuid.UUID(patient_id))
        .order_by(AuditEntry.id)
    )
    found = [(a, n) for a, n in rows.all()]
    await session.rollback()  # end the read: the next call must see what the app wrote since
    return found
