"""The sync loop's guarantees, with a stand-in for the nio client (an edge we do not own):
the token is saved only after the batch is handled, and undecryptable events are kept (on disk,
ciphertext only) and handled once their key arrives — never answered with an error, never dropped."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nio import EncryptionError, MegolmEvent, RoomMessageText

from coordination_bot import runner
from coordination_bot.gateway import Incoming
from coordination_bot.ids import RoomId
from coordination_bot.runner import Bot, BotConfig, _Batch, incoming_from_event
from tests.support.stack import free_port

ROOM = RoomId("!room:azurezo.test")


def megolm(event_id: str = "$enc1") -> MegolmEvent:
    event = MegolmEvent.from_dict(
        {
            "type": "m.room.encrypted",
            "event_id": event_id,
            "sender": "@alice:azurezo.test",
            "origin_server_ts": 1,
            "room_id": ROOM,
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "AwgAEn...",
                "sender_key": "curve",
                "device_id": "ALICE",
                "session_id": "session",
            },
        }
    )
    assert isinstance(event, MegolmEvent)
    event.room_id = ROOM
    return event


def text(event_id: str, body: str) -> RoomMessageText:
    event = RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": event_id,
            "sender": "@alice:azurezo.test",
            "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": body},
        }
    )
    assert isinstance(event, RoomMessageText)
    return event


class FakeNio:
    """Decrypts once ``keys`` holds the event's id (its room key has "arrived")."""

    def __init__(self) -> None:
        self.keys: dict[str, RoomMessageText] = {}
        self.key_requests: list[str] = []
        self.rooms: dict[str, Any] = {}

    def decrypt_event(self, event: MegolmEvent) -> RoomMessageText:
        if event.event_id not in self.keys:
            raise EncryptionError("no session")
        return self.keys[event.event_id]

    async def request_room_key(self, event: MegolmEvent) -> None:
        self.key_requests.append(event.event_id)


class RecordingHandlers:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.handled: list[Incoming] = []
        self.token_seen: list[str | None] = []

    async def handle(self, incoming: Incoming) -> bool:
        self.handled.append(incoming)
        self.token_seen.append(self.bot.dir.load().sync_token)
        return True


def make_bot(tmp_path: Path) -> tuple[Bot, FakeNio, RecordingHandlers]:
    config = BotConfig(
        homeserver="http://127.0.0.1:9",
        user_id="@azurezo-bot:azurezo.test",
        password="x" * 24,
        service_url="http://127.0.0.1:9",
        internal_secret="s" * 48,
        state_dir=tmp_path / "bot",
    )
    bot = Bot(config)
    bot.dir.prepare()
    bot.state = bot.dir.load()
    fake = FakeNio()
    handlers = RecordingHandlers(bot)
    bot.client = fake  # type: ignore[assignment]
    bot.handlers = handlers  # type: ignore[assignment]
    from coordination_bot.marks import MarkStore

    bot.marks = MarkStore(None)
    return bot, fake, handlers


async def test_token_saved_only_after_the_batch_is_handled(tmp_path: Path) -> None:
    bot, _, handlers = make_bot(tmp_path)
    bot.state = bot.dir.save_sync_token(bot.state, "s1")
    bot._batch = _Batch([(ROOM, text("$a", "!aide")), (ROOM, text("$b", "bonjour"))], [])
    await bot.process("s2", first=False)
    assert [i.event_id for i in handlers.handled] == ["$a"]  # "bonjour" is not a command
    assert handlers.token_seen == ["s1"]  # while handling, the old token is still the saved one
    assert bot.dir.load().sync_token == "s2"


async def test_a_failing_batch_keeps_the_old_token(tmp_path: Path) -> None:
    bot, _, handlers = make_bot(tmp_path)
    bot.state = bot.dir.save_sync_token(bot.state, "s1")

    class Killed(BaseException):
        """The process dies mid-batch (not an error a handler would catch)."""

    async def boom(incoming: Incoming) -> bool:
        raise Killed

    handlers.handle = boom  # type: ignore[method-assign]
    bot._batch = _Batch([(ROOM, text("$a", "!aide"))], [])
    with pytest.raises(Killed):
        await bot.process("s2", first=False)
    assert bot.dir.load().sync_token == "s1"  # the batch will be replayed at restart


async def test_first_sync_skips_history(tmp_path: Path) -> None:
    bot, _, handlers = make_bot(tmp_path)
    bot._batch = _Batch([(ROOM, text("$old", "!aide"))], [])
    await bot.process("s1", first=True)
    assert handlers.handled == [] and bot.dir.load().sync_token == "s1"


async def test_undecryptable_event_is_kept_across_a_restart_and_handled_when_its_key_arrives(
    tmp_path: Path,
) -> None:
    bot, fake, handlers = make_bot(tmp_path)
    bot._batch = _Batch([], [(ROOM, megolm("$enc1"))])
    await bot.process("s1", first=False)
    await asyncio.gather(*bot._background)  # key requests go in the background
    assert handlers.handled == [] and fake.key_requests == ["$enc1"]
    saved = json.loads((tmp_path / "bot" / "pending.json").read_text())
    assert [e["event_id"] for e in saved] == ["$enc1"] and "body" not in json.dumps(saved)

    # Restart: a new process reads the kept event back; the key arrives with a later sync.
    bot2, fake2, handlers2 = make_bot(tmp_path)
    bot2.load_pending()
    bot2._batch = _Batch([], [])
    await bot2.process("s2", first=False)
    assert handlers2.handled == []
    fake2.keys["$enc1"] = text("$enc1", "!taches")
    await bot2.process("s3", first=False)
    assert [(i.event_id, i.text) for i in handlers2.handled] == [("$enc1", "!taches")]
    assert json.loads((tmp_path / "bot" / "pending.json").read_text()) == []


async def test_undecryptable_events_kept_are_bounded_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "MAX_PENDING", 3)
    bot, fake, _ = make_bot(tmp_path)
    bot._batch = _Batch([], [(ROOM, megolm(f"$enc{i}")) for i in range(5)])
    await bot.process("s1", first=False)
    await asyncio.gather(*bot._background)
    assert list(bot._pending) == ["$enc2", "$enc3", "$enc4"]  # retried after each sync: bounded
    assert fake.key_requests == ["$enc2", "$enc3", "$enc4"]
    saved = json.loads((tmp_path / "bot" / "pending.json").read_text())
    assert [e["event_id"] for e in saved] == ["$enc2", "$enc3", "$enc4"]


async def test_commands_do_not_wait_behind_key_requests(tmp_path: Path) -> None:
    """Key requests are HTTP calls (one per new Megolm session): a slow server or hundreds of late
    keys must not hold up the commands of the next syncs."""
    bot, fake, handlers = make_bot(tmp_path)
    answered = asyncio.Event()

    async def slow_request(event: MegolmEvent) -> None:
        fake.key_requests.append(event.event_id)
        await answered.wait()

    fake.request_room_key = slow_request  # type: ignore[method-assign]
    bot._batch = _Batch([], [(ROOM, megolm("$enc1")), (ROOM, megolm("$enc2"))])
    await asyncio.wait_for(bot.process("s1", first=False), 5)
    bot._batch = _Batch([(ROOM, text("$cmd", "!aide"))], [])
    await asyncio.wait_for(bot.process("s2", first=False), 5)
    assert [i.event_id for i in handlers.handled] == ["$cmd"]
    assert fake.key_requests == ["$enc1"]  # one at a time, in the background
    answered.set()
    await asyncio.gather(*bot._background)
    assert fake.key_requests == ["$enc1", "$enc2"] and bot.dir.load().sync_token == "s2"


def test_structured_command_and_notices() -> None:
    structured = RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": "$s",
            "sender": "@alice:azurezo.test",
            "origin_server_ts": 1,
            "content": {
                "msgtype": "m.text",
                "body": "/tache Bilan",
                "org.matrix.msc4332.command": {"syntax": "tache {titre}", "arguments": {"titre": "Bilan"}},
                "m.mentions": {"user_ids": ["@azurezo-bot:azurezo.test"]},
            },
        }
    )
    assert isinstance(structured, RoomMessageText)
    incoming = incoming_from_event(ROOM, structured)
    assert incoming is not None and incoming.text == "!tache Bilan"
    notice = RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "event_id": "$n",
            "sender": "@other-bot:azurezo.test",
            "origin_server_ts": 1,
            "content": {"msgtype": "m.notice", "body": "!aide"},
        }
    )
    assert isinstance(notice, RoomMessageText)
    assert incoming_from_event(ROOM, notice) is None


async def test_a_device_whose_store_is_gone_is_not_reused(tmp_path: Path) -> None:
    bot, _, _ = make_bot(tmp_path)
    seeds = bot.state.cross_signing
    bot.dir.save(replace(bot.state, device_id="OLD", access_token="tok", sync_token="s9"))
    bot.state = bot.dir.load()
    (bot.dir.store_dir / "azurezo-bot_OLD.db").write_bytes(b"store")
    await bot._forget_device_without_store()
    assert bot.state.device_id == "OLD"  # store present: reused

    (bot.dir.store_dir / "azurezo-bot_OLD.db").unlink()
    await bot._forget_device_without_store()
    again = bot.dir.load()
    assert (again.device_id, again.access_token, again.sync_token) == (None, None, None)
    assert again.cross_signing == seeds  # the new device will be signed by the same keys


async def test_a_limited_sync_timeline_is_completed_from_messages(tmp_path: Path) -> None:
    """Synapse sends only the last events of a busy room ("limited"); the skipped ones are fetched
    with /messages back to the previous token and handled first, in order."""
    from nio import RoomMessagesResponse, SyncResponse

    bot, fake, handlers = make_bot(tmp_path)
    pages = {
        "prev": RoomMessagesResponse(ROOM, [text("$3", "!taches"), text("$2", "bonjour")], "prev", "p2"),
        "p2": RoomMessagesResponse(ROOM, [text("$1", "!aide")], "p2", "p3"),
        "p3": RoomMessagesResponse(ROOM, [], "p3", None),
    }
    calls: list[tuple[str, str | None]] = []

    async def room_messages(room_id: str, start: str, end: str | None = None, **kw: Any) -> Any:
        calls.append((start, end))
        return pages[start]

    fake.room_messages = room_messages  # type: ignore[attr-defined]
    resp = SyncResponse.from_dict(
        {
            "next_batch": "s2",
            "rooms": {
                "join": {
                    ROOM: {
                        "timeline": {"events": [], "limited": True, "prev_batch": "prev"},
                        "state": {"events": []},
                    }
                }
            },
        }
    )
    assert isinstance(resp, SyncResponse)
    bot._batch = _Batch([(ROOM, text("$4", "!demandes"))], [])
    await bot.fill_gaps(resp, since="s1")
    await bot.process("s2", first=False)
    assert calls == [("prev", "s1"), ("p2", "s1"), ("p3", "s1")]
    assert [i.event_id for i in handlers.handled] == ["$1", "$3", "$4"]


async def test_a_stop_ends_the_bot_while_the_homeserver_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM is all a bot gets when ``azurezo up`` itself is killed: it must end even while nio
    retries a homeserver that accepts connections and never answers (it used to run on for ever)."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
    port = silent.sockets[0].getsockname()[1]
    monkeypatch.setattr(runner, "STOP_GRACE_SECONDS", 0.5)
    config = BotConfig(
        homeserver=f"http://127.0.0.1:{port}",
        user_id="@azurezo-bot:azurezo.test",
        password="x" * 24,
        service_url=f"http://127.0.0.1:{port}",
        internal_secret="s" * 48,
        state_dir=tmp_path / "bot",
        health_port=free_port(),
    )
    stop = asyncio.Event()
    running = asyncio.ensure_future(runner.run_bot(config, stop))
    try:
        await asyncio.sleep(1.0)  # the bot is waiting on its login
        assert not running.done()
        stop.set()
        await asyncio.wait_for(running, timeout=20)
    finally:
        running.cancel()
        silent.close()
