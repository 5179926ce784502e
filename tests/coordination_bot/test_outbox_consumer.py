"""The bot's outbox consumer against the real service in-process: dispatch by kind, acknowledge only what
was handled, read again what failed; and the pure parts of patient rooms (pseudonym, reconciliation)."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coordination_bot.outbox import OutboxConsumer, tx_id
from coordination_bot.patient_rooms import plan, pseudonym, room_name
from coordination_bot.service_client import OutboxEvent, ServiceClient
from tests.coordination.patients.support import add_circle_member, create_patient
from tests.support.service import FakeTokens, add_professional

BOT = "@azurezo-bot:azurezo.test"


def _service(client: httpx.AsyncClient, tokens: FakeTokens) -> ServiceClient:
    return ServiceClient(
        base_url="http://service", bot_token=tokens.issue(BOT), internal_secret="t" * 48, client=client
    )


async def test_dispatch_by_kind_then_acknowledge(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    pid = (await create_patient(client, alice))["id"]
    await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="x", habilite=True
    )
    await client.post(f"/api/v1/patients/{pid}/rooms", json={"create": True}, headers=alice.headers)

    seen: list[tuple[str, int]] = []
    consumer = OutboxConsumer(service=_service(client, tokens))

    async def on_member(event: OutboxEvent) -> None:
        seen.append((event.kind, event.id))

    consumer.register("circle.member_added", on_member)
    done, failed = await consumer.poll_once()
    # The room request has no handler here: acknowledged as seen, not left to block the others.
    assert (done, failed) == (2, False)
    assert [k for k, _ in seen] == ["circle.member_added"]
    assert await consumer.poll_once() == (0, False)  # acknowledged: never read again

    await add_circle_member(client, alice, pid, kind="relative", name="Paul", relationship="fils")
    assert await consumer.poll_once() == (1, False)
    assert [k for k, _ in seen] == ["circle.member_added", "circle.member_added"]
    assert consumer.kinds == ["circle.member_added"]


async def test_a_failed_event_is_read_again_and_nothing_after_it_is_acknowledged(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    pid = (await create_patient(client, alice))["id"]
    for i in range(3):
        await add_circle_member(client, alice, pid, kind="relative", name=f"Proche {i}", relationship="fils")

    calls: list[int] = []
    broken = {"on": True}

    async def flaky(event: OutboxEvent) -> None:
        calls.append(event.id)
        if broken["on"] and len(calls) == 2:
            raise RuntimeError("Matrix unreachable")

    consumer = OutboxConsumer(service=_service(client, tokens))
    consumer.register("circle.member_added", flaky)
    done, failed = await consumer.poll_once()
    assert (done, failed) == (1, True)
    first, second = calls
    broken["on"] = False
    done, failed = await consumer.poll_once()
    assert (done, failed) == (2, False)
    # The failed event comes again (same id, so the same Matrix transaction ids), then the rest.
    assert calls == [first, second, second, second + 1]
    assert await consumer.poll_once() == (0, False)


def test_transaction_ids_derive_from_the_event() -> None:
    a = OutboxEvent(id=7, event={"kind": "task.assigned"})
    b = OutboxEvent(id=8, event={"kind": "task.assigned"})
    assert tx_id(a, "!room:x") == tx_id(a, "!room:x")
    assert len({tx_id(a, "!room:x"), tx_id(a, "@u:x"), tx_id(b, "!room:x"), tx_id(a)}) == 4


def test_room_names_hold_a_stable_code_and_no_identity() -> None:
    patient = uuid.UUID("0b1e2f3a-4c5d-4e6f-8a9b-0c1d2e3f4a5b")
    code = pseudonym(patient)
    assert re.fullmatch(r"P-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", code), code
    assert pseudonym(patient) == code and room_name(patient) == f"Patient {code}"
    assert patient.hex[:5].upper() not in code  # not the id itself
    codes = {pseudonym(uuid.uuid4()) for _ in range(20_000)}
    assert len(codes) == 20_000


def test_reconciliation_plan() -> None:
    bot = "@azurezo-bot:x"
    invite, kick = plan({"@a:x", "@b:x"}, {"@a:x", "@c:x", bot}, bot=bot)
    assert (invite, kick) == (["@b:x"], ["@c:x"])
    assert plan(set(), {bot}, bot=bot) == ([], [])  # the bot never removes itself


def test_combined_notifications_keep_every_line_and_mention() -> None:
    from coordination_bot.messenger import combine
    from coordination_bot.notify import message

    one = message("Nouvelle tâche n° 1 pour vous : A.", mentions=["@a:x"])
    two = message("Nouvelle tâche n° 2 pour vous : <B>.", mentions=["@b:x", "@a:x"])
    both = combine([one, two])
    assert both["body"].splitlines() == [one["body"], two["body"]]
    assert "&lt;B&gt;" in both["formatted_body"] and "<B>" not in both["formatted_body"]
    assert both["m.mentions"] == {"user_ids": ["@a:x", "@b:x"]}
