"""Issue 9 end to end: real Synapse (with our module), the real service, the real bot and real E2EE
clients (matrix-nio). Patient rooms created by the bot, members following the care circle within
10 s, the module refusing outsiders, notifications delivered once each across a bot restart."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    JoinError,
    JoinResponse,
    RoomCreateResponse,
    RoomInviteError,
    RoomInviteResponse,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)
from sqlalchemy import func, select, update

from azurezo_cli.home import save_home
from coordination.audit.models import AuditEntry
from coordination.db import make_engine, make_sessionmaker
from coordination.directory.models import Activity
from coordination.outbox.models import ConsumerCursor, OutboxEvent
from coordination_bot.patient_rooms import pseudonym
from synapse_module.rooms import NOT_IN_CIRCLE_INVITE, NOT_IN_CIRCLE_JOIN
from tests.coordination_bot.test_bot_e2ee import Conversation, open_room, start_bot, stop_bot
from tests.support.service import add_structure
from tests.support.stack import Stack, free_port, start_stack

pytestmark = pytest.mark.synapse

PROMISE = 10.0  # seconds: invited / removed within 10 s of the change (issue 9)


@pytest.fixture(scope="module")
def rooms_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("roomsstack"))
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


class Pro:
    """A professional with a bound account, an E2EE client and what the bot sent them."""

    def __init__(self, stack: Stack, client: AsyncClient, national_id: str) -> None:
        self.stack = stack
        self.client = client
        self.national_id = national_id
        self.messages: list[tuple[str, RoomMessageText | RoomMessageNotice]] = []
        client.add_event_callback(self._on_message, (RoomMessageText, RoomMessageNotice))

    async def _on_message(self, room: Any, event: RoomMessageText | RoomMessageNotice) -> None:
        if event.sender == self.stack.bot_user_id:
            self.messages.append((room.room_id, event))

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    @property
    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.stack.service_url,
            headers={"Authorization": f"Bearer {self.client.access_token}"},
            timeout=30.0,
        )

    async def sync(self) -> None:
        await self.client.sync(timeout=300, sync_filter={"room": {"timeline": {"limit": 200}}})

    async def wait_invite(self, within: float, room_id: str | None = None) -> tuple[str, float]:
        """The room it is invited into (``room_id`` or any), and after how many seconds."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            await self.sync()
            invited = [r for r in self.client.invited_rooms if room_id in (None, r)]
            if invited:
                return invited[0], time.monotonic() - started
        raise AssertionError(
            f"{self.user_id} not invited within {within} s\n" + self.stack.log_tail("bot", 60)
        )

    async def join(self, room_id: str) -> None:
        joined = await self.client.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        await self.sync()

    async def wait_message(
        self, needle: str, within: float = 30.0, room_id: str | None = None
    ) -> RoomMessageText | RoomMessageNotice:
        started = time.monotonic()
        while time.monotonic() - started < within:
            for room, event in self.messages:
                if needle in event.body and room_id in (None, room):
                    return event
            await self.sync()
        raise AssertionError(
            f"no message with {needle!r} for {self.user_id}\n" + self.stack.log_tail("bot", 60)
        )

    def count(self, needle: str) -> int:
        return sum(1 for _, e in self.messages if needle in e.body)


@asynccontextmanager
async def professional(stack: Stack, family_name: str) -> AsyncIterator[Pro]:
    person = await stack.add_person(family_name=family_name)
    user_id, password = await stack.create_account(person.national_id)
    async with stack.client(user_id, password) as client:
        await client.sync(timeout=0, full_state=True)
        yield Pro(stack, client, person.national_id)


async def matrix(stack: Stack, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=30.0) as http:
        return await http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


async def membership(stack: Stack, room_id: str, user_id: str, token: str) -> dict[str, Any]:
    resp = await matrix(
        stack, "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}", token
    )
    return dict(resp.json()) if resp.status_code == 200 else {}


async def wait_removed(
    stack: Stack, room_id: str, user_id: str, token: str, within: float
) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    while time.monotonic() - started < within:
        member = await membership(stack, room_id, user_id, token)
        if member.get("membership") == "leave":
            return member, time.monotonic() - started
        await _pause()
    raise AssertionError(f"{user_id} still in {room_id} after {within} s\n" + stack.log_tail("bot", 60))


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.2)


async def new_patient(pro: Pro, birth_name: str) -> str:
    async with pro.api as api:
        created = await api.post(
            "/api/v1/patients",
            json={
                "birth_name": birth_name,
                "birth_first_names": ["Rose"],
                "birth_date": "1938-02-03",
                "sex": "F",
                "birth_place_code": "06088",
            },
        )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def add_to_circle(pro: Pro, patient_id: str, other: Pro) -> str:
    async with pro.api as api:
        added = await api.post(
            f"/api/v1/patients/{patient_id}/circle",
            json={
                "kind": "professional",
                "national_id": other.national_id,
                "role": "infirmier",
                "habilite": True,
            },
        )
    assert added.status_code == 201, added.text
    return str(added.json()["id"])


async def bot_room(owner: Pro, patient_id: str) -> str:
    """Ask the bot for the patient's room, accept its invitation: the room id."""
    async with owner.api as api:
        asked = await api.post(f"/api/v1/patients/{patient_id}/rooms", json={"create": True})
    assert asked.status_code == 202, asked.text
    room_id, _ = await owner.wait_invite(within=45)
    await owner.join(room_id)
    return room_id


async def _pinned_soon(
    stack: Stack, room_id: str, token: str, event_id: str, *, within: float = 15
) -> list[str]:
    """The room's pinned events once ``event_id`` is among them, or as they are after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        resp = await matrix(
            stack, "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.pinned_events", token
        )
        pinned = resp.json().get("pinned", []) if resp.status_code == 200 else []
        if event_id in pinned or time.monotonic() > deadline:
            return list(pinned)
        await asyncio.sleep(0.2)


async def test_a_patient_room_follows_the_circle(rooms_stack: Stack) -> None:
    stack = rooms_stack
    async with (
        professional(stack, "SALONA") as alice,
        professional(stack, "SALONB") as bob,
        professional(stack, "SALONC") as carol,
    ):
        patient_id = await new_patient(alice, "LAMBERT")
        room_id = await bot_room(alice, patient_id)
        token = alice.client.access_token

        # State carries no identity; the room is encrypted, invite-only, unpublished, joined-only history.
        state = {
            (e["type"], e["state_key"]): e["content"]
            for e in (
                await matrix(stack, "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state", token)
            ).json()
        }
        import uuid

        code = pseudonym(uuid.UUID(patient_id))
        assert state[("m.room.name", "")]["name"] == f"Patient {code}"
        assert "LAMBERT" not in str(state).upper() and "1938" not in str(state)
        assert state[("m.room.encryption", "")]["algorithm"] == "m.megolm.v1.aes-sha2"
        assert state[("m.room.join_rules", "")]["join_rule"] == "invite"
        assert state[("m.room.history_visibility", "")]["history_visibility"] == "joined"
        published = await matrix(
            stack, "GET", f"/_matrix/client/v3/directory/list/room/{quote(room_id)}", token
        )
        assert published.json()["visibility"] == "private"

        # The identity header: an encrypted message, pinned.
        header = await alice.wait_message("En-tête du dossier", room_id=room_id)
        assert "LAMBERT Rose" in header.body
        # The bot pins it once sent: a state event of its own, which may come a moment after.
        assert header.event_id in await _pinned_soon(stack, room_id, token, header.event_id)
        raw = await matrix(
            stack, "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(header.event_id)}", token
        )
        assert raw.json()["type"] == "m.room.encrypted"  # the server only ever saw ciphertext

        # Added to the circle: invited within 10 s.
        bob_member = await add_to_circle(alice, patient_id, bob)
        await bob.wait_invite(within=PROMISE, room_id=room_id)
        await bob.join(room_id)
        await bob.wait_message("En-tête du dossier", room_id=room_id)  # posted again for the newcomer

        # A relative is never invited; nor anyone else.
        async with alice.api as api:
            relative = await api.post(
                f"/api/v1/patients/{patient_id}/circle",
                json={"kind": "relative", "name": "Paul Lambert", "relationship": "fils", "role": "aidant"},
            )
        assert relative.status_code == 201, relative.text

        # Delisted from the directory: removed within 10 s (the sweep; no event for an import).
        await add_to_circle(alice, patient_id, carol)
        await carol.wait_invite(within=PROMISE, room_id=room_id)
        await carol.join(room_id)
        await stack.set_active(carol.national_id, False)
        kicked, _ = await wait_removed(stack, room_id, carol.user_id, token, within=PROMISE)
        assert "cercle de soins" in kicked["reason"]

        # Removed from the circle: kicked within 10 s, with a French reason.
        async with alice.api as api:
            removed = await api.delete(f"/api/v1/patients/{patient_id}/circle/{bob_member}")
        assert removed.status_code in (200, 204), removed.text
        kicked, _ = await wait_removed(stack, room_id, bob.user_id, token, within=PROMISE)
        assert "plus membre habilité du cercle de soins" in kicked["reason"]

        members = await matrix(
            stack, "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members", token
        )
        assert set(members.json()["joined"]) == {alice.user_id, stack.bot_user_id}


async def test_the_module_keeps_outsiders_out_of_patient_rooms(rooms_stack: Stack) -> None:
    """Even the room's admin cannot invite an outsider into a room linked to a patient, and an
    outsider cannot join it; an unlinked (theme) room is unchanged."""
    stack = rooms_stack
    async with professional(stack, "ADMINSALON") as alice, professional(stack, "DEHORS") as dave:
        patient_id = await new_patient(alice, "MOREL")
        created = await alice.client.room_create(
            name="Suivi",
            preset=None,
            initial_state=[
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}
            ],
        )
        assert isinstance(created, RoomCreateResponse), created
        async with alice.api as api:
            linked = await api.post(f"/api/v1/patients/{patient_id}/rooms", json={"room_id": created.room_id})
        assert linked.status_code == 201, linked.text

        refused = await alice.client.room_invite(created.room_id, dave.user_id)
        assert isinstance(refused, RoomInviteError), refused
        assert (refused.status_code, refused.message) == ("M_FORBIDDEN", NOT_IN_CIRCLE_INVITE)
        join = await dave.client.join(created.room_id)
        assert isinstance(join, JoinError), join
        assert join.message == NOT_IN_CIRCLE_JOIN

        theme = await alice.client.room_create(name="Vaccination covid")
        assert isinstance(theme, RoomCreateResponse)
        invited = await alice.client.room_invite(theme.room_id, dave.user_id)
        assert isinstance(invited, RoomInviteResponse), invited

        # Added to the circle, dave may now come in.
        await add_to_circle(alice, patient_id, dave)
        joined = await dave.client.join(created.room_id)
        assert isinstance(joined, JoinResponse), joined


async def test_notifications_once_each_across_a_bot_restart(rooms_stack: Stack) -> None:
    stack = rooms_stack
    async with professional(stack, "NOTIFA") as alice, professional(stack, "NOTIFB") as erin:
        patient_id = await new_patient(alice, "NOTIF")
        room_id = await bot_room(alice, patient_id)
        await add_to_circle(alice, patient_id, erin)
        await erin.wait_invite(within=PROMISE, room_id=room_id)
        await erin.join(room_id)
        await alice.wait_message("rejoint le cercle de soins", room_id=room_id)

        async def task(title: str) -> dict[str, Any]:
            async with alice.api as api:
                created = await api.post(
                    "/api/v1/tasks",
                    json={
                        "title": title,
                        "type": "autre",
                        "patient_id": patient_id,
                        "assignee_national_ids": [erin.national_id],
                    },
                )
            assert created.status_code == 201, created.text
            return dict(created.json())

        first = await task("Avant arrêt")
        event = await erin.wait_message("Avant arrêt", room_id=room_id)
        assert event.source["content"]["m.mentions"] == {"user_ids": [erin.user_id]}

        [child] = [c for c in stack.supervisor.children if c.name == "bot"]
        stop_bot(stack, child, signal.SIGKILL)
        await task("Pendant arrêt 1")
        await task("Pendant arrêt 2")
        burst = [f"Rafale {i:02d}" for i in range(12)]
        for title in burst:  # waiting together in the outbox: handled at once, combined into fewer messages
            await task(title)
        start_bot(stack)
        for title in ("Pendant arrêt 1", "Pendant arrêt 2", *burst):
            await erin.wait_message(title, within=60, room_id=room_id)
        burst_messages = {e.event_id for _, e in erin.messages if "Rafale" in e.body}
        assert len(burst_messages) < len(burst), "a burst of notifications to one room is combined"
        # Their labels were read a page at a time (GET /api/v1/tasks?ids=…), still audited per patient:
        # one for the first notification, one for the 14 waiting together at the restart (a few more
        # only if a read failed and was retried), not one per notification.
        reads = await bot_reads(stack, alice.user_id)
        assert 2 <= len(reads) <= 5, reads
        assert all(r == (patient_id, True) for r in reads), reads

        # Task done -> its creator, by direct message.
        async with erin.api as api:
            done = await api.patch(
                f"/api/v1/tasks/{first['id']}", json={"version": first["version"], "status": "terminee"}
            )
        assert done.status_code == 200, done.text
        dm, _ = await alice.wait_invite(within=30)
        await alice.join(dm)
        await alice.wait_message("terminée", within=30, room_id=dm)

        # A crash after sending but before acknowledging: every event is read and handled again.
        # The messages' transaction ids derive from the event ids, so Synapse sends none twice.
        [child] = [c for c in stack.supervisor.children if c.name == "bot"]
        stop_bot(stack, child, signal.SIGKILL)
        await rewind_outbox(stack)
        start_bot(stack)
        await stack_settles(stack)

        for _ in range(5):  # a duplicate would come now
            await erin.sync()
            await alice.sync()
        for title in ("Avant arrêt", "Pendant arrêt 1", "Pendant arrêt 2", *burst):
            assert erin.count(f"pour vous : {title}") == 1, title
        assert alice.count("terminée") == 1
        assert alice.count("rejoint le cercle de soins") == 1
        joined = await matrix(stack, "GET", "/_matrix/client/v3/joined_rooms", alice.client.access_token)
        assert len(joined.json()["joined_rooms"]) == 2  # the patient room and one DM: nothing created twice


async def bot_reads(stack: Stack, user_id: str) -> list[tuple[str, bool]]:
    """The audit trail's task reads on behalf of ``user_id``: (patient id, through the bot) each."""
    engine = make_engine(stack.home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(AuditEntry.patient_id, AuditEntry.via_bot).where(
                    AuditEntry.actor_user_id == user_id, AuditEntry.action == "task.read"
                )
            )
            return [(str(p), bool(v)) for p, v in rows.tuples()]
    finally:
        await engine.dispose()


async def rewind_outbox(stack: Stack) -> None:
    """Put the bot's acknowledged position back to the start, as if it had never acknowledged."""
    engine = make_engine(stack.home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            await session.execute(update(ConsumerCursor).values(last_acked_id=0))
            await session.commit()
    finally:
        await engine.dispose()


async def stack_settles(stack: Stack) -> None:
    """Wait until the bot has acknowledged every event again (its replay is over)."""
    engine = make_engine(stack.home.database_url)
    try:
        for _ in range(300):
            async with make_sessionmaker(engine)() as session:
                last = await session.scalar(select(func.max(OutboxEvent.id)))
                acked = await session.scalar(select(ConsumerCursor.last_acked_id))
            if acked is not None and acked == last:
                return
            await _pause()
        raise AssertionError("the bot did not acknowledge the replayed events\n" + stack.log_tail("bot", 60))
    finally:
        await engine.dispose()


async def add_dac(stack: Stack, structure_id: str, name: str, national_ids: list[str]) -> None:
    """A DAC of the directory and its coordinators' activities there, as an import would write them."""
    engine = make_engine(stack.home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            await add_structure(session, structure_id, name, is_dac=True)
            for national_id in national_ids:
                session.add(
                    Activity(national_id=national_id, structure_id=structure_id, profession_code="10")
                )
            await session.commit()
    finally:
        await engine.dispose()


async def ask(conversation: Conversation, text: str) -> str:
    """A command in a room shared with other people (their devices not verified): the bot's reply."""
    resp = await conversation.client.room_send(
        conversation.room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": text},
        ignore_unverified_devices=True,
    )
    assert isinstance(resp, RoomSendResponse), resp
    for _ in range(100):
        for notice in conversation.notices:
            if (
                notice.source["content"]["m.relates_to"].get("m.in_reply_to", {}).get("event_id")
                == resp.event_id
            ):
                return str(notice.body)
        await conversation.client.sync(timeout=500)
    raise AssertionError(f"no reply to {text!r}\n" + conversation.stack.log_tail("bot", 60))


async def test_a_dac_request_is_announced_in_the_dac_room_set_by_a_coordinator(rooms_stack: Stack) -> None:
    """``!dac salon`` in an encrypted room by a coordinator: the DAC's new requests are announced there
    once, mentioning the coordinators in it; a coordinator not in it still gets a direct message."""
    stack = rooms_stack
    dac = "finess:069999901"
    people = [await stack.add_person(family_name=n) for n in ("COORDA", "COORDB", "COORDC")]
    await add_dac(stack, dac, "DAC des Collines", [p.national_id for p in people])
    async with AsyncExitStack() as exits:
        clients = []
        for person in people:
            user_id, password = await stack.create_account(person.national_id)
            client = await exits.enter_async_context(stack.client(user_id, password))
            await client.sync(timeout=0, full_state=True)
            clients.append(Pro(stack, client, person.national_id))
        ca, cb, cc = clients
        gp = await exits.enter_async_context(professional(stack, "DEMANDEUR"))
        conversation = await open_room(stack, ca.client)
        room_id = conversation.room_id
        invited = await ca.client.room_invite(room_id, cb.user_id)
        assert isinstance(invited, RoomInviteResponse), invited
        await cb.wait_invite(within=30, room_id=room_id)
        await cb.join(room_id)

        reply = await ask(conversation, "!dac salon")
        assert "désormais celui de « DAC des Collines »" in reply, reply
        async with ca.api as api:
            assert (await api.get(f"/api/v1/dacs/{dac}/room")).json()["room_id"] == room_id

        patient_id = await new_patient(gp, "APPUI")
        async with gp.api as api:
            created = await api.post(
                "/api/v1/requests",
                json={"dac_structure_id": dac, "patient_id": patient_id, "reason": "Retour à domicile"},
            )
            assert created.status_code == 201, created.text
            sent = await api.post(
                f"/api/v1/requests/{created.json()['id']}/send",
                json={"version": created.json()["version"]},
            )
            assert sent.status_code == 200, sent.text

        announced = await ca.wait_message("Nouvelle demande adressée au DAC des Collines", room_id=room_id)
        assert "Retour à domicile" in announced.body
        assert sorted(announced.source["content"]["m.mentions"]["user_ids"]) == sorted(
            [ca.user_id, cb.user_id]
        )
        await cb.wait_message("Nouvelle demande adressée", room_id=room_id)
        dm, _ = await cc.wait_invite(within=30)  # not in the DAC's room: a direct message
        await cc.join(dm)
        await cc.wait_message("Nouvelle demande adressée au DAC des Collines", room_id=dm)

        for _ in range(3):  # a direct message to those in the room would come now
            await ca.sync()
            await cb.sync()
        assert ca.count("Nouvelle demande") == 1 and cb.count("Nouvelle demande") == 1
        assert not ca.client.invited_rooms and not cb.client.invited_rooms

        # Back to direct messages.
        reply = await ask(conversation, "!dac salon retirer")
        assert "n'a plus de salon" in reply, reply
