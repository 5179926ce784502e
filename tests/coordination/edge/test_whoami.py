"""Token checks against Synapse's whoami: the short cache (issue 6 item 17) and Synapse down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.app import create_app
from coordination.errors import Unavailable
from coordination.ids import UserId
from coordination.security import SynapseWhoami
from coordination.settings import Settings
from tests.support.service import FakeTokens, add_professional, running_app


class FakeSynapse:
    """Synapse's whoami as seen over HTTP (an edge we don't own): tokens can be logged out."""

    def __init__(self) -> None:
        self.valid = {"tok": "@jmartin:azurezo.test"}
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token in self.valid:
            return httpx.Response(200, json={"user_id": self.valid[token]})
        return httpx.Response(401, json={"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown token"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def synapse_and_verifier() -> AsyncIterator[tuple[FakeSynapse, Clock, SynapseWhoami]]:
    fake, clock = FakeSynapse(), Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
        verifier = SynapseWhoami(
            "http://synapse",
            cache_seconds=Settings.model_fields["whoami_cache_seconds"].default,
            client=client,
            timer=clock,
        )
        yield fake, clock, verifier


async def test_a_logged_out_token_stops_working_within_5_seconds(
    synapse_and_verifier: tuple[FakeSynapse, Clock, SynapseWhoami],
) -> None:
    fake, clock, verifier = synapse_and_verifier
    assert await verifier.user_for_token("tok") == "@jmartin:azurezo.test"
    assert await verifier.user_for_token("tok") == "@jmartin:azurezo.test"
    assert fake.calls == 1  # the second check came from the cache
    del fake.valid["tok"]  # the professional logs out in Element
    clock.now += 5.01
    assert await verifier.user_for_token("tok") is None
    assert fake.calls == 2


async def test_the_cache_is_bounded(synapse_and_verifier: tuple[FakeSynapse, Clock, SynapseWhoami]) -> None:
    fake, _clock, _ = synapse_and_verifier
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
        small = SynapseWhoami("http://synapse", cache_seconds=5, client=client, max_tokens=2)
        for i in range(5):
            fake.valid[f"t{i}"] = f"@u{i}:azurezo.test"
            await small.user_for_token(f"t{i}")
        calls = fake.calls
        await small.user_for_token("t0")  # evicted: asks Synapse again
        assert fake.calls == calls + 1


def test_the_cache_cannot_be_configured_past_5_seconds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whoami_cache_seconds"):
        Settings(
            database_url="sqlite+aiosqlite:///x.db",
            synapse_url="http://127.0.0.1:9",
            server_name="azurezo.test",
            internal_api_secret="t" * 48,
            documents_dir=tmp_path,
            whoami_cache_seconds=30,
        )


async def test_synapse_unreachable_is_503_in_french(settings: Settings) -> None:
    # No token verifier injected: the real whoami client, pointed at a port where nothing listens.
    app = create_app(settings.model_copy(update={"synapse_url": "http://127.0.0.1:9"}))
    async with running_app(app) as client:
        resp = await client.get("/api/v1/me", headers={"Authorization": "Bearer whatever"})
        assert resp.status_code == 503
        assert resp.json()["errcode"] == "AZ_UNAVAILABLE"
        assert "ne répond pas" in resp.json()["error"]
        body = await client.post(
            "/api/v1/patients", json={"birth_name": "X"}, headers={"Authorization": "Bearer whatever"}
        )
        assert body.status_code == 503


async def test_synapse_unreachable_with_an_idempotency_key_is_503_too(settings: Settings) -> None:
    """The idempotency layer asks who the key belongs to before the route does: Synapse being down
    must give the same French 503, not a 500."""
    app = create_app(settings.model_copy(update={"synapse_url": "http://127.0.0.1:9"}))
    async with running_app(app) as client:
        resp = await client.post(
            "/api/v1/tasks",
            json={"title": "Appeler", "type": "appel"},
            headers={"Authorization": "Bearer whatever", "Idempotency-Key": "evt-1"},
        )
        assert resp.status_code == 503, resp.text
        assert resp.json()["errcode"] == "AZ_UNAVAILABLE"


async def test_concurrent_misses_ask_synapse_once(
    synapse_and_verifier: tuple[FakeSynapse, Clock, SynapseWhoami],
) -> None:
    """When a busy client's entry expires, its concurrent requests share one whoami (Synapse's own
    check of the session then asks this service once, not once per request)."""
    fake, clock, verifier = synapse_and_verifier
    answers = await asyncio.gather(*(verifier.user_for_token("tok") for _ in range(20)))
    assert answers == ["@jmartin:azurezo.test"] * 20
    assert fake.calls == 1
    clock.now += 5.01  # expired: the next burst asks once more
    await asyncio.gather(*(verifier.user_for_token("tok") for _ in range(20)))
    assert fake.calls == 2
    refused = await asyncio.gather(*(verifier.user_for_token("other") for _ in range(5)))
    assert refused == [None] * 5 and fake.calls == 3


async def test_a_shared_failure_reaches_every_waiter_and_is_not_kept() -> None:
    calls = 0

    def down(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        verifier = SynapseWhoami("http://synapse", cache_seconds=5, client=client)
        results = await asyncio.gather(
            *(verifier.user_for_token("tok") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, Unavailable) for r in results) and calls == 1
        with pytest.raises(Unavailable):
            await verifier.user_for_token("tok")  # asked again: a failure is never cached
        assert calls == 2


class CountingTokens(FakeTokens):
    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def user_for_token(self, token: str) -> UserId | None:
        self.asked += 1
        return await super().user_for_token(token)


async def test_a_write_asks_who_the_token_is_once(settings: Settings, db: AsyncSession) -> None:
    """The route does not ask Synapse again what RequestGuard verified: with an Idempotency-Key the
    route runs inside the write's transaction, and Synapse's session check calls back into this
    service, which then waited for that transaction until the module's timeout (2 s stalls of every
    request under load, issue 9)."""
    tokens = CountingTokens()
    pro = await add_professional(db, tokens, localpart="once", national_id="810000000136")
    app = create_app(settings, token_verifier=tokens)
    async with running_app(app) as client:
        for key in ("k-1", None):
            tokens.asked = 0
            headers = pro.headers | ({"Idempotency-Key": key} if key else {})
            resp = await client.post(
                "/api/v1/tasks", json={"title": "Appeler", "type": "appel"}, headers=headers
            )
            assert resp.status_code == 201, resp.text
            assert tokens.asked == 1
