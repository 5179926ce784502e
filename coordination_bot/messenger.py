"""What the outbox handlers do on Matrix (send, create rooms, invite, kick, pin), over matrix-nio.

Every message carries a transaction id the caller derives from what it announces (an outbox event,
a join): sent again after a crash, Synapse answers with the first event instead of a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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
        return str(resp.event_id)

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


def _read_map(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def read_map(path: Path) -> dict[str, str]:
    """A small JSON map of the bot's state dir (empty when absent or unreadable)."""
    return _read_map(path)
