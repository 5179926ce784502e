"""DirectoryCache freshness, size bound and outage behaviour; parsing of the directory's answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from synapse_module.directory import (
    Answer,
    DirectoryCache,
    DirectoryUnavailable,
    Standing,
    parse_directory_response,
)


class FakeDirectory:
    """The directory at the edge: a table of standings, a switch to make it unreachable."""

    def __init__(self) -> None:
        self.standings: dict[str, Standing] = {}
        self.down = False
        self.calls: list[str] = []

    async def fetch(self, user_id: str) -> Standing:
        self.calls.append(user_id)
        await asyncio.sleep(0)
        if self.down:
            raise DirectoryUnavailable("connection refused")
        return self.standings.get(user_id, Standing.NOT_BOUND)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tasks:
    def __init__(self) -> None:
        self.running: set[asyncio.Task[None]] = set()

    def spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await task()

        t = asyncio.ensure_future(run())
        self.running.add(t)
        t.add_done_callback(self.running.discard)

    async def drain(self) -> None:
        while self.running:
            await asyncio.gather(*self.running)


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tasks() -> Tasks:
    return Tasks()


def make(directory: FakeDirectory, clock: Clock, tasks: Tasks, **kw: float) -> DirectoryCache:
    params: dict[str, float] = {"ttl": 30.0, "max_entries": 1000} | kw
    return DirectoryCache(
        fetch=directory.fetch,
        clock=clock,
        spawn=tasks.spawn,
        ttl=params["ttl"],
        max_entries=int(params["max_entries"]),
        retry_after=params.get("retry_after"),
    )


U = "@jmartin:azurezo.test"


async def test_fresh_answers_come_from_the_cache(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    directory.standings[U] = Standing.ACTIVE
    cache = make(directory, clock, tasks)
    assert await cache.standing(U) == Answer(Standing.ACTIVE, confirmed=True)
    clock.now += 29
    assert await cache.standing(U) == Answer(Standing.ACTIVE, confirmed=True)
    assert directory.calls == [U]


async def test_deactivation_is_seen_within_twice_the_ttl(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    directory.standings[U] = Standing.ACTIVE
    cache = make(directory, clock, tasks)
    await cache.standing(U)
    directory.standings[U] = Standing.INACTIVE
    # Between ttl and 2 ttl: the old answer, while one background refresh runs.
    clock.now += 31
    assert (await cache.standing(U)).standing is Standing.ACTIVE
    assert (await cache.standing(U)).standing is Standing.ACTIVE  # no second refresh started
    await tasks.drain()
    assert directory.calls == [U, U]
    assert (await cache.standing(U)).standing is Standing.INACTIVE


async def test_an_answer_older_than_twice_the_ttl_is_refetched_before_answering(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    directory.standings[U] = Standing.ACTIVE
    cache = make(directory, clock, tasks)
    await cache.standing(U)
    directory.standings[U] = Standing.INACTIVE
    clock.now += 60
    assert await cache.standing(U) == Answer(Standing.INACTIVE, confirmed=True)
    assert not tasks.running
    # Reactivated: back within the same bound.
    directory.standings[U] = Standing.ACTIVE
    clock.now += 60
    assert (await cache.standing(U)).standing is Standing.ACTIVE


async def test_outage_serves_the_last_known_standing_unconfirmed(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    directory.standings[U] = Standing.ACTIVE
    cache = make(directory, clock, tasks)
    await cache.standing(U)
    directory.down = True
    clock.now += 300
    assert await cache.standing(U) == Answer(Standing.ACTIVE, confirmed=False)
    assert await cache.standing("@unknown:azurezo.test") == Answer(None, confirmed=False)


async def test_after_a_failure_the_directory_is_not_hammered(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    cache = make(directory, clock, tasks, retry_after=5.0)
    directory.down = True
    for _ in range(10):
        assert (await cache.standing(U)).confirmed is False
    assert directory.calls == [U]
    directory.down = False
    directory.standings[U] = Standing.ACTIVE
    clock.now += 5.1
    assert await cache.standing(U) == Answer(Standing.ACTIVE, confirmed=True)


async def test_negative_answers_are_cached_too(directory: FakeDirectory, clock: Clock, tasks: Tasks) -> None:
    cache = make(directory, clock, tasks)
    assert (await cache.standing(U)).standing is Standing.NOT_BOUND
    assert (await cache.standing(U)).standing is Standing.NOT_BOUND
    assert directory.calls == [U]


async def test_the_cache_is_bounded_least_recently_used_first(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    cache = make(directory, clock, tasks, max_entries=3)
    for i in range(3):
        await cache.standing(f"@u{i}:s")
    await cache.standing("@u0:s")  # touch: u1 becomes the oldest
    await cache.standing("@u3:s")
    assert len(cache) == 3
    directory.calls.clear()
    await cache.standing("@u0:s")
    await cache.standing("@u1:s")
    assert directory.calls == ["@u1:s"]


async def test_forget_drops_an_entry(directory: FakeDirectory, clock: Clock, tasks: Tasks) -> None:
    cache = make(directory, clock, tasks)
    await cache.standing(U)
    cache.forget(U)
    await cache.standing(U)
    assert directory.calls == [U, U]


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_directory_answers_map_to_standings() -> None:
    ok = body(user_id=U, national_id="810001234567", active=True, display_name="Dr Jeanne Martin")
    assert parse_directory_response(200, ok, user_id=U) is Standing.ACTIVE
    off = body(user_id=U, national_id="810001234567", active=False, display_name="x")
    assert parse_directory_response(200, off, user_id=U) is Standing.INACTIVE
    not_bound = body(errcode="AZ_NOT_BOUND", error="...")
    assert parse_directory_response(404, not_bound, user_id=U) is Standing.NOT_BOUND


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (401, body(errcode="AZ_UNAUTHENTICATED")),
        (500, b"oops"),
        (503, b""),
        (200, b"not json"),
        (200, body(user_id=U, active="yes")),
        (200, body(user_id="@other:azurezo.test", active=True)),
        (200, b"[]"),
        (404, body(detail="Not Found")),  # a wrong URL, not the directory's answer
        (404, b"<html>not found</html>"),
    ],
)
def test_anything_else_is_an_outage_not_a_verdict(status: int, payload: bytes) -> None:
    with pytest.raises(DirectoryUnavailable):
        parse_directory_response(status, payload, user_id=U)


async def test_fresh_look_up_ignores_a_cached_negative_answer(
    directory: FakeDirectory, clock: Clock, tasks: Tasks
) -> None:
    cache = make(directory, clock, tasks)
    assert (await cache.standing(U)).standing is Standing.NOT_BOUND
    directory.standings[U] = Standing.ACTIVE  # the operator binds the account
    assert (await cache.standing(U)).standing is Standing.NOT_BOUND  # cached
    assert await cache.standing(U, fresh=True) == Answer(Standing.ACTIVE, confirmed=True)
    assert (await cache.standing(U)).standing is Standing.ACTIVE  # and the cache learnt it
    directory.down = True
    assert await cache.standing(U, fresh=True) == Answer(Standing.ACTIVE, confirmed=False)
