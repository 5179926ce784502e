"""The Locust scenario of ``bench/bench_load.py`` (run by it, headless; not on its own).

Each Locust user is one professional of the state file ``AZUREZO_BENCH_LOAD_STATE`` (accounts,
tokens and rooms prepared by bench_load.py):

- keeps a ``/sync`` long poll open (30 s timeout, as Element does), from its first connection to
  the end of the run;
- sends a message in its room every ``message_interval`` seconds (constant pacing, random phase).
  In an encrypted room the message is an ``m.room.encrypted`` event with a random Megolm-shaped
  ciphertext: no real Olm/Megolm (see bench/README.md: the server stores and fans it out the same
  way; the bot cannot decrypt it);
- across all users, ``commands_per_minute`` ``!taches`` commands (sent by a random connected
  professional of an unencrypted room) whose round trip is the time from the send to the bot's
  reply (``m.in_reply_to`` the command) seen in the sender's own ``/sync``, and
  ``uploads_per_minute`` uploads (a 64 KiB PNG to the media repository, then the message that
  shares it).

Every request is a Locust request (its failures counted); the bot round trip is reported as a
request of type ``BOT`` (a failure when no reply comes within ``REPLY_TIMEOUT`` seconds).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import struct
import time
import urllib.parse
import uuid
import zlib
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, events, task

STATE: dict[str, Any] = json.loads(Path(os.environ["AZUREZO_BENCH_LOAD_STATE"]).read_text())
ACCOUNTS: list[dict[str, Any]] = STATE["accounts"]
BOT: str = STATE["bot"]
MESSAGE_INTERVAL = float(STATE["message_interval"])
COMMANDS_PER_MINUTE = float(STATE["commands_per_minute"])
UPLOADS_PER_MINUTE = float(STATE["uploads_per_minute"])
COMMAND = "!taches"
# The bot's answer in a room not linked to a patient: it asked the service about the room first.
EXPECTED_REPLY = "Ce salon est lié à aucun dossier patient"
REPLY_TIMEOUT = 60.0
SYNC_TIMEOUT_MS = 30000
SYNC_FILTER = urllib.parse.quote(
    json.dumps({"room": {"timeline": {"limit": 20}, "state": {"lazy_load_members": True}}})
)
_next_account = itertools.count()
CONNECTED: list[Professional] = []


def _png(size: int = 128) -> bytes:
    """A valid ``size`` x ``size`` RGB PNG of random pixels (~48 KiB at 128: nearly incompressible)."""
    raw = b"".join(b"\x00" + os.urandom(size * 3) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


IMAGE = _png()


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode().rstrip("=")


class Professional(FastHttpUser):
    """One simulated professional: a /sync long poll, a message every ``MESSAGE_INTERVAL`` s."""

    concurrency = 4  # the /sync long poll, a message, a command or an upload at once
    network_timeout = 120.0
    connection_timeout = 60.0

    def on_start(self) -> None:
        account = ACCOUNTS[next(_next_account) % len(ACCOUNTS)]
        self.user_id: str = account["user_id"]
        self.room_id: str = account["room_id"]
        self.encrypted: bool = account["encrypted"]
        self.device_id: str = account["device_id"]
        self.auth = {"Authorization": f"Bearer {account['token']}"}
        self.room_path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(self.room_id)}"
        # One Megolm-shaped outbound session per professional (what a real client would reuse).
        self.sender_key = _b64(32)
        self.session_id = _b64(32)
        self.replies: dict[str, tuple[float, str]] = {}
        self.reply_events: dict[str, Event] = {}
        self.synced = Event()
        self.sync_loop = gevent.spawn(self._sync_forever)
        self.synced.wait(timeout=REPLY_TIMEOUT)
        CONNECTED.append(self)
        gevent.sleep(random.uniform(0, MESSAGE_INTERVAL))  # spread the messages over the interval
        self._next_message_at = time.monotonic()  # the first message now, then one every interval

    def wait_time(self) -> float:
        """Constant pacing on this professional's own phase. Not Locust's ``constant_pacing``: it
        counts ``on_start`` (the random sleep above) as the first task's run time, so every
        professional's second message came ``MESSAGE_INTERVAL`` s after their creation, all of them
        within the 50 s of the ramp: bursts of ~20 messages a second, then a minute of quiet (the
        load runs before 30 Nov 11:00 UTC, see bench/README.md)."""
        self._next_message_at += MESSAGE_INTERVAL
        return max(0.0, self._next_message_at - time.monotonic())

    def on_stop(self) -> None:
        if self in CONNECTED:
            CONNECTED.remove(self)
        self.sync_loop.kill(block=False)

    # --- /sync -----------------------------------------------------------------------------
    def _sync_forever(self) -> None:
        since: str | None = None
        while True:
            query = f"filter={SYNC_FILTER}&timeout={SYNC_TIMEOUT_MS if since else 0}"
            if since:
                query += f"&since={urllib.parse.quote(since)}"
            name = "/sync (attente longue, 30 s)" if since else "/sync (initial)"
            with self.client.get(
                f"/_matrix/client/v3/sync?{query}", headers=self.auth, name=name, catch_response=True
            ) as resp:
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                    gevent.sleep(2)
                    continue
                body = resp.json()
                since = body["next_batch"]
            self._read(body)
            self.synced.set()

    def _read(self, body: dict[str, Any]) -> None:
        now = time.monotonic()
        for room in body.get("rooms", {}).get("join", {}).values():
            for event in room.get("timeline", {}).get("events", []):
                if event.get("sender") != BOT:
                    continue
                content = event.get("content", {})
                target = content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                if target:
                    self.replies[target] = (now, str(content.get("body", "")))
                    if target in self.reply_events:
                        self.reply_events[target].set()

    # --- sending ---------------------------------------------------------------------------
    def _send(self, event_type: str, content: dict[str, Any], name: str) -> str | None:
        txn = uuid.uuid4().hex
        with self.client.put(
            f"{self.room_path}/send/{event_type}/{txn}",
            json=content,
            headers=self.auth,
            name=name,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return None
            return str(resp.json()["event_id"])

    def _encrypted(self, size: int) -> dict[str, Any]:
        """An ``m.room.encrypted`` content shaped like Megolm's (random ciphertext, no real keys)."""
        return {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": self.sender_key,
            "device_id": self.device_id,
            "session_id": self.session_id,
            "ciphertext": _b64(size),
        }

    @task
    def message(self) -> None:
        if self.encrypted:
            self._send("m.room.encrypted", self._encrypted(240), "envoi d'un message (m.room.encrypted)")
        else:
            text = "Passage fait ce matin, constantes stables, prochain passage jeudi. " + uuid.uuid4().hex
            self._send("m.room.message", {"msgtype": "m.text", "body": text}, "envoi d'un message (en clair)")

    def command(self) -> None:
        """``!taches``, then the bot's reply in this professional's own /sync: the round trip."""
        started = time.monotonic()
        event_id = self._send(
            "m.room.message", {"msgtype": "m.text", "body": COMMAND}, f"envoi de la commande {COMMAND}"
        )
        if event_id is None:
            return
        arrived = Event()
        self.reply_events[event_id] = arrived
        if event_id not in self.replies:
            arrived.wait(timeout=REPLY_TIMEOUT - (time.monotonic() - started))
        self.reply_events.pop(event_id, None)
        reply = self.replies.pop(event_id, None)
        exception: Exception | None = None
        if reply is None:
            exception = RuntimeError(f"pas de réponse du robot en {REPLY_TIMEOUT:.0f} s")
        elif EXPECTED_REPLY not in reply[1]:
            exception = RuntimeError(f"réponse inattendue du robot : {reply[1][:120]}")
        done = reply[0] if reply else time.monotonic()
        events.request.fire(
            request_type="BOT",
            name=f"{COMMAND} → réponse du robot (aller-retour)",
            response_time=(done - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    def upload(self) -> None:
        """A 48 KiB PNG to the media repository, then the message that shares it in the room."""
        with self.client.post(
            "/_matrix/media/v3/upload?filename=photo-plaie.png",
            data=IMAGE,
            headers={**self.auth, "Content-Type": "image/png"},
            name="téléversement (média, 48 Kio)",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            uri = str(resp.json()["content_uri"])
        if self.encrypted:
            self._send("m.room.encrypted", self._encrypted(600), "envoi d'une image (m.room.encrypted)")
        else:
            content = {
                "msgtype": "m.image",
                "body": "photo-plaie.png",
                "url": uri,
                "info": {"mimetype": "image/png", "size": len(IMAGE), "w": 128, "h": 128},
            }
            self._send("m.room.message", content, "envoi d'une image (en clair)")


def _every(per_minute: float, action: str, clear_rooms_only: bool) -> None:
    """Fire ``action`` on a random connected professional ``per_minute`` times a minute (exactly)."""
    if per_minute <= 0:
        return
    interval = 60.0 / per_minute
    next_at = time.monotonic() + interval
    while True:
        gevent.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        candidates = [p for p in CONNECTED if not (clear_rooms_only and p.encrypted)]
        if candidates:
            gevent.spawn(getattr(random.choice(candidates), action))


_schedulers: list[gevent.Greenlet] = []


@events.test_start.add_listener
def _start_schedulers(**_kwargs: Any) -> None:
    _schedulers.append(gevent.spawn(_every, COMMANDS_PER_MINUTE, "command", True))
    _schedulers.append(gevent.spawn(_every, UPLOADS_PER_MINUTE, "upload", False))


@events.test_stopping.add_listener
def _stop_schedulers(**_kwargs: Any) -> None:
    gevent.killall(_schedulers, block=False)
