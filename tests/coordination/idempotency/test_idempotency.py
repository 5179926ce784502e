"""Exactly-once writes with ``Idempotency-Key`` (what the bot relies on after a crash)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.idempotency import service as idempotency
from coordination.patients.models import Patient
from tests.support.service import FakeTokens, Pro, add_professional

BODY = {
    "birth_name": "IDEMPOTENT",
    "birth_first_names": ["Anne"],
    "birth_date": "1950-02-03",
    "sex": "F",
    "birth_place_code": "06088",
}


async def _patients(db: AsyncSession) -> int:
    count = await db.scalar(select(func.count()).select_from(Patient))
    await db.rollback()
    return int(count or 0)


@pytest.fixture
async def pro(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(db, tokens, localpart="idem", national_id="810000000150")


def _headers(pro: Pro, key: str, **extra: str) -> dict[str, str]:
    return {**pro.headers, "Idempotency-Key": key, **extra}


async def test_a_replayed_write_answers_the_same_and_writes_once(
    client: httpx.AsyncClient, db: AsyncSession, pro: Pro
) -> None:
    first = await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "$evt1:azurezo.test"))
    again = await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "$evt1:azurezo.test"))
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _patients(db) == 1


async def test_the_same_key_for_another_write_is_refused(
    client: httpx.AsyncClient, db: AsyncSession, pro: Pro
) -> None:
    await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "k-2"))
    other = await client.post(
        "/api/v1/patients", json={**BODY, "birth_name": "AUTRE"}, headers=_headers(pro, "k-2")
    )
    assert other.status_code == 422
    assert other.json()["errcode"] == "AZ_IDEMPOTENCY_MISMATCH"
    assert "clé" in other.json()["error"]
    assert await _patients(db) == 1


async def test_keys_belong_to_whoever_acts(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, pro: Pro
) -> None:
    other = await add_professional(db, tokens, localpart="idem2", national_id="810000000168")
    a = await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "shared"))
    b = await client.post(
        "/api/v1/patients", json={**BODY, "birth_name": "BIS"}, headers=_headers(other, "shared")
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


async def test_twins_in_flight_write_once(client: httpx.AsyncClient, db: AsyncSession, pro: Pro) -> None:
    answers = await asyncio.gather(
        *(client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "twin")) for _ in range(8))
    )
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await _patients(db) == 1


async def test_refusals_are_not_remembered(client: httpx.AsyncClient, db: AsyncSession, pro: Pro) -> None:
    bad = await client.post("/api/v1/patients", json={**BODY, "sex": "Z"}, headers=_headers(pro, "try-again"))
    assert bad.status_code == 422
    # A refusal is decided again: the corrected request with the same key goes through... as another
    # request (its body differs), since nothing was stored for the refused one.
    good = await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "try-again"))
    assert good.status_code == 201, good.text


async def test_the_write_and_its_answer_commit_together(
    client: httpx.AsyncClient, db: AsyncSession, pro: Pro, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the write but before its answer is stored must undo the write (same transaction)."""

    async def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("process killed here")

    monkeypatch.setattr(idempotency, "_store", crash)
    with pytest.raises(RuntimeError):
        await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "crash"))
    assert await _patients(db) == 0
    monkeypatch.undo()
    retried = await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "crash"))
    assert retried.status_code == 201
    assert await _patients(db) == 1


async def test_a_malformed_key_is_refused_in_french(client: httpx.AsyncClient, pro: Pro) -> None:
    resp = await client.post("/api/v1/patients", json=BODY, headers=_headers(pro, "a key with spaces"))
    assert resp.status_code == 422
    assert "Idempotency-Key" in resp.json()["error"]


async def test_without_a_key_nothing_changes(client: httpx.AsyncClient, db: AsyncSession, pro: Pro) -> None:
    a = await client.post("/api/v1/patients", json=BODY, headers=pro.headers)
    b = await client.post("/api/v1/patients", json=BODY, headers=pro.headers)
    assert a.status_code == 201
    assert b.status_code == 409  # the duplicate check, as before
