"""The bot against real Synapse + the real service, with real E2EE clients (matrix-nio).

The professional's client behaves like Element in "only cross-signed devices" mode: before sharing
its room key it checks through ``/keys/query`` that the bot's device carries a self-signing signature
chained to the bot's master key, and shares nothing with any other device.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from nio import (
    AsyncClient,
    DownloadResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomMessageNotice,
    RoomSendResponse,
)
from nio.crypto.attachments import decrypt_attachment

from azurezo_cli.bot import health_url
from azurezo_cli.home import save_home
from azurezo_cli.supervisor import Child, ChildSpec
from coordination_bot.crosssigning import device_is_cross_signed
from tests.support.stack import Stack, free_port, start_stack

pytestmark = pytest.mark.synapse


def start_bot(stack: Stack) -> Child:
    child = stack.supervisor.start(
        ChildSpec(
            name="bot",
            argv=[sys.executable, "-m", "azurezo_cli", "--home", str(stack.home.path), "bot", "run"],
            log_path=stack.home.logs_dir / "bot.log",
            ready_url=health_url(stack.home),
        )
    )
    stack.supervisor.wait_ready(child, timeout=90)
    return child


def stop_bot(stack: Stack, child: Child, sig: signal.Signals = signal.SIGTERM) -> None:
    child.process.send_signal(sig)
    child.process.wait(timeout=30)
    stack.supervisor.children.remove(child)
    child.log_file.close()


@pytest.fixture(scope="module")
def bot_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("botstack"))
    try:
        stack.home = replace(stack.home, bot_port=free_port())
        save_home(stack.home)
        start_bot(stack)
        yield stack
    except BaseException:
        sys.stderr.write(stack.diagnostics() + "\n" + stack.log_tail("bot", 80))
        raise
    finally:
        stack.stop()


async def bot_devices(stack: Stack, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{stack.synapse_url}/_matrix/client/v3/keys/query",
            headers={"Authorization": f"Bearer {token}"},
            json={"device_keys": {stack.bot_user_id: []}},
        )
    resp.raise_for_status()
    result: dict[str, Any] = resp.json()
    return result


async def trust_only_cross_signed(stack: Stack, client: AsyncClient) -> list[str]:
    """The strict client's rule: verify the bot's cross-signed devices, blacklist the others.
    Returns the trusted device ids."""
    query = await bot_devices(stack, client.access_token)
    if client.should_query_keys:
        await client.keys_query()
    trusted = []
    for device_id, device in client.device_store[stack.bot_user_id].items():
        if device_is_cross_signed(query, stack.bot_user_id, device_id):
            client.verify_device(device)
            trusted.append(device_id)
        else:
            client.blacklist_device(device)
    return trusted


class Conversation:
    """A professional's encrypted room with the bot."""

    def __init__(self, stack: Stack, client: AsyncClient, room_id: str) -> None:
        self.stack = stack
        self.client = client
        self.room_id = room_id
        self.notices: list[RoomMessageNotice] = []
        self.undecryptable: list[MegolmEvent] = []
        self.files: list[RoomEncryptedFile] = []
        client.add_event_callback(self._on_notice, RoomMessageNotice)
        client.add_event_callback(self._on_file, RoomEncryptedFile)
        client.add_event_callback(self._on_megolm, MegolmEvent)

    async def _on_notice(self, room: Any, event: RoomMessageNotice) -> None:
        # Replies only: the bot's own room notices (e.g. that it cannot enforce the file rules in a room
        # where it may not redact, coordination_bot/files.py) answer no command.
        if event.sender == self.stack.bot_user_id and "m.relates_to" in event.source["content"]:
            self.notices.append(event)

    async def _on_file(self, room: Any, event: RoomEncryptedFile) -> None:
        if event.sender == self.stack.bot_user_id:
            self.files.append(event)

    async def _on_megolm(self, room: Any, event: MegolmEvent) -> None:
        self.undecryptable.append(event)

    async def ask(self, text: str, wait: float = 30.0) -> tuple[str, float]:
        """Send a command; the bot's decrypted reply and the round trip in seconds."""
        await trust_only_cross_signed(self.stack, self.client)
        started = time.monotonic()
        resp = await self.client.room_send(
            self.room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=False,
        )
        assert isinstance(resp, RoomSendResponse), resp
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for notice in self.notices:
                relates = notice.source["content"].get("m.relates_to", {})
                if relates.get("m.in_reply_to", {}).get("event_id") == resp.event_id:
                    return notice.body, time.monotonic() - started
            await self.client.sync(timeout=1000)
        raise AssertionError(
            f"no reply to {text!r} (undecryptable: {len(self.undecryptable)})\n"
            + self.stack.log_tail("bot", 60)
        )


async def open_room(stack: Stack, client: AsyncClient, room_version: str | None = "11") -> Conversation:
    # Room version 11: the service does not accept room v12 IDs yet (coordination_bot/SERVICE_NEEDS.md).
    resp = await client.room_create(
        name="Coordination test",
        room_version=room_version,
        invite=[stack.bot_user_id],
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    assert isinstance(resp, RoomCreateResponse), resp
    conversation = Conversation(stack, client, resp.room_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await client.sync(timeout=500)
        room = client.rooms.get(resp.room_id)
        if room is not None and stack.bot_user_id in room.users:
            return conversation
    raise AssertionError("the bot did not join\n" + stack.log_tail("bot", 60))


async def test_strict_client_and_bot_exchange_encrypted_commands_across_restarts(bot_stack: Stack) -> None:
    stack = bot_stack
    national_id = stack.people[0].national_id  # MARTIN Jeanne, active
    user_id, password = await stack.create_account(national_id)
    async with stack.client(user_id, password) as alice:
        await alice.sync(timeout=0, full_state=True)
        conversation = await open_room(stack, alice)
        trusted = await trust_only_cross_signed(stack, alice)
        assert len(trusted) == 1, "the bot's device must be cross-signed for a strict client"
        [device_before] = trusted

        reply, _ = await conversation.ask("!aide")
        assert "Commandes du robot de coordination" in reply
        assert not conversation.undecryptable

        # A patient created by Alice through the service, then linked and used from the room.
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{stack.service_url}/api/v1/patients",
                headers={"Authorization": f"Bearer {alice.access_token}"},
                json={
                    "birth_name": "LAMBERT",
                    "birth_first_names": ["Rose"],
                    "birth_date": "1938-02-03",
                    "sex": "F",
                    "birth_place_code": "06088",
                },
            )
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        reply, _ = await conversation.ask(f"!patient lier {patient_id}")
        assert "lié au dossier de LAMBERT Rose" in reply
        reply, _ = await conversation.ask("!tache Appeler la pharmacie pour le 02/01")
        assert reply.startswith("Tâche n° ")
        reply, _ = await conversation.ask("!taches")
        assert "Appeler la pharmacie" in reply

        # The synthesis comes with its PDF, encrypted in this encrypted room.
        reply, _ = await conversation.ask("!synthese")
        assert "Patient : LAMBERT Rose" in reply and "Appeler la pharmacie" in reply
        for _ in range(20):
            if conversation.files:
                break
            await alice.sync(timeout=500)
        [pdf_event] = conversation.files
        assert pdf_event.body == "synthese.pdf"
        download = await alice.download(pdf_event.url)
        assert isinstance(download, DownloadResponse)
        assert not download.body.startswith(b"%PDF")  # stored encrypted on the server
        pdf = decrypt_attachment(download.body, pdf_event.key["k"], pdf_event.hashes["sha256"], pdf_event.iv)
        assert pdf.startswith(b"%PDF") and b"LAMBERT Rose" in pdf

        # Restart: same device, same keys, still cross-signed, still reads the room.
        [child] = [c for c in stack.supervisor.children if c.name == "bot"]
        stop_bot(stack, child)
        log = (stack.home.logs_dir / "bot.log").read_text()
        assert "logout" not in log.lower()
        start_bot(stack)
        trusted = await trust_only_cross_signed(stack, alice)
        assert trusted == [device_before]
        reply, _ = await conversation.ask("!taches")
        assert "Appeler la pharmacie" in reply

        state_file = stack.home.bot_dir / "state.json"
        assert state_file.stat().st_mode & 0o777 == 0o600


async def test_bare_device_would_get_no_key(bot_stack: Stack) -> None:
    """The strict rule really discriminates: a plain nio device of the same user is not trusted."""
    async with stack_client(bot_stack) as (stranger_device, viewer):
        query = await bot_devices(bot_stack, viewer.access_token)
        devices = query["device_keys"][bot_stack.bot_user_id]
        assert stranger_device in devices and len(devices) == 2
        trusted = [d for d in devices if device_is_cross_signed(query, bot_stack.bot_user_id, d)]
        assert len(trusted) == 1 and stranger_device not in trusted


class stack_client:
    """A second, bare (not cross-signed) device of the bot's account, and a professional's client."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def __aenter__(self) -> tuple[str, AsyncClient]:
        self._bare = self.stack.client(self.stack.bot_user_id, self.stack.bot_password)
        bare = await self._bare.__aenter__()
        self._bare_client = bare
        user_id, password = await self.stack.create_account(self.stack.people[1].national_id)
        self._viewer = self.stack.client(user_id, password)
        viewer = await self._viewer.__aenter__()
        return bare.device_id, viewer

    async def __aexit__(self, *exc: object) -> None:
        await self._viewer.__aexit__(None, None, None)
        # Log the bare device out (deletes it): it must not linger on the bot's account.
        await self._bare_client.logout()
        await self._bare.__aexit__(None, None, None)


async def test_link_a_room_v12(bot_stack: Stack) -> None:
    """Element creates room version 12 rooms, whose IDs have no server part: linking must work."""
    person = await bot_stack.add_person(family_name="VERSIONDOUZE")
    user_id, password = await bot_stack.create_account(person.national_id)
    async with bot_stack.client(user_id, password) as alice:
        await alice.sync(timeout=0, full_state=True)
        conversation = await open_room(bot_stack, alice, room_version="12")
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{bot_stack.service_url}/api/v1/patients",
                headers={"Authorization": f"Bearer {alice.access_token}"},
                json={
                    "birth_name": "ROUX",
                    "birth_first_names": ["Léa"],
                    "birth_date": "1941-04-05",
                    "sex": "F",
                    "birth_place_code": "06088",
                },
            )
        reply, _ = await conversation.ask(f"!patient lier {created.json()['id']}")
        assert "lié au dossier de ROUX Léa" in reply


async def test_a_command_whose_key_arrives_late_is_answered_then(bot_stack: Stack) -> None:
    """The room key reaches the bot after the command (its to-device message is held back, as when it
    is delayed): the bot says nothing meanwhile — no error — and answers once the key arrives."""
    stack = bot_stack
    user_id, password = await stack.create_account(stack.people[2].national_id)
    async with stack.client(user_id, password) as claire:
        await claire.sync(timeout=0, full_state=True)
        conversation = await open_room(stack, claire)
        await trust_only_cross_signed(stack, claire)
        room_id = conversation.room_id
        missing = claire.get_missing_sessions(room_id)
        if missing:
            await claire.keys_claim(missing)
        # Encrypt the room key for the bot's device now, but hold the to-device messages back.
        held = list(
            claire.olm.share_group_session_parallel(room_id, list(claire.rooms[room_id].users), False)
        )
        assert held, "the room key was not encrypted for the bot"
        claire.olm.outbound_group_sessions[room_id].shared = True
        resp = await claire.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "!aide"}, ignore_unverified_devices=False
        )
        assert isinstance(resp, RoomSendResponse), resp
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await claire.sync(timeout=500)
        assert conversation.notices == []  # no error, no reply without the key

        async with httpx.AsyncClient() as http:
            for index, (_, messages) in enumerate(held):
                sent = await http.put(
                    f"{stack.synapse_url}/_matrix/client/v3/sendToDevice/m.room.encrypted/late{index}",
                    headers={"Authorization": f"Bearer {claire.access_token}"},
                    json=messages,  # already {"messages": {user: {device: ...}}}
                )
                assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            replies = [
                n
                for n in conversation.notices
                if n.source["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                == resp.event_id
            ]
            if replies:
                assert "Commandes du robot de coordination" in replies[0].body
                assert len(conversation.notices) == 1
                return
            await claire.sync(timeout=1000)
        raise AssertionError("the late command was not answered\n" + stack.log_tail("bot", 60))


async def test_kill_9_in_a_burst_of_50_tasks(bot_stack: Stack) -> None:
    """Issue 8 « never lost, never twice »: the bot is killed (SIGKILL) in the middle of a burst of 50
    `!tache`, then restarted: every command is answered exactly once and exactly 50 tasks exist (the
    bot sends the command's event id as the service's ``Idempotency-Key``, so a replayed command finds
    its first answer instead of creating a second task)."""
    stack = bot_stack
    person = await stack.add_person(family_name="RAFALE")
    user_id, password = await stack.create_account(person.national_id)
    async with stack.client(user_id, password) as pro:
        await pro.sync(timeout=0, full_state=True)
        conversation = await open_room(stack, pro)
        await trust_only_cross_signed(stack, pro)
        headers = {"Authorization": f"Bearer {pro.access_token}"}
        async with httpx.AsyncClient(base_url=stack.service_url, headers=headers) as http:
            created = await http.post(
                "/api/v1/patients",
                json={
                    "birth_name": "RAFALE",
                    "birth_first_names": ["Test"],
                    "birth_date": "1950-01-01",
                    "sex": "M",
                    "birth_place_code": "06088",
                },
            )
            patient_id = created.json()["id"]
            linked = await http.post(
                f"/api/v1/patients/{patient_id}/rooms", json={"room_id": conversation.room_id}
            )
            assert linked.status_code == 201, linked.text

        sent: list[str] = []
        [child] = [c for c in stack.supervisor.children if c.name == "bot"]
        for i in range(50):
            resp = await pro.room_send(
                conversation.room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": f"!tache Rafale {i:02d}"},
                ignore_unverified_devices=False,
            )
            assert isinstance(resp, RoomSendResponse), resp
            sent.append(resp.event_id)
            if i == 25:
                stop_bot(stack, child, signal.SIGKILL)
        start_bot(stack)

        def answered() -> dict[str, int]:
            counts = dict.fromkeys(sent, 0)
            for notice in conversation.notices:
                target = (
                    notice.source["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                )
                if target in counts:
                    counts[target] += 1
            return counts

        # The whole timeline (no "limited" gap in this client's view of the burst).
        everything = {"room": {"timeline": {"limit": 500}}}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and min(answered().values()) == 0:
            await pro.sync(timeout=1000, sync_filter=everything)
        for _ in range(3):  # late duplicates would come now
            await pro.sync(timeout=1000, sync_filter=everything)
        counts = answered()
        assert sorted(set(counts.values())) == [1], counts  # each command answered, none twice

        async with httpx.AsyncClient(base_url=stack.service_url, headers=headers) as http:
            page = await http.get("/api/v1/tasks", params={"patient_id": patient_id, "limit": 100})
        titles = [t["title"] for t in page.json()["items"]]
        assert set(titles) == {f"Rafale {i:02d}" for i in range(50)}  # none lost
        assert len(titles) == 50, f"{len(titles) - 50} task(s) created twice"  # none twice


async def test_bot_metrics_count_commands_and_round_trips(bot_stack: Stack) -> None:
    """GET /metrics on the bot's loopback port: commands, round trips, undecryptable events."""
    stack = bot_stack
    metrics_url = health_url(stack.home).replace("/health", "/metrics")

    def value(text: str, name: str) -> float:
        lines = [
            line for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")
        ]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    async with httpx.AsyncClient() as http:
        before = (await http.get(metrics_url)).text
    person = await stack.add_person(family_name="METRIQUE")
    user_id, password = await stack.create_account(person.national_id)
    async with stack.client(user_id, password) as paul:
        await paul.sync(timeout=0, full_state=True)
        conversation = await open_room(stack, paul)
        reply, _ = await conversation.ask("!aide")
        assert "Commandes du robot de coordination" in reply
    async with httpx.AsyncClient() as http:
        resp = await http.get(metrics_url)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    after = resp.text
    assert (
        value(after, 'azurezo_bot_commands_total{outcome="ok"}')
        >= value(before, 'azurezo_bot_commands_total{outcome="ok"}') + 1
    )
    assert (
        value(after, "azurezo_bot_round_trip_seconds_count")
        >= value(before, "azurezo_bot_round_trip_seconds_count") + 1
    )
    assert "azurezo_bot_undecryptable_events_total" in after
    assert user_id not in after and conversation.room_id not in after
