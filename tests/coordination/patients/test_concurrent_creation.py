"""Issue 6, item 3: duplicate detection holds under concurrency, on SQLite and PostgreSQL.

Before: 50 parallel creations of the same identity made 13 dossiers (12 on PostgreSQL), and 50 with
the same INS number gave 11 answers 500 (``IntegrityError``). Now the database enforces one row per
identity key and rank (``uq_patients_identity``) and per INS; the losers of the race are answered 409
with the dossier that won as candidate.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.patients.models import Patient
from tests.coordination.patients.support import VALID_NIR_F, patient_body
from tests.support.service import FakeTokens, add_professional

PARALLEL = 50


async def _create_all(
    client: httpx.AsyncClient, headers: dict[str, str], bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(client.post("/api/v1/patients", json=b, headers=headers) for b in bodies))
    )


async def _count(db: AsyncSession) -> int:
    n = await db.scalar(select(func.count()).select_from(Patient))
    await db.rollback()
    return int(n or 0)


async def test_parallel_creations_of_one_identity_make_one_dossier(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    answers = await _create_all(client, pro.headers, [patient_body() for _ in range(PARALLEL)])
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (PARALLEL - 1), codes
    created = next(r.json()["id"] for r in answers if r.status_code == 201)
    for r in answers:
        if r.status_code == 409:
            assert r.json()["errcode"] == "AZ_DUPLICATE_SUSPECTED"
            assert [c["id"] for c in r.json()["candidates"]] == [created]
    assert await _count(db) == 1


async def test_parallel_creations_with_one_ins_make_one_dossier_and_no_500(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    # Different names (so different identity keys), the same INS number.
    bodies = [
        patient_body(birth_name=f"DUPONT{'A' * (i % 7 + 1)}{chr(65 + i % 26)}", ins_number=VALID_NIR_F)
        for i in range(PARALLEL)
    ]
    answers = await _create_all(client, pro.headers, bodies)
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (PARALLEL - 1), codes
    assert {r.json()["errcode"] for r in answers if r.status_code == 409} <= {
        "AZ_DUPLICATE_SUSPECTED",
        "AZ_INS_EXISTS",
    }
    assert await _count(db) == 1


async def test_parallel_confirmed_homonyms_all_get_a_rank(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    """Confirmed homonyms are distinct people: each creation succeeds with its own rank."""
    pro = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    first = await client.post("/api/v1/patients", json=patient_body(), headers=pro.headers)
    assert first.status_code == 201
    bodies = [patient_body(birth_place_code=f"06{i:03d}", confirm_duplicate=True) for i in range(1, 11)]
    answers = await _create_all(client, pro.headers, bodies)
    assert [r.status_code for r in answers] == [201] * 10, [r.text for r in answers if r.status_code != 201]
    ranks = sorted((await db.scalars(select(Patient.homonym_rank))).all())
    await db.rollback()
    assert ranks == list(range(11))
    assert all(r.json()["identity_status"] == "provisoire" for r in answers)
    assert uuid.UUID(first.json()["id"])
