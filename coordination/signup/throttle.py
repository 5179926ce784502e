"""Rate limits of the public sign-up pages (per client address, and per activation link), so the
forms cannot be used to enumerate the directory or to guess links and passwords.

In memory (``limits``' moving window): one service process serves the pages; a restart forgets the
counters, which is fine for limits counted in minutes and hours.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

# What each limit protects, and its budget.
LIMITS: dict[str, str] = {
    "submit": "5/hour",  # sign-up requests from one address
    "activation": "20/hour",  # activation attempts (passwords tried) from one address
    "activation_link": "10/hour",  # attempts on one link, whatever the address
}


class Throttle:
    """``allow(kind, key)`` counts one hit and says whether it is within ``LIMITS[kind]``."""

    def __init__(self, limits: dict[str, str] | None = None) -> None:
        self.reset(limits)

    def reset(self, limits: dict[str, str] | None = None) -> None:
        """Forget every count, with ``limits`` (default ``LIMITS``) from now on."""
        self._items: dict[str, RateLimitItem] = {
            kind: parse(text) for kind, text in (limits or LIMITS).items()
        }
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, kind: str, key: str) -> bool:
        return self._limiter.hit(self._items[kind], kind, key)

    def retry_after(self, kind: str, key: str) -> int:
        """Seconds until the next hit of ``kind`` for ``key`` would be allowed (at least 1)."""
        reset, _remaining = self._limiter.get_window_stats(self._items[kind], kind, key)
        return max(1, int(reset - time.time()))
