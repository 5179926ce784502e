"""The care circle through the real app: members, the access rule, the last-authorised rule, events."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from coordination.circle import access as circle_access
from coordination.circle import service as circle
from coordination.circle.models import CircleMember
from coordination.circle.schemas import ProfessionalMemberIn
from coordination.errors import Forbidden, NotFound
from coordination.ids import UserId
from coordination.outbox.models import OutboxEvent
from coordination.security import actor_for_user
from tests.coordination.patients.support import add_circle_member, audit_actions, create_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

SITE = "finess:060000001"


@pytest.fixture
async def alice(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(db, tokens, localpart="alice", national_id="810000000001")


@pytest.fixture
async def bob(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(
        db, tokens, localpart="bob", national_id="810000000002", family_name="BERNARD", given_name="Bob"
    )


@pytest.fixture
async def nurse(db: AsyncSession, tokens: FakeTokens) -> Pro:
    await add_structure(db, SITE, "Cabinet infirmier du Port")
    return await add_professional(
        db, tokens, localpart="nurse", national_id="810000000003", structure_ids=(SITE,)
    )


async def _events(session: AsyncSession, kind: str) -> list[OutboxEvent]:
    rows = list(
        await session.scalars(select(OutboxEvent).where(OutboxEvent.kind == kind).order_by(OutboxEvent.id))
    )
    await session.commit()  # end the read (keeps the loaded rows): the next call sees newer writes
    return rows


async def test_adding_a_professional_gives_access_and_emits_an_event(
    client: httpx.AsyncClient, alice: Pro, bob: Pro, db: AsyncSession
) -> None:
    pid = (await create_patient(client, alice))["id"]
    assert (await client.get(f"/api/v1/patients/{pid}", headers=bob.headers)).status_code == 403

    added = await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="infirmier", habilite=True
    )
    assert added["display_name"] == "Bob BERNARD"
    assert (added["has_access"], added["user_id"]) == (True, bob.user_id)
    assert (await client.get(f"/api/v1/patients/{pid}", headers=bob.headers)).status_code == 200

    [event] = await _events(db, "circle.member_added")
    assert event.recipients == sorted([alice.user_id, bob.user_id])
    assert event.payload["national_id"] == bob.national_id
    assert event.payload["patient_id"] == pid
    # Identifiers only: no patient name anywhere in the event.
    assert "DUPONT" not in str(event.payload).upper()
    assert ("circle.member_added", alice.national_id) in await audit_actions(db, pid)


async def test_a_non_habilite_professional_has_no_access(
    client: httpx.AsyncClient, alice: Pro, bob: Pro
) -> None:
    pid = (await create_patient(client, alice))["id"]
    added = await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="pharmacien"
    )
    assert (added["habilite"], added["has_access"]) == (False, False)
    assert (await client.get(f"/api/v1/patients/{pid}", headers=bob.headers)).status_code == 403


async def test_directory_checks_on_members(
    client: httpx.AsyncClient, alice: Pro, db: AsyncSession, tokens: FakeTokens
) -> None:
    pid = (await create_patient(client, alice))["id"]
    await add_professional(db, tokens, localpart="gone", national_id="810000000009", active=False)
    cases = [
        ({"kind": "professional", "national_id": "810099999999", "role": "x"}, "national_id", "annuaire"),
        ({"kind": "professional", "national_id": "810000000009", "role": "x"}, "national_id", "plus actif"),
        ({"kind": "structure", "structure_id": "finess:999999999", "role": "x"}, "structure_id", "annuaire"),
        (
            {"kind": "relative", "name": "Paul", "relationship": "fils", "habilite": True},
            "habilite",
            "proche",
        ),
        ({"kind": "robot", "role": "x"}, "corps", "« kind » doit valoir"),
        ({"kind": "professional", "national_id": "81 0000'; --", "role": "x"}, "national_id", ""),
    ]
    before = len(await _events(db, "circle.member_added"))
    for body, field, words in cases:
        resp = await client.post(f"/api/v1/patients/{pid}/circle", json=body, headers=alice.headers)
        assert resp.status_code == 422, (body, resp.text)
        assert any(f["field"].split(".")[-1] == field for f in resp.json()["fields"]), resp.json()
        assert words in resp.json()["error"]
    # Failed additions leave no member and no event.
    assert len(await _events(db, "circle.member_added")) == before
    circle_now = await client.get(f"/api/v1/patients/{pid}/circle", headers=alice.headers)
    assert len(circle_now.json()["items"]) == 1

    twice = await client.post(
        f"/api/v1/patients/{pid}/circle",
        json={"kind": "professional", "national_id": alice.national_id, "role": "x"},
        headers=alice.headers,
    )
    assert twice.status_code == 409


async def test_a_relative_is_never_authorised(
    client: httpx.AsyncClient, alice: Pro, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    pid = (await create_patient(client, alice))["id"]
    relative = await add_circle_member(
        client,
        alice,
        pid,
        kind="relative",
        name="Paul Dupont",
        relationship="fils",
        phone="06 12 34 56 78",
        email="paul@example.org",
    )
    assert (relative["habilite"], relative["has_access"], relative["role"]) == (False, False, "aidant")
    upgrade = await client.patch(
        f"/api/v1/patients/{pid}/circle/{relative['id']}", json={"habilite": True}, headers=alice.headers
    )
    assert upgrade.status_code == 422 and upgrade.json()["fields"][0]["field"] == "habilite"
    async with session_maker() as session:
        assert await circle_access.authorised_user_ids(session=session, patient_id=uuid.UUID(pid)) == [
            alice.user_id
        ]


async def test_structure_membership_gives_access_to_its_professionals(
    client: httpx.AsyncClient, alice: Pro, nurse: Pro, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    pid = (await create_patient(client, alice))["id"]
    assert (await client.get(f"/api/v1/patients/{pid}", headers=nurse.headers)).status_code == 403
    member = await add_circle_member(
        client, alice, pid, kind="structure", structure_id=SITE, role="infirmier", habilite=True
    )
    assert member["display_name"] == "Cabinet infirmier du Port"
    assert (await client.get(f"/api/v1/patients/{pid}", headers=nurse.headers)).status_code == 200
    async with session_maker() as session:
        users = await circle_access.authorised_user_ids(session=session, patient_id=uuid.UUID(pid))
    assert users == sorted([alice.user_id, nurse.user_id])

    card = await client.get(f"/api/v1/patients/{pid}/circle/{member['id']}", headers=nurse.headers)
    assert card.status_code == 200
    assert card.json()["structure"]["name"] == "Cabinet infirmier du Port"
    assert card.json()["person"] is None


async def test_member_card_shows_directory_details(client: httpx.AsyncClient, alice: Pro, nurse: Pro) -> None:
    pid = (await create_patient(client, alice))["id"]
    member = await add_circle_member(
        client,
        alice,
        pid,
        kind="professional",
        national_id=nurse.national_id,
        role="infirmier",
        habilite=True,
    )
    card = await client.get(f"/api/v1/patients/{pid}/circle/{member['id']}", headers=alice.headers)
    assert card.status_code == 200
    person = card.json()["person"]
    assert person["national_id"] == nurse.national_id and person["active"] is True
    assert [s["structure_id"] for s in person["sites"]] == [SITE]

    other = (await create_patient(client, alice, birth_name="MARTIN"))["id"]
    wrong_patient = await client.get(f"/api/v1/patients/{other}/circle/{member['id']}", headers=alice.headers)
    assert wrong_patient.status_code == 404


async def test_the_last_authorised_member_cannot_leave_nor_lose_habilitation(
    client: httpx.AsyncClient, alice: Pro, bob: Pro
) -> None:
    pid = (await create_patient(client, alice))["id"]
    [me] = (await client.get(f"/api/v1/patients/{pid}/circle", headers=alice.headers)).json()["items"]
    relative = await add_circle_member(client, alice, pid, kind="relative", name="Paul", relationship="fils")

    leave = await client.delete(f"/api/v1/patients/{pid}/circle/{me['id']}", headers=alice.headers)
    assert leave.status_code == 409 and leave.json()["errcode"] == "AZ_LAST_AUTHORISED"
    assert "dernier membre habilité" in leave.json()["error"]
    drop = await client.patch(
        f"/api/v1/patients/{pid}/circle/{me['id']}", json={"habilite": False}, headers=alice.headers
    )
    assert drop.status_code == 409
    role = await client.patch(
        f"/api/v1/patients/{pid}/circle/{me['id']}", json={"role": "médecin traitant"}, headers=alice.headers
    )
    assert role.status_code == 200 and role.json()["role"] == "médecin traitant"
    # A relative does not count as an authorised member, and may always be removed.
    assert (
        await client.delete(f"/api/v1/patients/{pid}/circle/{relative['id']}", headers=alice.headers)
    ).status_code == 204

    await add_circle_member(
        client, alice, pid, kind="professional", national_id=bob.national_id, role="infirmier", habilite=True
    )
    assert (
        await client.delete(f"/api/v1/patients/{pid}/circle/{me['id']}", headers=alice.headers)
    ).status_code == 204
    assert (await client.get(f"/api/v1/patients/{pid}", headers=alice.headers)).status_code == 403
    assert (await client.get(f"/api/v1/patients/{pid}", headers=bob.headers)).status_code == 200


async def test_require_authorised_and_is_authorised(
    client: httpx.AsyncClient,
    alice: Pro,
    bob: Pro,
    nurse: Pro,
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    pid = uuid.UUID((await create_patient(client, alice))["id"])
    async with session_maker() as session:
        a = await actor_for_user(session=session, user_id=UserId(alice.user_id))
        b = await actor_for_user(session=session, user_id=UserId(bob.user_id))
        patient = await circle_access.require_authorised(session=session, actor=a, patient_id=pid)
        assert patient.id == pid
        assert await circle_access.is_authorised(session=session, actor=a, patient_id=pid)
        assert not await circle_access.is_authorised(session=session, actor=b, patient_id=pid)
        with pytest.raises(Forbidden) as refused:
            await circle_access.require_authorised(session=session, actor=b, patient_id=pid)
        assert refused.value.message == (
            "Vous n'êtes pas membre habilité du cercle de soins de ce patient : "
            "demandez à un membre de vous y ajouter."
        )
        with pytest.raises(NotFound):
            await circle_access.require_authorised(session=session, actor=a, patient_id=uuid.uuid4())


async def test_system_member_is_idempotent_and_announced(
    client: httpx.AsyncClient, alice: Pro, nurse: Pro, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    pid = uuid.UUID((await create_patient(client, alice))["id"])
    async with session_maker() as session:
        for _ in range(2):
            await circle.add_system_member(
                session=session,
                patient_id=pid,
                structure_id=SITE,
                role="coordinateur DAC",
                habilite=False,
                reason="inclusion DAC",
            )
            await circle.add_system_member(
                session=session,
                patient_id=pid,
                national_id=nurse.national_id,
                role="coordinateur DAC",
                habilite=True,
                reason="inclusion DAC",
            )
            await session.commit()
        # Asking again with habilite gives it; never takes it away.
        await circle.add_system_member(
            session=session,
            patient_id=pid,
            structure_id=SITE,
            role="coordinateur DAC",
            habilite=True,
            reason="r",
        )
        await circle.add_system_member(
            session=session,
            patient_id=pid,
            national_id=nurse.national_id,
            role="x",
            habilite=False,
            reason="r",
        )
        await session.commit()
        rows = list(
            await session.scalars(
                select(CircleMember).where(CircleMember.patient_id == pid, CircleMember.added_by == "system")
            )
        )
        assert sorted((r.kind, r.habilite) for r in rows) == [("professional", True), ("structure", True)]
        events = list(
            await session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "circle.member_added"))
        )
        assert len(events) == 2 and all(e.payload["added_by"] == "system" for e in events)


async def test_a_failed_change_leaves_no_event_nor_member(
    client: httpx.AsyncClient, alice: Pro, bob: Pro, session_maker: async_sessionmaker[AsyncSession]
) -> None:
    """The event is written in the caller's transaction: rolled back together with the change."""
    pid = uuid.UUID((await create_patient(client, alice))["id"])
    async with session_maker() as session:
        actor = await actor_for_user(session=session, user_id=UserId(alice.user_id))
        await circle.add_member(
            session=session,
            actor=actor,
            patient_id=pid,
            member=ProfessionalMemberIn(
                kind="professional", national_id=bob.national_id, role="x", habilite=True
            ),
            commit=False,
        )
        pending = await session.scalar(select(func.count(OutboxEvent.id)))
        assert pending == 1  # visible inside the transaction...
        await session.rollback()  # ...and gone with it (the caller's later step failed)
    async with session_maker() as session:
        assert await session.scalar(select(func.count(OutboxEvent.id))) == 0
        assert (
            await session.scalar(
                select(func.count(CircleMember.id)).where(CircleMember.national_id == bob.national_id)
            )
            == 0
        )


@pytest.mark.parametrize(
    "structure_id", ["rpps-struct:R10000123", "fhir:Organization/abc-1", "siret:12345678900011"]
)
async def test_every_directory_key_shape_is_accepted(
    client: httpx.AsyncClient, alice: Pro, db: AsyncSession, structure_id: str
) -> None:
    await add_structure(db, structure_id, "Maison de santé")
    pid = (await create_patient(client, alice))["id"]
    member = await add_circle_member(
        client, alice, pid, kind="structure", structure_id=structure_id, role="MSP"
    )
    assert member["structure_id"] == structure_id


async def test_circle_is_a_page_in_joining_order(client: httpx.AsyncClient, alice: Pro) -> None:
    pid = (await create_patient(client, alice))["id"]
    for name in ("Paul", "Anne", "Louis"):
        await add_circle_member(client, alice, pid, kind="relative", name=name, relationship="enfant")
    url = f"/api/v1/patients/{pid}/circle"
    first = (await client.get(url, params={"limit": 3}, headers=alice.headers)).json()
    assert [m["display_name"] for m in first["items"]][1:] == ["Paul", "Anne"]
    rest = (
        await client.get(url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=alice.headers)
    ).json()
    assert [m["display_name"] for m in rest["items"]] == ["Louis"] and rest["next_cursor"] is None
