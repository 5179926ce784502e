"""What the outbox handlers do on Matrix (send, create rooms, invite, kick, pin), over matrix-nio.

Every message carries a transaction id the caller derives from what it announces (an outbox event,
a join): sent again after a crash, Synapse answers with the first event instead of a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    LocalProtocolError,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
)

from coordination_bot.state import write_private

logger = logging.getLogger(__name__)

ROOM_WAIT_SECONDS = 30.0
BATCH_MAX = 50  # notifications combined into one message at most
# ... and at most this many characters of text (body + HTML): a Matrix event is 64 KiB at most, and
# encryption makes the text about a third larger.
BATCH_CHARS = 24_000
PLAN_WAIT = 5.0  # seconds the parts of a journaled batch wait for the rest of it after a restart
PLANS_KEPT = 2000  # journaled batches remembered (far more than an unacknowledged outbox page holds)
SENT_MEMORY = 20_000  # transaction ids remembered as delivered (an outbox page read again)


class MatrixFailure(Exception):
    """Matrix refused or failed; the outbox handler is retried later."""


class Messenger:
    """The bot's Matrix actions for the outbox handlers. ``dms_file``: the bot's direct rooms."""

    def __init__(self, client: AsyncClient, *, dms_file: Path, keys_lock: asyncio.Lock | None = None) -> None:
        self.client = client
        self._dms_file = dms_file
        self._dms: dict[str, str] = _read_map(dms_file)
        self._dm_lock = asyncio.Lock()
        self._keys_lock = keys_lock or asyncio.Lock()
        self._share_locks: dict[str, asyncio.Lock] = {}
        # Batched sends: parts waiting per room while a send to that room is in flight.
        self._pending: dict[str, list[_Part]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._sent: dict[str, None] = {}  # insertion-ordered set of delivered part tx ids
        self.sends = 0  # m.room.message requests made (bench and tests)
        self._batches_file = dms_file.with_name("batches.jsonl")
        self._plans: dict[str, list[str]] = {}  # batch tx id -> its parts' tx ids, oldest first
        self._plan_of: dict[str, str] = {}
        self._load_plans()

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    async def wait_room(self, room_id: str, *, member: str | None = None) -> None:
        """Wait until the sync loop knows the room (nio encrypts only for rooms it knows), and
        ``member`` in it when given."""
        deadline = time.monotonic() + ROOM_WAIT_SECONDS
        while time.monotonic() < deadline:
            room = self.client.rooms.get(room_id)
            if room is not None and (member is None or member in room.users):
                return
            await asyncio.sleep(0.05)
        raise MatrixFailure(f"room {room_id} not seen by the sync loop")

    def members(self, room_id: str) -> set[str] | None:
        """Joined and invited members as the sync loop knows them; None when the bot is not in it."""
        room = self.client.rooms.get(room_id)
        return None if room is None else set(room.users)

    def encrypted(self, room_id: str) -> bool:
        """Whether the room is end-to-end encrypted, as the sync loop knows it (False when not in it)."""
        room = self.client.rooms.get(room_id)
        return room is not None and bool(room.encrypted)

    def power_level(self, room_id: str) -> int:
        room = self.client.rooms.get(room_id)
        return 0 if room is None else int(room.power_levels.get_user_level(self.user_id))

    async def _fresh_device_lists(self) -> None:
        async with self._keys_lock:
            if self.client.should_query_keys:
                with contextlib.suppress(LocalProtocolError):
                    await self.client.keys_query()

    async def send(self, room_id: str, content: dict[str, Any], *, tx_id: str) -> str:
        """Send an ``m.room.message`` (encrypted in encrypted rooms); returns its event id."""
        await self.wait_room(room_id)
        await self._fresh_device_lists()
        await self._share_key(room_id)
        resp = await self.client.room_send(
            room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
        )
        if not isinstance(resp, RoomSendResponse):
            raise MatrixFailure(f"send to {room_id} failed: {resp}")
        self.sends += 1
        return str(resp.event_id)

    async def send_batched(self, room_id: str, content: dict[str, Any], *, tx_id: str) -> None:
        """Send ``content`` to ``room_id``, combined with the other notifications queued for the same
        room while a send to it is in flight (one message instead of many under a burst of writes).

        Nothing is waited for when the room is idle: the first part leaves at once, alone, with its own
        ``tx_id`` (exactly as ``send``). Exactly once: a combined message's transaction id derives from
        its parts' ids and the batch (which parts) is journaled in ``batches.jsonl`` before it is sent,
        so after a crash the same parts, read again from the outbox, are gathered into the same batch
        and Synapse deduplicates it; a part this process already delivered is not sent again."""
        if tx_id in self._sent:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(room_id, []).append(_Part(content, tx_id, done))
        if room_id not in self._flushers:
            self._flushers[room_id] = asyncio.create_task(self._flush(room_id))
        await done

    async def _flush(self, room_id: str) -> None:
        """Send what is queued for ``room_id`` until nothing is left, a batch at a time."""
        try:
            await asyncio.sleep(0)  # let the handlers that run alongside queue their parts
            while self._pending.get(room_id):
                taken = self._take(room_id)
                if taken is None:  # a batch journaled before a restart is being gathered again
                    await asyncio.sleep(0.05)
                    continue
                batch, txn = taken
                try:
                    content = batch[0].content if len(batch) == 1 else combine([p.content for p in batch])
                    await self.send(room_id, content, tx_id=txn)
                except Exception as exc:  # each waiting handler fails and is retried by the consumer
                    for part in batch:
                        if not part.done.done():
                            part.done.set_exception(exc)
                    continue
                for part in batch:
                    self._remember(part.tx_id)
                    if not part.done.done():
                        part.done.set_result(None)
        finally:  # cancelled (shutdown): nobody may wait for ever
            for part in self._pending.pop(room_id, []):
                if not part.done.done():
                    part.done.set_exception(MatrixFailure(f"send to {room_id} interrupted"))
            self._flushers.pop(room_id, None)

    def _take(self, room_id: str) -> tuple[list[_Part], str] | None:
        """The next batch for ``room_id`` and its transaction id; None while only parts of a journaled
        batch wait for the rest of it (read again after a restart; given up after ``PLAN_WAIT``).

        A part found in the journal may have been sent: it goes again only in its journaled batch (same
        transaction id). A part not found there was never sent and may join any new batch."""
        queue: list[_Part] = []
        for part in self._pending.get(room_id, []):
            if part.tx_id not in self._sent:
                queue.append(part)
            elif not part.done.done():  # delivered meanwhile (the same event handled twice)
                part.done.set_result(None)
        now = time.monotonic()
        fresh: list[_Part] = []
        for part in queue:
            plan = self._plan_of.get(part.tx_id)
            if plan is None or now - part.queued > PLAN_WAIT:
                fresh.append(part)
                continue
            members = self._plans[plan]
            found = {p.tx_id: p for p in queue if p.tx_id in members}
            if len(found) == len(members):
                self._pending[room_id] = [p for p in queue if p.tx_id not in found]
                return [found[t] for t in members], plan
        if not fresh:
            return None
        batch: list[_Part] = []
        chars = 0
        for part in fresh[:BATCH_MAX]:
            chars += part.chars
            if batch and chars > BATCH_CHARS:
                break
            batch.append(part)
        chosen = {p.tx_id for p in batch}
        self._pending[room_id] = [p for p in queue if p.tx_id not in chosen]
        # Journaled even alone: read again after a restart, a part sent alone must go alone again.
        txn = batch[0].tx_id if len(batch) == 1 else batch_tx_id(batch)
        self._journal(txn, [p.tx_id for p in batch])
        return batch, txn

    def _journal(self, txn: str, parts: list[str]) -> None:
        """Record a batch before sending it (one line appended, synced)."""
        self._plans.pop(txn, None)  # the most recent last (pruned oldest first)
        self._plans[txn] = parts
        for part in parts:
            self._plan_of[part] = txn
        while len(self._plans) > PLANS_KEPT:
            for part in self._plans.pop(next(iter(self._plans))):
                self._plan_of.pop(part, None)
        fd = os.open(self._batches_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"tx": txn, "parts": parts}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _load_plans(self) -> None:
        """The journaled batches (the most recent ``PLANS_KEPT``), the journal rewritten compact."""
        try:
            lines = self._batches_file.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                self._plans[str(entry["tx"])] = [str(p) for p in entry["parts"]]
        while len(self._plans) > PLANS_KEPT:
            self._plans.pop(next(iter(self._plans)))
        self._plan_of = {part: txn for txn, parts in self._plans.items() for part in parts}
        write_private(
            self._batches_file,
            "".join(json.dumps({"tx": t, "parts": p}) + "\n" for t, p in self._plans.items()),
        )

    def _remember(self, tx_id: str) -> None:
        self._sent[tx_id] = None
        if len(self._sent) > SENT_MEMORY:
            del self._sent[next(iter(self._sent))]

    async def _share_key(self, room_id: str) -> None:
        """Share (or rotate) the room key once, before concurrent sends encrypt with it: two sends racing
        to share it make nio fail one of them."""
        room = self.client.rooms.get(room_id)
        if room is None or not room.encrypted or self.client.olm is None:
            return
        async with self._share_locks.setdefault(room_id, asyncio.Lock()):
            if self.client.olm.should_share_group_session(room_id):
                await self.client.share_group_session(room_id, ignore_unverified_devices=True)

    async def pin(self, room_id: str, event_id: str, *, keep: int = 20) -> None:
        """Pin ``event_id`` first, keeping the most recent pins (each member reads the header posted
        after their own join: history is visible from one's join only)."""
        current = await self.client.room_get_state_event(room_id, "m.room.pinned_events")
        pinned: list[str] = []
        if isinstance(current, RoomGetStateEventResponse):
            pinned = [p for p in current.content.get("pinned", []) if isinstance(p, str) and p != event_id]
        await self.put_state(room_id, "m.room.pinned_events", {"pinned": [event_id, *pinned][:keep]})

    async def put_state(self, room_id: str, event_type: str, content: dict[str, Any]) -> None:
        resp = await self.client.room_put_state(room_id, event_type, content)
        if not isinstance(resp, RoomPutStateResponse):
            raise MatrixFailure(f"state {event_type} in {room_id} failed: {resp}")

    async def create_patient_room(self, *, name: str, topic: str) -> str:
        """An encrypted, invite-only, unpublished room whose history only joined members read.

        Only the bot (its creator) may invite, kick, or change the name, topic, pins or rules: the
        members follow the care circle, and nobody can put an identity in the (unencrypted) state.
        """
        resp = await self.client.room_create(
            visibility=RoomVisibility.private,
            name=name,
            topic=topic,
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                },
                {
                    "type": "m.room.history_visibility",
                    "state_key": "",
                    "content": {"history_visibility": "joined"},
                },
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
                {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
            ],
            # No "users": the creator (the bot) gets 100, or in room version 12 more than anyone (its
            # creator must not be listed there).
            power_level_override={
                "users_default": 0,
                "invite": 50,
                "kick": 50,
                "ban": 50,
                "redact": 50,
                "state_default": 100,
                "events_default": 0,
                "events": {
                    "m.room.name": 100,
                    "m.room.topic": 100,
                    "m.room.avatar": 100,
                    "m.room.pinned_events": 100,
                    "m.room.power_levels": 100,
                    "m.room.history_visibility": 100,
                    "m.room.join_rules": 100,
                    "m.room.encryption": 100,
                },
            },
        )
        if not isinstance(resp, RoomCreateResponse):
            raise MatrixFailure(f"room creation failed: {resp}")
        return str(resp.room_id)

    async def invite(self, room_id: str, user_id: str) -> bool:
        resp = await self.client.room_invite(room_id, user_id)
        if isinstance(resp, RoomInviteResponse):
            return True
        logger.warning(
            "invite of %s into %s refused: %s", user_id, room_id, getattr(resp, "status_code", resp)
        )
        return False

    async def kick(self, room_id: str, user_id: str, reason: str) -> bool:
        resp = await self.client.room_kick(room_id, user_id, reason=reason)
        if isinstance(resp, RoomKickResponse):
            return True
        logger.warning("kick of %s from %s refused: %s", user_id, room_id, getattr(resp, "status_code", resp))
        return False

    async def direct_room(self, user_id: str) -> str:
        """The bot's encrypted direct room with ``user_id`` (created once, remembered in ``dms.json``)."""
        async with self._dm_lock:
            room_id = self._dms.get(user_id)
            if room_id is not None and room_id in self.client.rooms:
                return room_id
            resp = await self.client.room_create(
                visibility=RoomVisibility.private,
                is_direct=True,
                invite=[user_id],
                name="Robot de coordination",
                initial_state=[
                    {
                        "type": "m.room.encryption",
                        "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                    }
                ],
            )
            if not isinstance(resp, RoomCreateResponse):
                raise MatrixFailure(f"direct room with {user_id} failed: {resp}")
            self._dms[user_id] = resp.room_id
            write_private(self._dms_file, json.dumps(self._dms))
            room_id = str(resp.room_id)
        await self.wait_room(room_id, member=user_id)
        return room_id


class _Part:
    """One notification waiting for a batched send."""

    __slots__ = ("chars", "content", "done", "queued", "tx_id")

    def __init__(self, content: dict[str, Any], tx_id: str, done: asyncio.Future[None]) -> None:
        self.content = content
        self.chars = len(str(content.get("body", ""))) + len(str(content.get("formatted_body", "")))
        self.tx_id = tx_id
        self.done = done
        self.queued = time.monotonic()


def batch_tx_id(parts: list[_Part]) -> str:
    """The transaction id of a combined message: derived from its parts' (sorted) ids, so the same
    batch sent again is deduplicated by Synapse."""
    digest = hashlib.sha256("\n".join(sorted(p.tx_id for p in parts)).encode()).hexdigest()[:32]
    return f"batch-{len(parts)}-{digest}"


def combine(contents: list[dict[str, Any]]) -> dict[str, Any]:
    """Several ``m.text`` notifications as one: a line each, every mention kept."""
    mentions: set[str] = set()
    for content in contents:
        mentions.update(content.get("m.mentions", {}).get("user_ids", []))
    return {
        "msgtype": "m.text",
        "body": "\n".join(str(c.get("body", "")) for c in contents),
        "format": "org.matrix.custom.html",
        "formatted_body": "<br>".join(
            str(c.get("formatted_body") or html.escape(str(c.get("body", "")))) for c in contents
        ),
        "m.mentions": {"user_ids": sorted(mentions)},
    }


def _read_map(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def read_map(path: Path) -> dict[str, str]:
    """A small JSON map of the bot's state dir (empty when absent or unreadable)."""
    return _read_map(path)
