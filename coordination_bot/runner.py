"""The bot process: matrix-nio client, cross-signing, the sync loop, the health endpoint.

Sync loop (issue 8 "Never lost, never twice"): matrix-nio saves its sync token *before* running event
callbacks, so the bot keeps its own token (``state.json``) and nio's token store is off. Callbacks only
collect a batch; the batch is handled (commands answered) and only then is the token saved. A bot
killed mid-batch replays the batch at restart: the service deduplicates writes by the command's event
id (``Idempotency-Key``) and the reply reuses a transaction id derived from it, so Synapse answers with
the first reply instead of sending a second one.

Undecryptable events (``MegolmEvent``: the room key has not arrived yet) are kept (ciphertext only,
``pending.json``) and retried after every sync, so a command whose key comes late is answered when it
arrives — never answered with an error; only beyond the ``MAX_PENDING`` most recent are the oldest
dropped (a device that never shares its keys must not grow the retries for ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from nio import (
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    EncryptionError,
    Event,
    InviteMemberEvent,
    JoinError,
    LocalProtocolError,
    LoginResponse,
    MegolmEvent,
    MessageDirection,
    ReactionEvent,
    RedactionEvent,
    RoomEncryptedMedia,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomMemberEvent,
    RoomMessageMedia,
    RoomMessagesResponse,
    RoomMessageText,
    RoomMessageUnknown,
    RoomRedactResponse,
    RoomSendResponse,
    StickerEvent,
    SyncError,
    SyncResponse,
    UploadResponse,
)
from nio.rooms import MatrixRoom

import filetyping
from coordination_bot import commands, metrics
from coordination_bot.crosssigning import ensure_cross_signed
from coordination_bot.files import DOWNLOAD_TIMEOUT_S, FileGuard, Journal, attachment_of
from coordination_bot.gateway import (
    Attachment,
    Incoming,
    QuotedMessage,
    Reply,
    file_content,
    notice_content,
)
from coordination_bot.handlers import Handlers
from coordination_bot.ids import EventId, RoomId, UserId
from coordination_bot.marks import MarkStore
from coordination_bot.messenger import Messenger
from coordination_bot.notify import Notifier
from coordination_bot.outbox import POLL_SECONDS, OutboxConsumer
from coordination_bot.patient_rooms import SWEEP_SECONDS, PatientRooms
from coordination_bot.service_client import ServiceClient
from coordination_bot.state import BotState, StateDir

logger = logging.getLogger(__name__)

DEVICE_NAME = "Robot de coordination AZUREZO"
SYNC_TIMEOUT_MS = 30_000
# Room events per sync; beyond it Synapse sends a "limited" timeline and the bot fetches the gap.
# Nothing the bot never reads: presence, typing and read receipts, account data. In 200 rooms shared
# with a thousand professionals, each of those woke the bot's long poll and made the /sync worker
# build a sync of every room again for nothing (issue 12); Synapse skips them entirely when a filter
# excludes every type. Timeline, state, to-device messages and device lists (E2EE) are kept.
SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 100},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
GAP_PAGES = 50  # at most 50 x 100 events fetched per room and sync (a bot down for a long time)
MAX_PENDING = 1000  # undecryptable events kept; the oldest go first beyond that


@dataclass(frozen=True)
class BotConfig:
    homeserver: str
    user_id: str
    password: str
    service_url: str
    internal_secret: str
    state_dir: Path
    health_host: str = "127.0.0.1"
    health_port: int = 8090
    # The module's limit (synapse_module ``max_upload_bytes``): encrypted attachments get the same.
    max_upload_bytes: int = filetyping.DEFAULT_MAX_UPLOAD_BYTES
    outbox_poll_seconds: float = POLL_SECONDS
    sweep_seconds: float = SWEEP_SECONDS


class BotError(Exception):
    """The bot cannot start; the message is French and says what to do."""


class NioGateway:
    """The real Matrix side of the handlers (``coordination_bot.gateway.Gateway``)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._keys_lock = asyncio.Lock()

    async def fresh_device_lists(self) -> None:
        await self._fresh_device_lists()

    @property
    def keys_lock(self) -> asyncio.Lock:
        """Shared with the outbox messenger: one device-list query at a time."""
        return self._keys_lock

    async def _fresh_device_lists(self) -> None:
        """Query outdated device lists before encrypting: a member's new device gets the room key."""
        async with self._keys_lock:
            if self._client.should_query_keys:
                with contextlib.suppress(LocalProtocolError):
                    await self._client.keys_query()

    async def reply(self, incoming: Incoming, reply: Reply) -> EventId:
        # A transaction id derived from the command: replaying a command after a crash makes Synapse
        # return the first reply rather than send a second one (same device and token).
        tx_id = "reply-" + hashlib.sha256(f"{incoming.room_id}{incoming.event_id}".encode()).hexdigest()[:32]
        await self._fresh_device_lists()
        resp = await self._client.room_send(
            incoming.room_id,
            "m.room.message",
            notice_content(incoming, reply),
            tx_id=tx_id,
            ignore_unverified_devices=True,
        )
        if not isinstance(resp, RoomSendResponse):
            raise RuntimeError(f"reply to {incoming.event_id} in {incoming.room_id} failed: {resp}")
        if reply.attachment is not None:
            await self._send_file(incoming, reply.attachment, tx_id + "-file")
        return EventId(resp.event_id)

    async def _send_file(self, incoming: Incoming, attachment: Attachment, tx_id: str) -> None:
        room = self._client.rooms.get(incoming.room_id)
        encrypt = bool(room is not None and room.encrypted)
        upload, keys = await self._client.upload(
            io.BytesIO(attachment.data),
            content_type=attachment.mimetype,
            filename=attachment.filename,
            encrypt=encrypt,
            filesize=len(attachment.data),
        )
        if not isinstance(upload, UploadResponse):
            raise RuntimeError(f"upload for {incoming.event_id} failed: {upload}")
        media: dict[str, Any] = (
            {"file": {**(keys or {}), "url": upload.content_uri}} if encrypt else {"url": upload.content_uri}
        )
        resp = await self._client.room_send(
            incoming.room_id,
            "m.room.message",
            file_content(incoming, attachment, media),
            tx_id=tx_id,
            ignore_unverified_devices=True,
        )
        if not isinstance(resp, RoomSendResponse):
            raise RuntimeError(f"attachment for {incoming.event_id} failed: {resp}")

    async def fetch_message(self, room_id: RoomId, event_id: EventId) -> QuotedMessage | None:
        resp = await self._client.room_get_event(room_id, event_id)
        if not isinstance(resp, RoomGetEventResponse):
            return None
        event: Event = resp.event
        if isinstance(event, MegolmEvent):
            event.room_id = room_id
            try:
                event = self._client.decrypt_event(event)
            except EncryptionError:
                return None
        if not isinstance(event, RoomMessageText):
            return None
        text = commands.message_text(event.body)
        return QuotedMessage(EventId(event.event_id), UserId(event.sender), text[:300])


class NioFileSide:
    """The Matrix side of ``files.FileGuard``: media downloads (streamed), redactions, notices."""

    def __init__(self, client: AsyncClient, gateway: NioGateway, http: httpx.AsyncClient) -> None:
        self._client = client
        self._gateway = gateway
        self._http = http
        self.user_id = client.user_id

    def download(self, server: str, media_id: str) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        # Authenticated media (Synapse 1.163 serves no unauthenticated download).
        return self._http.stream(
            "GET",
            f"{self._client.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}",
            params={"allow_redirect": "false"},
            headers={"Authorization": f"Bearer {self._client.access_token}"},
        )

    async def redact(self, room_id: str, event_id: str, reason: str, tx_id: str) -> bool:
        resp = await self._client.room_redact(room_id, event_id, reason=reason, tx_id=tx_id)
        return isinstance(resp, RoomRedactResponse)

    async def notice(self, room_id: str, content: dict[str, Any], tx_id: str) -> None:
        await self._gateway.fresh_device_lists()
        resp = await self._client.room_send(
            room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
        )
        if not isinstance(resp, RoomSendResponse):
            logger.warning("file notice in %s not sent: %s", room_id, getattr(resp, "status_code", resp))

    async def power_levels(self, room_id: str) -> dict[str, Any] | None:
        """The room's power levels when it is end-to-end encrypted (elsewhere the module checks
        media), else None."""
        encryption = await self._client.room_get_state_event(room_id, "m.room.encryption")
        if not isinstance(encryption, RoomGetStateEventResponse):
            return None
        levels = await self._client.room_get_state_event(room_id, "m.room.power_levels")
        return dict(levels.content) if isinstance(levels, RoomGetStateEventResponse) else None


@dataclass
class _Batch:
    messages: list[tuple[RoomId, Event]]
    encrypted: list[tuple[RoomId, MegolmEvent]]


class Bot:
    """One bot process. ``run`` until ``stop`` is set; ``ready`` is set after the first handled sync."""

    def __init__(self, config: BotConfig) -> None:
        self.config = config
        self.dir = StateDir(config.state_dir)
        self.ready = asyncio.Event()
        self.state = BotState()
        self.client: AsyncClient | None = None
        self.handlers: Handlers | None = None
        self._batch = _Batch([], [])
        self._pending: dict[str, tuple[RoomId, MegolmEvent]] = {}
        self._http = httpx.AsyncClient(timeout=30.0)
        self.marks: MarkStore | None = None
        self.service: ServiceClient | None = None
        self.files: FileGuard | None = None
        self._joined: set[RoomId] = set()  # rooms joined whose power to redact is not checked yet
        self._media_http = httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S)
        self.outbox: OutboxConsumer | None = None
        self.rooms: PatientRooms | None = None
        self._live = False  # after the first sync: member events are new, not history
        self._background: set[asyncio.Task[None]] = set()
        self._key_request_queue: deque[tuple[RoomId, MegolmEvent]] = deque()
        self._key_requester: asyncio.Task[None] | None = None

    # --- start --------------------------------------------------------------------------------
    async def start(self) -> AsyncClient:
        """Log in (or restore the saved device), upload device keys, make the device cross-signed."""
        self.dir.prepare()
        self.state = self.dir.load()
        await self._forget_device_without_store()
        cfg = self.config
        client = AsyncClient(
            cfg.homeserver,
            cfg.user_id,
            device_id=self.state.device_id or "",
            store_path=str(self.dir.store_dir),
            config=AsyncClientConfig(
                encryption_enabled=True,
                store_sync_tokens=False,  # the bot saves its own token, after handling a batch
                pickle_key=self.state.pickle_key,
                # max_limit_exceeded / max_timeouts left unset: nio retries a 429 or a timeout
                # (honouring retry_after_ms) instead of dropping a reply.
            ),
        )
        self.client = client
        if (
            self.state.device_id
            and self.state.access_token
            and await self._token_valid(self.state.access_token)
        ):
            client.restore_login(cfg.user_id, self.state.device_id, self.state.access_token)
            logger.info("restored device %s", self.state.device_id)
        else:
            # First start, or a token revoked: log in, reusing the device id (and so its keys) if any.
            resp = await client.login(cfg.password, device_name=DEVICE_NAME)
            if not isinstance(resp, LoginResponse):
                raise BotError(
                    f"Le robot {cfg.user_id} ne peut pas se connecter à Synapse ({resp}) : vérifiez que son "
                    "compte existe (`azurezo up` le crée) et que bot_password d'azurezo.json est le sien."
                )
            if self.state.device_id and resp.device_id != self.state.device_id:
                raise BotError(f"Synapse a attribué un autre appareil ({resp.device_id}) au robot.")
            self.state = replace(self.state, device_id=resp.device_id, access_token=resp.access_token)
            self.dir.save(self.state)
            logger.info("logged in as device %s", resp.device_id)
        if client.should_upload_keys:
            await client.keys_upload()
        assert self.state.access_token and self.state.device_id
        done = await ensure_cross_signed(
            client=self._http,
            homeserver=cfg.homeserver,
            access_token=self.state.access_token,
            user_id=cfg.user_id,
            device_id=self.state.device_id,
            password=cfg.password,
            keys=self.state.cross_signing,
        )
        logger.info("cross-signing of device %s: %s", self.state.device_id, done)
        self.service = ServiceClient(
            base_url=cfg.service_url, bot_token=self.state.access_token, internal_secret=cfg.internal_secret
        )
        self.marks = MarkStore(self.dir.marks_file)
        gateway = NioGateway(client)
        self.handlers = Handlers(service=self.service, gateway=gateway, marks=self.marks)
        self.files = FileGuard(
            NioFileSide(client, gateway, self._media_http),
            Journal(self.dir.path / "files_pending.json"),
            max_bytes=cfg.max_upload_bytes,
        )
        self._wire_outbox(client, gateway)
        self.load_pending()
        client.add_event_callback(
            self._collect, (RoomMessageText, MegolmEvent, ReactionEvent, RedactionEvent)
        )
        # Attachments, whatever nio parsed them as (a url-only or malformed one is a BadEvent).
        client.add_event_callback(
            self._collect,
            (RoomMessageMedia, RoomEncryptedMedia, StickerEvent, RoomMessageUnknown, BadEvent),
        )
        client.add_event_callback(self._on_invite, InviteMemberEvent)
        client.add_event_callback(self._on_member, RoomMemberEvent)
        return client

    def _wire_outbox(self, client: AsyncClient, gateway: NioGateway) -> None:
        """The outbox consumer and its handlers: patient rooms, notifications (issue 9)."""
        assert self.service is not None
        messenger = Messenger(client, dms_file=self.dir.dms_file, keys_lock=gateway.keys_lock)
        self.rooms = PatientRooms(
            service=self.service,
            messenger=messenger,
            created_file=self.dir.rooms_file,
            sweep_seconds=self.config.sweep_seconds,
        )
        self.outbox = OutboxConsumer(service=self.service, poll_seconds=self.config.outbox_poll_seconds)
        self.rooms.register(self.outbox)
        Notifier(service=self.service, messenger=messenger, rooms=self.rooms).register(self.outbox)

    async def _on_member(self, room: MatrixRoom, event: RoomMemberEvent) -> None:
        """A member joined (not a profile change): a patient room shows them its identity header."""
        if not self._live or self.rooms is None or event.membership != "join":
            return
        if event.prev_membership == "join" or event.state_key == self.config.user_id:
            return
        task = asyncio.ensure_future(
            self.rooms.on_member_joined(room.room_id, event.state_key, event.event_id)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_background(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """The outbox consumer and the rooms sweep, alongside the sync loop (after the first sync:
        nio knows the rooms then)."""
        assert self.outbox is not None and self.rooms is not None
        return [
            asyncio.ensure_future(self.outbox.run(stop)),
            asyncio.ensure_future(self.rooms.run_sweeps(stop)),
        ]

    def load_pending(self) -> None:
        """Undecryptable events kept by an earlier run: retried with the next batch."""
        for source in self.dir.load_pending():
            event = MegolmEvent.from_dict(source)
            if isinstance(event, MegolmEvent):
                event.room_id = str(source.get("room_id", ""))
                self._pending[event.event_id] = (RoomId(event.room_id), event)

    async def _forget_device_without_store(self) -> None:
        """A saved device whose crypto store is gone cannot be reused (its one-time keys are on the
        server, its Olm account is lost): start a new device; the cross-signing seeds are kept, so
        the new device is cross-signed like the old one."""
        if not (self.state.device_id and not any(self.dir.store_dir.iterdir())):
            return
        logger.warning(
            "device %s has no crypto store any more: a new device is created (remove the old one "
            "from the bot's account sessions)",
            self.state.device_id,
        )
        self.state = replace(self.state, device_id=None, access_token=None, sync_token=None)
        self.dir.save(self.state)

    async def _token_valid(self, token: str) -> bool:
        resp = await self._http.get(
            f"{self.config.homeserver}/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {token}"},
        )
        if resp.status_code == 200:
            return True
        if resp.status_code == 401:
            return False
        raise BotError(f"Synapse ne répond pas correctement ({resp.status_code}) : réessayez plus tard.")

    # --- callbacks (collect only) ---------------------------------------------------------------
    async def _collect(self, room: MatrixRoom, event: Event) -> None:
        if event.sender == self.config.user_id:
            return
        if isinstance(event, MegolmEvent):
            event.room_id = room.room_id
            self._batch.encrypted.append((RoomId(room.room_id), event))
        else:
            self._batch.messages.append((RoomId(room.room_id), event))

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.config.user_id or event.membership != "invite":
            return
        assert self.client is not None
        resp = await self.client.join(room.room_id)
        if isinstance(resp, JoinError):
            logger.warning("could not join %s: %s", room.room_id, resp.status_code)
            return
        logger.info("joined %s (invited by %s)", room.room_id, event.sender)
        await self._advertise(RoomId(room.room_id))
        # Its power is checked once the room's state and members have come with a sync (``process``).
        self._joined.add(RoomId(room.room_id))

    async def _advertise(self, room_id: RoomId) -> None:
        assert self.client is not None
        resp = await self.client.room_put_state(
            room_id, commands.COMMANDS_STATE_TYPE, commands.advertisement(), state_key=self.config.user_id
        )
        if not hasattr(resp, "event_id"):
            # Needs a power level the room may not give the bot: text commands still work.
            logger.info("commands not advertised in %s (%s)", room_id, getattr(resp, "status_code", "?"))

    # --- the loop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        client = await self.start()
        first = self.state.sync_token is None
        backoff = 1.0
        background: list[asyncio.Task[None]] = []
        try:
            while not stop.is_set():
                sync = asyncio.ensure_future(
                    client.sync(
                        timeout=0 if first else SYNC_TIMEOUT_MS,
                        sync_filter=SYNC_FILTER,
                        since=self.state.sync_token,
                        # nio keeps no room state across restarts: the first sync of a run brings the
                        # full state, so the bot knows every room's members (to encrypt for them and
                        # to keep patient rooms in step) before the outbox consumer starts.
                        full_state=not self._live,
                    )
                )
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({sync, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not sync.done():
                    sync.cancel()
                    break
                resp = sync.result()
                if isinstance(resp, SyncError) or not isinstance(resp, SyncResponse):
                    logger.warning("sync failed: %s", getattr(resp, "status_code", resp))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 1.0
                await self._keys_housekeeping(client)
                if not first:
                    await self.fill_gaps(resp, since=self.state.sync_token)
                await self.process(resp.next_batch, first=first)
                if not self.ready.is_set():
                    await self.resume_file_checks()  # once, when the rooms and their keys are loaded
                first = False
                self._live = True
                if not background:
                    background = self._start_background(stop)
                self.ready.set()
        finally:
            for task in [*background, *self._background]:
                task.cancel()
            await asyncio.gather(*background, *self._background, return_exceptions=True)
            await self.close()

    async def resume_file_checks(self) -> None:
        """Attachments whose check a previous run did not finish: fetched again and checked."""
        if self.files is None or self.client is None:
            return
        for room_id, event_id in self.files.pending():
            try:
                resp = await self.client.room_get_event(room_id, event_id)
            except Exception:  # Synapse unreachable: kept for the next start
                logger.exception("attachment %s in %s could not be fetched again", event_id, room_id)
                continue
            event: Any = resp.event if isinstance(resp, RoomGetEventResponse) else None
            if isinstance(event, MegolmEvent):
                event.room_id = room_id
                try:
                    event = self.client.decrypt_event(event)
                except EncryptionError:
                    event = None
            ref = attachment_of(event.source.get("type"), event.source.get("content")) if event else None
            if ref is None:
                logger.warning("attachment %s in %s cannot be checked again: dropped", event_id, room_id)
                self.files.forget(event_id)
                continue
            self.files.submit(room_id, event_id, UserId(event.sender), ref)

    async def fill_gaps(self, resp: SyncResponse, *, since: str | None) -> None:
        """A "limited" timeline skipped events between ``since`` and this sync (many commands while
        the bot was down, or a burst): fetch them with ``/messages`` so none is lost."""
        if since is None or self.client is None:
            return
        for room_id, info in resp.rooms.join.items():
            if not info.timeline.limited or not info.timeline.prev_batch:
                continue
            gap = await self._gap_events(room_id, info.timeline.prev_batch, since)
            logger.info("room %s: %d events fetched from a sync gap", room_id, len(gap))
            messages: list[tuple[RoomId, Event]] = []
            encrypted: list[tuple[RoomId, MegolmEvent]] = []
            for event in gap:
                if event.sender == self.config.user_id:
                    continue
                if isinstance(event, MegolmEvent):
                    event.room_id = room_id
                    encrypted.append((RoomId(room_id), event))
                else:
                    messages.append((RoomId(room_id), event))
            self._batch.messages[:0] = messages
            self._batch.encrypted[:0] = encrypted

    async def _gap_events(self, room_id: str, prev_batch: str, since: str) -> list[Event]:
        assert self.client is not None
        events: list[Event] = []
        token = prev_batch
        for _ in range(GAP_PAGES):
            page = await self.client.room_messages(
                room_id, start=token, end=since, direction=MessageDirection.back, limit=100
            )
            if not isinstance(page, RoomMessagesResponse):
                logger.warning("room %s: the sync gap could not be fetched (%s)", room_id, page)
                break
            events.extend(page.chunk)
            if not page.chunk or not page.end or page.end == token:
                break
            token = page.end
        events.reverse()  # oldest first, as in a timeline
        return events

    async def process(self, next_batch: str, *, first: bool) -> None:
        """Handle what the callbacks collected from one sync, then (only then) save its token."""
        batch, self._batch = self._batch, _Batch([], [])
        if first:
            # A brand-new device: history from before it existed is not for it to answer.
            logger.info("first sync: %d old events skipped", len(batch.messages))
            if self.client is not None:
                for room_id in list(self.client.rooms):
                    await self._advertise(RoomId(room_id))
        else:
            await self.handle_batch(batch)
        await self._check_joined_rooms()
        self.state = self.dir.save_sync_token(self.state, next_batch)

    async def _check_joined_rooms(self) -> None:
        """Tell a newly joined encrypted room when the bot cannot redact there (file rules)."""
        if self.files is None or self.client is None:
            return
        for room_id in [r for r in self._joined if r in self.client.rooms]:
            self._joined.discard(room_id)
            try:
                await self.files.check_power(room_id)
            except Exception:  # a courtesy notice: never fatal to the loop
                logger.exception("power of the bot in %s could not be checked", room_id)

    async def _keys_housekeeping(self, client: AsyncClient) -> None:
        """What ``sync_forever`` does between syncs: to-device messages and Olm key management."""
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def handle_batch(self, batch: _Batch) -> None:
        """Handle a sync's events: rooms concurrently, each room's events in order."""
        for room_id, event in batch.encrypted:
            self._pending[event.event_id] = (room_id, event)
            metrics.UNDECRYPTABLE.inc()
        # Bounded like pending.json: events whose key never comes (a device that never shares it)
        # must not be kept and retried after every sync for ever; the oldest go first.
        for event_id in list(self._pending)[: max(0, len(self._pending) - MAX_PENDING)]:
            del self._pending[event_id]
        per_room: dict[RoomId, list[Event]] = defaultdict(list)
        for room_id, event in self._retry_pending():
            per_room[room_id].append(event)
        for room_id, event in batch.messages:
            per_room[room_id].append(event)
        await asyncio.gather(*(self._handle_room(room_id, events) for room_id, events in per_room.items()))
        self._queue_key_requests(batch.encrypted)
        metrics.UNDECRYPTABLE_PENDING.set(len(self._pending))
        self._save_pending()

    def _queue_key_requests(self, events: list[tuple[RoomId, MegolmEvent]]) -> None:
        """Ask for the room keys in the background, one request at a time: each new Megolm session is
        an HTTP request (hundreds when many senders' keys are late at once), and the next syncs'
        commands must not wait behind them."""
        self._key_request_queue.extend(events)
        if self._key_requester is None or self._key_requester.done():
            self._key_requester = asyncio.ensure_future(self._request_keys())
            self._background.add(self._key_requester)
            self._key_requester.add_done_callback(self._background.discard)

    async def _request_keys(self) -> None:
        while self._key_request_queue:
            room_id, event = self._key_request_queue.popleft()
            if event.event_id not in self._pending or self.client is None:
                continue  # decrypted meanwhile, or dropped beyond MAX_PENDING
            with contextlib.suppress(Exception):  # a key request is a courtesy: never fatal
                await self.client.request_room_key(event)
            logger.info("event %s in %s waits for its room key", event.event_id, room_id)

    def _retry_pending(self) -> list[tuple[RoomId, Event]]:
        assert self.client is not None
        decrypted: list[tuple[RoomId, Event]] = []
        for event_id, (room_id, event) in list(self._pending.items()):
            try:
                clear = self.client.decrypt_event(event)
            except EncryptionError:
                continue
            del self._pending[event_id]
            logger.info("event %s in %s decrypted after its key arrived", event_id, room_id)
            decrypted.append((room_id, clear))
        return decrypted

    def _save_pending(self) -> None:
        kept = list(self._pending.values())[-MAX_PENDING:]
        self.dir.save_pending([{**event.source, "room_id": room_id} for room_id, event in kept])

    async def _handle_room(self, room_id: RoomId, events: list[Event]) -> None:
        for event in events:
            try:
                await self._handle_event(room_id, event)
            except Exception:
                # One failing command must not stop the others nor the loop; its id is in the log.
                logger.exception("event %s in %s could not be handled", event.event_id, room_id)

    async def _handle_event(self, room_id: RoomId, event: Event) -> None:
        assert self.handlers is not None and self.marks is not None
        if isinstance(event, ReactionEvent):
            self.marks.add(
                room_id=room_id,
                reaction=EventId(event.event_id),
                target=EventId(event.reacts_to),
                key=event.key,
                sender=UserId(event.sender),
            )
            return
        if isinstance(event, RedactionEvent):
            self.marks.remove(reaction=EventId(event.redacts))
            return
        attachment = attachment_of(event.source.get("type"), event.source.get("content"))
        if attachment is not None and self.files is not None:
            # Checked in the background: a large file never holds up the room's commands.
            self.files.submit(
                room_id,
                EventId(event.event_id),
                UserId(event.sender),
                attachment,
                sent_ms=getattr(event, "server_timestamp", None),
            )
            return
        if not isinstance(event, RoomMessageText):
            return
        incoming = incoming_from_event(room_id, event)
        if incoming is None:
            return
        if not incoming.text.startswith("!"):
            await self.handlers.handle(incoming)
            return
        try:
            await self.handlers.handle(incoming)
        except Exception:
            metrics.COMMANDS.labels("failed").inc()
            raise
        metrics.COMMANDS.labels("ok").inc()
        metrics.ROUND_TRIP.observe(max(time.time() - event.server_timestamp / 1000, 0.0))

    async def close(self) -> None:
        # Never logout(): it would delete the device and its keys (FIELD-NOTES "Bot E2EE").
        if self.client is not None:
            await self.client.close()
        if self.service is not None:
            await self.service.aclose()
        if self.marks is not None:
            self.marks.close()
        if self.files is not None:
            await self.files.cancel()  # unfinished checks stay journaled: done again at the next start
        await self._media_http.aclose()
        await self._http.aclose()


def incoming_from_event(room_id: RoomId, event: RoomMessageText) -> Incoming | None:
    """The command a text message holds (structured MSC4332 form first), or None."""
    content: dict[str, Any] = event.source.get("content", {})
    if content.get("msgtype") == "m.notice":
        return None  # notices are bots' output, never commands
    text = commands.structured_text(content) or commands.message_text(event.body, event.formatted_body)
    if not text.startswith(commands.SIGIL):
        return None
    mentioned = content.get("m.mentions", {}).get("user_ids", [])
    relates = content.get("m.relates_to") or {}
    thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
    return Incoming(
        room_id=room_id,
        event_id=EventId(event.event_id),
        sender=UserId(event.sender),
        text=text,
        mentions=tuple(UserId(u) for u in mentioned if isinstance(u, str)),
        thread_root=EventId(thread_root) if thread_root else None,
    )


# --- health endpoint ------------------------------------------------------------------------------
async def serve_health(bot: Bot, host: str, port: int) -> asyncio.Server:
    """``GET /health`` on loopback: 200 once the first sync is handled, else 503 (the supervisor waits)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            if request.startswith(b"GET /metrics "):
                payload = metrics.render()
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Type: {metrics.CONTENT_TYPE_LATEST}\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                return
            ready = bot.ready.is_set()
            body = json.dumps(
                {
                    "status": "ok" if ready else "starting",
                    "user_id": bot.config.user_id,
                    "device_id": bot.state.device_id,
                }
            ).encode()
            status = "200 OK" if ready else "503 Service Unavailable"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)


FIRST = asyncio.FIRST_COMPLETED
# Once asked to stop, the bot ends the step it is in (a sync's page, its acknowledgements) within this
# time; past it the step is cancelled. nio retries a homeserver that does not answer for ever (login,
# keys, room calls outside the sync loop): without this bound a SIGTERM, the only signal a bot gets
# when ``azurezo up`` itself is killed, left it running with nobody to stop it.
STOP_GRACE_SECONDS = 10.0


async def _stop_within(task: asyncio.Future[None], grace: float) -> None:
    """Wait up to ``grace`` seconds for ``task``, then cancel it (what it journaled is redone at start)."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        logger.warning("the bot did not stop within %.0f s: its current step is cancelled", grace)
        task.cancel()
        await asyncio.wait({task}, timeout=grace)


async def run_bot(
    config: BotConfig, stop: asyncio.Event, on_ready: Callable[[Bot], Awaitable[None]] | None = None
) -> None:
    """Run the bot and its health endpoint until ``stop`` is set."""
    bot = Bot(config)
    server = await serve_health(bot, config.health_host, config.health_port)
    try:
        task = asyncio.ensure_future(bot.run(stop))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            if on_ready is not None:
                ready = asyncio.ensure_future(bot.ready.wait())
                await asyncio.wait({task, ready, stopper}, return_when=FIRST)
                if ready.done():
                    await on_ready(bot)
                else:
                    ready.cancel()
            await asyncio.wait({task, stopper}, return_when=FIRST)
        finally:
            stopper.cancel()
        if not task.done():
            await _stop_within(task, STOP_GRACE_SECONDS)
        if task.done() and not task.cancelled():
            task.result()  # the bot's own error, if it ended on one
    finally:
        server.close()
        await server.wait_closed()
