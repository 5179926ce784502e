"""Standing of Matrix users in the professionals' directory, cached with a TTL and a size bound.

Framework-neutral: the HTTP fetch, the clock and the way to start a background task are injected,
so the same class runs on Synapse's Twisted reactor (see ``synapse_module.module``) and in plain
asyncio unit tests.

Freshness, with ``ttl`` the configured TTL:
- an answer younger than ``ttl`` is used as it is;
- an answer between ``ttl`` and ``2 * ttl`` old is used while one refresh runs in the background
  (so hot users never wait for the directory);
- an older answer, or none, is fetched before answering.
A professional flipped inactive therefore loses access within ``2 * ttl`` (plus one timeout).

When the directory cannot be reached, the answer says so (``confirmed=False``) and carries the last
known standing, if any: gates (registration, invites, joins) refuse; sessions and logins keep the
last known standing. After a failure, the directory is not asked again for ``retry_after`` seconds,
so an outage does not make every request wait for a timeout.
"""

from __future__ import annotations

import enum
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class Standing(enum.Enum):
    """What the directory says about a Matrix user."""

    ACTIVE = "active"
    INACTIVE = "inactive"  # bound to a person who is no longer an active professional
    NOT_BOUND = "not_bound"  # no directory person bound to this Matrix ID


class DirectoryUnavailable(Exception):
    """The directory did not give a usable answer (timeout, connection refused, 5xx, 401...)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A standing and whether it comes from a recent directory answer.

    ``standing`` is None when the directory is unreachable and nothing is known about the user.
    ``confirmed`` is False when the directory could not be asked and ``standing`` is the last
    known one (possibly old).
    """

    standing: Standing | None
    confirmed: bool


@dataclass(slots=True)
class _Entry:
    standing: Standing
    fetched_at: float


Fetch = Callable[[str], Awaitable[Standing]]
Spawn = Callable[[Callable[[], Awaitable[None]]], None]


class DirectoryCache:
    """Answers ``standing(user_id)`` from a bounded LRU cache backed by ``fetch``."""

    def __init__(
        self,
        *,
        fetch: Fetch,
        clock: Callable[[], float],
        spawn: Spawn,
        ttl: float,
        max_entries: int,
        retry_after: float | None = None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._spawn = spawn
        self._ttl = ttl
        self._max_entries = max_entries
        self._retry_after = min(ttl, 5.0) if retry_after is None else retry_after
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._refreshing: set[str] = set()
        self._down_until = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    async def standing(self, user_id: str, *, fresh: bool = False) -> Answer:
        """The user's standing, fetched or refreshed as the freshness rules above say.

        ``fresh`` asks the directory whatever the cache holds (rare, decisive moments such as
        creating an account, just after the operator bound it); the cache is still the fallback.
        """
        now = self._clock()
        entry = self._entries.get(user_id)
        if entry is not None and not fresh:
            age = now - entry.fetched_at
            if age < self._ttl:
                self._entries.move_to_end(user_id)
                return Answer(entry.standing, confirmed=True)
            if age < 2 * self._ttl:
                self._entries.move_to_end(user_id)
                self._refresh_in_background(user_id)
                return Answer(entry.standing, confirmed=True)
        return await self._fetch_now(user_id, entry)

    def forget(self, user_id: str) -> None:
        """Drop what is known about ``user_id`` (the next question asks the directory)."""
        self._entries.pop(user_id, None)

    async def _fetch_now(self, user_id: str, entry: _Entry | None) -> Answer:
        last_known = entry.standing if entry is not None else None
        if self._clock() < self._down_until:  # a recent failure: do not wait for another one
            return Answer(last_known, confirmed=False)
        try:
            standing = await self._fetch(user_id)
        except DirectoryUnavailable as exc:
            self._down_until = self._clock() + self._retry_after
            logger.warning("directory unavailable for %s: %s", user_id, exc)
            return Answer(last_known, confirmed=False)
        self._store(user_id, standing)
        return Answer(standing, confirmed=True)

    def _store(self, user_id: str, standing: Standing) -> None:
        self._down_until = float("-inf")
        self._entries[user_id] = _Entry(standing, self._clock())
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _refresh_in_background(self, user_id: str) -> None:
        if user_id in self._refreshing or self._clock() < self._down_until:
            return
        self._refreshing.add(user_id)

        async def refresh() -> None:
            try:
                standing = await self._fetch(user_id)
            except DirectoryUnavailable as exc:
                self._down_until = self._clock() + self._retry_after
                logger.warning("directory refresh failed for %s: %s", user_id, exc)
            else:
                self._store(user_id, standing)
            finally:
                self._refreshing.discard(user_id)

        self._spawn(refresh)


def parse_directory_response(status: int, body: bytes, *, user_id: str) -> Standing:
    """Map the directory's HTTP answer to a standing (contract in docs/ARCHITECTURE.md).

    200 ``{"user_id", "national_id", "active", "display_name"}`` -> ACTIVE / INACTIVE;
    404 ``{"errcode": "AZ_NOT_BOUND"}`` -> NOT_BOUND; anything else (401 wrong secret, 5xx,
    malformed JSON...) is an outage.
    """
    try:
        payload = json.loads(body) if status in (200, 404) else None
    except ValueError as exc:
        raise DirectoryUnavailable(f"HTTP {status} with malformed JSON") from exc
    if status == 404:
        # Only the directory's own "not bound" counts: a 404 from a wrong URL or a proxy must not
        # read as "this person is not a professional".
        if isinstance(payload, dict) and payload.get("errcode") == "AZ_NOT_BOUND":
            return Standing.NOT_BOUND
        raise DirectoryUnavailable("HTTP 404 without AZ_NOT_BOUND (wrong directory_url?)")
    if status != 200:
        raise DirectoryUnavailable(f"HTTP {status}")
    if not isinstance(payload, dict) or not isinstance(payload.get("active"), bool):
        raise DirectoryUnavailable("unexpected payload")
    if payload.get("user_id") != user_id:
        raise DirectoryUnavailable("answer for another user")
    return Standing.ACTIVE if payload["active"] else Standing.INACTIVE
