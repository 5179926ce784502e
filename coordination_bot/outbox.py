"""The bot's outbox consumer: reads the service's events, hands each to the handler of its kind, and
acknowledges only what was handled.

Never lost: the service keeps every event until the bot acknowledges it (``POST /api/v1/events/ack``),
and the consumer always reads from its acknowledged position, so events written while the bot was down
are read when it starts. Never twice: a handler's Matrix messages use transaction ids derived from the
event id (``tx_id``), so an event handled again after a crash between the message and the ack (same
device, same token) makes Synapse answer with the first message instead of sending a second one;
invitations and kicks are idempotent by nature.

Generic: ``register(kind, handler)``; events of a kind nobody handles are acknowledged as seen.
Ordered kinds (room membership) are handled in order per patient; notifications registered with
``ordered=False`` each run on their own; lanes run concurrently (``LANES`` at once), so a burst of
writes or one slow room does not hold back every other notification.
A handler that fails (service or Matrix unreachable) stops the round at that event: it and the ones
after it are read again at the next round, with a growing pause; after ``MAX_ATTEMPTS`` failures of
the same event it is logged as dropped (its id only) and acknowledged, so one broken event cannot stop
every notification behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable

from coordination_bot.service_client import OutboxEvent, ServiceClient, ServiceError

logger = logging.getLogger(__name__)

Handler = Callable[[OutboxEvent], Awaitable[None]]
Prefetch = Callable[[list[OutboxEvent]], Awaitable[None]]

POLL_SECONDS = 0.2  # an idle bot asks every 200 ms: the latency promise is p95 <= 2 s
PAGE = 200
MAX_ATTEMPTS = 8
MAX_BACKOFF = 30.0
# Lanes at once: a whole page, so that a burst's notifications for one room queue together and leave
# in a few combined messages (send_batched); the labels were read for the page at once (prefetch).
LANES = PAGE


def lane(event: OutboxEvent, *, ordered: bool) -> str:
    """Events of one lane are handled in order. Ordered kinds (room membership): those of one patient,
    else those for the same people; others (notifications) each in a lane of their own."""
    if not ordered:
        return f"event:{event.id}"
    patient = event.event.get("patient_id")
    return f"patient:{patient}" if patient else "to:" + ",".join(sorted(event.recipients))


def tx_id(event: OutboxEvent, part: str = "") -> str:
    """A Matrix transaction id derived from the outbox event (and which of its messages)."""
    digest = hashlib.sha256(f"outbox/{event.id}/{part}".encode()).hexdigest()[:32]
    return f"outbox-{event.id}-{digest}"


class OutboxConsumer:
    """Polls ``GET /api/v1/events`` and dispatches by ``event.kind``."""

    def __init__(self, *, service: ServiceClient, poll_seconds: float = POLL_SECONDS) -> None:
        self._service = service
        self._poll = poll_seconds
        self._handlers: dict[str, Handler] = {}
        self._prefetches: list[Prefetch] = []
        self._ordered: set[str] = set()
        self._failures: dict[int, int] = {}
        self.handled = 0  # events handled since start (health and tests)
        self.latencies: list[float] = []  # seconds from read to handled, last 1000 (bench)

    def register(self, kind: str, handler: Handler, *, ordered: bool = True) -> None:
        """Handle events of ``kind`` with ``handler`` (one per kind). ``ordered``: after the earlier
        ordered events of the same patient (membership changes must apply in order); a notification
        may pass ``ordered=False`` and be handled alongside the others."""
        if kind in self._handlers:
            raise ValueError(f"a handler is already registered for {kind}")
        self._handlers[kind] = handler
        if ordered:
            self._ordered.add(kind)

    def prefetch(self, fetch: Prefetch) -> None:
        """Call ``fetch`` with each page before its handlers run (one read for a page's labels instead
        of one per event). A failing prefetch is logged and the handlers read what they need alone."""
        self._prefetches.append(fetch)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; a failing round waits longer before the next one."""
        pause = self._poll
        while not stop.is_set():
            try:
                progressed, failed = await self.poll_once()
            except ServiceError as exc:  # the service is down: try again later
                logger.warning("outbox not readable: %s %s", exc.status, exc.errcode)
                progressed, failed = 0, True
            if failed:
                pause = min(max(pause * 2, 1.0), MAX_BACKOFF)
            elif progressed:
                pause = 0.0  # more may be waiting: read on at once
            else:
                pause = self._poll
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)

    async def poll_once(self) -> tuple[int, bool]:
        """One page: events of one lane (a patient, else its recipients) in order, lanes concurrently;
        acknowledge up to the last event before the first one not handled.

        Returns (events acknowledged, whether a handler failed). Events of other lanes handled after a
        failure are read (and handled) again next round: their messages' transaction ids make that a
        no-op on Synapse, and invitations and kicks are idempotent."""
        events = await self._service.events(limit=PAGE)
        if not events:
            return 0, False
        for fetch in self._prefetches:
            try:
                await fetch(events)
            except Exception:
                logger.warning("outbox prefetch failed: each event reads alone", exc_info=True)
        lanes: dict[str, list[OutboxEvent]] = {}
        for event in events:
            lanes.setdefault(lane(event, ordered=event.kind in self._ordered), []).append(event)
        handled: set[int] = set()
        limit = asyncio.Semaphore(LANES)

        async def run_lane(queue: list[OutboxEvent]) -> None:
            async with limit:
                for event in queue:
                    if not await self._handle(event):
                        return
                    handled.add(event.id)

        await asyncio.gather(*(run_lane(q) for q in lanes.values()))
        done = 0
        last: int | None = None
        for event in events:  # oldest first: the acknowledged prefix
            if event.id not in handled:
                break
            last = event.id
            done += 1
        if last is not None:
            await self._service.ack(up_to=last)
        return done, done < len(events)

    async def _handle(self, event: OutboxEvent) -> bool:
        """Handle one event; True when it may be acknowledged."""
        handler = self._handlers.get(event.kind)
        if handler is None:
            return True
        started = time.monotonic()
        try:
            await handler(event)
        except Exception:
            attempts = self._failures.get(event.id, 0) + 1
            self._failures[event.id] = attempts
            if attempts < MAX_ATTEMPTS:
                logger.warning(
                    "outbox event %s (%s) failed, attempt %d", event.id, event.kind, attempts, exc_info=True
                )
                return False
            logger.exception("outbox event %s (%s) dropped after %d attempts", event.id, event.kind, attempts)
        self._failures.pop(event.id, None)
        self.handled += 1
        self.latencies = [*self.latencies[-999:], time.monotonic() - started]
        return True
