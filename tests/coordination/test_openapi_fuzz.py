"""Property-based fuzzing of the whole public API from its own OpenAPI schema (schemathesis).

The real app runs under uvicorn on a loopback port against a real database seeded with an authorised
professional, a DAC and a patient, so generated requests reach the rules, not only the validation layer.
Bounded (a few examples per operation) to keep `make test` short; it must find no 5xx, no answer outside
the documented status codes and no body that breaks its schema.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from coordination.app import create_app
from coordination.db import make_engine, make_sessionmaker
from coordination.settings import Settings
from tests.support.service import FakeTokens, add_professional, add_structure, create_schema

schema = schemathesis.pytest.from_fixture("api_schema")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(database_url: str, tokens: FakeTokens) -> str:
    await create_schema(database_url)
    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as session:
        await add_structure(session, "finess:060000099", "DAC 06 - Alpes-Maritimes", is_dac=True)
        pro = await add_professional(
            session, tokens, localpart="fuzz", national_id="810000009999", structure_ids=("finess:060000099",)
        )
    await engine.dispose()
    return pro.token


@pytest.fixture(scope="module")
def served_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite+aiosqlite:///{tmp}/fuzz.db"
    tokens = FakeTokens()
    token = asyncio.run(_seed(database_url, tokens))
    settings_ = Settings(
        database_url=database_url,
        synapse_url="http://127.0.0.1:9",
        server_name="azurezo.test",
        internal_api_secret="f" * 48,
        documents_dir=tmp / "documents",
        bot_user_id="@azurezo-bot:azurezo.test",
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings_, token_verifier=tokens), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    # Create one patient so that generated ids sometimes meet a real dossier.
    httpx.post(
        f"{base}/api/v1/patients",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "birth_name": "DUPONT",
            "birth_first_names": ["Marie"],
            "birth_date": "1950-02-03",
            "sex": "F",
            "birth_place_code": "06088",
        },
        timeout=10,
    )
    try:
        yield base, token
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def api_schema(served_api: tuple[str, str]) -> schemathesis.schemas.BaseSchema:
    base, _ = served_api
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_never_fails_nor_breaks_its_schema(case: schemathesis.Case, served_api: tuple[str, str]) -> None:
    _, token = served_api
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            schemathesis.checks.not_a_server_error,
            schemathesis.checks.status_code_conformance,
            schemathesis.checks.content_type_conformance,
            schemathesis.checks.response_schema_conformance,
        ],
    )
