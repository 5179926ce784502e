"""Issue 6 item 4: while another process holds SQLite's write lock (a directory import does for
seconds), requests wait for it and succeed; past the busy timeout they get 503 + Retry-After in
French, never a 500."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.app import create_app
from coordination.settings import Settings
from tests.support.service import FakeTokens, Pro, add_professional, running_app

pytestmark = pytest.mark.slow

PATIENT = {
    "birth_name": "DUPONT",
    "birth_first_names": ["Marie"],
    "birth_date": "1969-05-12",
    "sex": "F",
    "birth_place_code": "06088",
}


@contextmanager
def write_lock_held(database_url: str, seconds: float) -> Iterator[threading.Event]:
    """Another connection (as the importer's) takes the write lock and keeps it ``seconds``."""
    path = database_url.split("///", 1)[1]
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE directory_persons SET updated_at = updated_at")
            taken.set()
            done.wait(seconds)
            conn.execute("COMMIT")
        finally:
            taken.set()
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(10)
    try:
        yield done
    finally:
        thread.join()


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single-writer lock: PostgreSQL has row locks and no such wait")


async def _pro(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(db, tokens, localpart="busy", national_id="810000000135")


async def test_requests_wait_for_a_long_write_lock(
    sqlite_only: None, client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, database_url: str
) -> None:
    pro = await _pro(db, tokens)
    created = await client.post("/api/v1/patients", json=PATIENT, headers=pro.headers)
    assert created.status_code == 201, created.text
    # Longer than the 5 s SQLite timeout the service had: those requests answered 500 then.
    with write_lock_held(database_url, seconds=7.0):
        write, audited_read = await asyncio.gather(
            client.post("/api/v1/patients", json={**PATIENT, "birth_name": "DURAND"}, headers=pro.headers),
            client.get(f"/api/v1/patients/{created.json()['id']}", headers=pro.headers),
        )
    assert write.status_code == 201, write.text
    assert audited_read.status_code == 200, audited_read.text


@pytest.fixture
async def impatient_client(settings: Settings, tokens: FakeTokens) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"sqlite_busy_timeout_seconds": 0.5}), token_verifier=tokens)
    async with running_app(app) as c:
        yield c


async def test_past_the_busy_timeout_it_is_503_with_retry_after(
    sqlite_only: None,
    impatient_client: httpx.AsyncClient,
    db: AsyncSession,
    tokens: FakeTokens,
    database_url: str,
    tmp_path: Path,
) -> None:
    pro = await _pro(db, tokens)
    with write_lock_held(database_url, seconds=3.0):
        resp = await impatient_client.post("/api/v1/patients", json=PATIENT, headers=pro.headers)
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"].isdigit()
    assert resp.json()["errcode"] == "AZ_BUSY"
    assert "Réessayez" in resp.json()["error"]
    # Nothing was half-written: the same request succeeds once the lock is gone.
    again = await impatient_client.post("/api/v1/patients", json=PATIENT, headers=pro.headers)
    assert again.status_code == 201, again.text


async def test_requests_queued_behind_the_service_connection_get_503_too(
    sqlite_only: None,
    impatient_client: httpx.AsyncClient,
    db: AsyncSession,
    tokens: FakeTokens,
    database_url: str,
) -> None:
    """The service keeps one SQLite connection (its requests queue for it, first come first served):
    a request still queued for it past the busy timeout gets the same 503, never a 500."""
    pro = await _pro(db, tokens)
    with write_lock_held(database_url, seconds=3.0):
        answers = await asyncio.gather(
            *(
                impatient_client.post(
                    "/api/v1/patients",
                    json={**PATIENT, "birth_name": f"DURAND{'X' * i}"},
                    headers=pro.headers,
                )
                for i in range(4)
            )
        )
    assert [a.status_code for a in answers] == [503] * 4, [a.text for a in answers]
    assert all(a.json()["errcode"] == "AZ_BUSY" and a.headers["Retry-After"].isdigit() for a in answers)
