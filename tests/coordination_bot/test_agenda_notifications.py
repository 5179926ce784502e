"""Appointment notifications: the real service in-process, the real outbox consumer and notifier; only
Matrix (the homeserver) is replaced by a recorder of what the bot would send."""

from __future__ import annotations

from typing import Any, cast

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coordination_bot.messenger import Messenger
from coordination_bot.notify import Notifier
from coordination_bot.outbox import OutboxConsumer, tx_id
from coordination_bot.patient_rooms import PatientRooms
from coordination_bot.service_client import ServiceClient
from tests.coordination.agenda.support import book, local, make_agenda
from tests.support.service import FakeTokens, add_professional

BOT = "@azurezo-bot:azurezo.test"


class RecordingMatrix:
    """What the notifier sends, by room; a direct room is ``dm:<user>``."""

    user_id = BOT

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def members(self, room_id: str) -> set[str] | None:
        return None

    async def direct_room(self, user_id: str) -> str:
        return f"dm:{user_id}"

    async def send(self, room_id: str, content: dict[str, Any], *, tx_id: str) -> str:
        self.sent.append((room_id, content, tx_id))
        return f"$event{len(self.sent)}"

    async def send_batched(self, room_id: str, content: dict[str, Any], *, tx_id: str) -> str:
        """The messenger's combined send; with nothing in flight it is one message per call."""
        return await self.send(room_id, content, tx_id=tx_id)


async def test_booked_and_cancelled_appointments_are_told_to_the_agenda_owner_and_participants(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    carol = await add_professional(db, tokens, localpart="carol", national_id="810000000003")
    setup = await make_agenda(client, alice, name="Cabinet Alice")
    booked = await book(
        client, bob, setup, local(setup.monday, "09:30"), participant_national_ids=[carol.national_id]
    )
    assert booked.status_code == 201, booked.text

    service = ServiceClient(
        base_url="http://service", bot_token=tokens.issue(BOT), internal_secret="t" * 48, client=client
    )
    matrix = RecordingMatrix()
    consumer = OutboxConsumer(service=service)
    notifier = Notifier(
        service=service,
        messenger=cast(Messenger, matrix),
        rooms=cast(PatientRooms, None),  # appointments never touch patient rooms
    )
    notifier.register(consumer)
    pending = await service.events()
    events = [e for e in pending if e.kind == "appointment.booked"]
    assert len(events) == 1
    assert await consumer.poll_once() == (len(pending), False)
    day = setup.monday.strftime("%d/%m/%Y")
    said = f"Rendez-vous pris : « Consultation » du {day} à 09:30 — agenda Cabinet Alice."
    # The agenda's owner and the participant, each in a direct message.
    assert sorted((room, c["body"]) for room, c, _ in matrix.sent) == sorted(
        [(f"dm:{alice.user_id}", said), (f"dm:{carol.user_id}", said)]
    )
    # Deterministic transaction id: handled again after a crash, Synapse answers with the first message.
    assert {t for _r, _c, t in matrix.sent} == {tx_id(events[0], u) for u in (alice.user_id, carol.user_id)}
    assert bob.user_id not in str(matrix.sent)  # the booker is the author: not told of their own act

    cancel = await client.patch(
        f"/api/v1/appointments/{booked.json()['id']}",
        json={"version": booked.json()["version"], "status": "annule"},
        headers=bob.headers,
    )
    assert cancel.status_code == 200, cancel.text
    done, failed = await consumer.poll_once()
    assert (done, failed) == (1, False)
    told = matrix.sent[2:]
    assert sorted(room for room, _c, _t in told) == sorted([f"dm:{alice.user_id}", f"dm:{carol.user_id}"])
    content = told[0][1]
    assert (
        content["body"] == f"Rendez-vous annulé : « Consultation » du {day} à 09:30 — agenda Cabinet Alice."
    )
    assert content["msgtype"] == "m.text"
