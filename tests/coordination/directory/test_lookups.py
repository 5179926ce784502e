"""The directory look-ups the other domains use (names, active ids, bound users, workplaces)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.directory import service
from coordination.directory.models import AccountBinding, Person, Structure
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

SSIAD = "finess:060000001"
CLOSED = "finess:060000002"


@pytest.fixture
async def people(db: AsyncSession, tokens: FakeTokens) -> dict[str, Pro]:
    await add_structure(db, SSIAD, "SSIAD de Nice")
    await add_structure(db, CLOSED, "Clinique fermée")
    await db.execute(update(Structure).where(Structure.structure_id == CLOSED).values(active=False))
    doctor = await add_professional(db, tokens, localpart="doc", national_id="810000000001")
    await db.execute(update(Person).where(Person.national_id == doctor.national_id).values(civility="DR"))
    nurse = await add_professional(
        db,
        tokens,
        localpart="nurse",
        national_id="810000000002",
        family_name="PELLEGRIN",
        given_name="Sophie",
        profession_code="60",
        structure_ids=(SSIAD,),
    )
    gone = await add_professional(
        db, tokens, localpart="gone", national_id="810000000003", structure_ids=(SSIAD,), active=False
    )
    unbound = await add_professional(
        db, tokens, localpart="unbound", national_id="810000000004", structure_ids=(SSIAD,)
    )
    await db.execute(AccountBinding.__table__.delete().where(AccountBinding.user_id == unbound.user_id))
    await db.commit()
    return {"doctor": doctor, "nurse": nurse, "gone": gone, "unbound": unbound}


async def test_display_names_say_dr_for_doctors_only(db: AsyncSession, people: dict[str, Pro]) -> None:
    names = await service.display_names(
        session=db, national_ids=["810000000001", "810000000002", "810000000003", "819999999999"]
    )
    assert names == {
        "810000000001": "Dr Jeanne MARTIN",
        "810000000002": "Sophie PELLEGRIN",
        "810000000003": "Jeanne MARTIN",  # delisted: still named (old tasks show who it was)
    }
    assert await service.display_names(session=db, national_ids=[]) == {}


async def test_the_dr_prefix_is_the_same_everywhere(
    client: httpx.AsyncClient, db: AsyncSession, people: dict[str, Pro]
) -> None:
    """Card, binding (Synapse), look-up and a task's assignee label: one name for one person."""
    doctor = people["doctor"]
    card = await service.get_person(session=db, national_id=doctor.national_id)
    binding = await service.binding_for_user(session=db, user_id=doctor.user_id)
    looked_up = await service.display_names(session=db, national_ids=[doctor.national_id])
    task = await client.post(
        "/api/v1/tasks",
        json={"title": "Rappeler", "type": "appel", "assignee_national_ids": [doctor.national_id]},
        headers=people["nurse"].headers,
    )
    assert task.status_code == 201, task.text
    [assignee] = task.json()["assignees"]
    assert binding is not None
    assert {card.display_name, binding.display_name, looked_up[doctor.national_id], assignee["label"]} == {
        "Dr Jeanne MARTIN"
    }


async def test_structure_names_and_active_ids(db: AsyncSession, people: dict[str, Pro]) -> None:
    assert await service.structure_names(session=db, structure_ids=[SSIAD, CLOSED, "finess:0"]) == {
        SSIAD: "SSIAD de Nice",
        CLOSED: "Clinique fermée",
    }
    assert await service.active_structure_ids(session=db, structure_ids=[SSIAD, CLOSED, "finess:0"]) == {
        SSIAD
    }
    assert await service.active_national_ids(
        session=db, national_ids=["810000000001", "810000000003", "819999999999"]
    ) == {"810000000001"}
    assert await service.active_structure_ids(session=db, structure_ids=[]) == set()
    assert await service.active_national_ids(session=db, national_ids=[]) == set()


async def test_bound_active_users(db: AsyncSession, people: dict[str, Pro]) -> None:
    """Bound and active only: a delisted professional and one without an account are never told."""
    doctor, nurse = people["doctor"], people["nurse"]
    at_ssiad = await service.bound_active_user_ids(session=db, structure_ids=[SSIAD])
    assert at_ssiad == [nurse.user_id]
    direct = await service.bound_active_user_ids(
        session=db, national_ids=[doctor.national_id, "810000000003", "810000000004"]
    )
    assert direct == [doctor.user_id]
    both = await service.bound_active_user_ids(
        session=db, national_ids=[doctor.national_id, nurse.national_id], structure_ids=[SSIAD, CLOSED]
    )
    assert both == sorted({doctor.user_id, nurse.user_id})
    assert await service.bound_active_user_ids(session=db) == []


async def test_workplaces_of_users(db: AsyncSession, people: dict[str, Pro]) -> None:
    doctor, nurse = people["doctor"], people["nurse"]
    found = await service.workplaces_of_users(
        session=db, user_ids=[doctor.user_id, nurse.user_id, "@nobody:azurezo.test"]
    )
    assert found == {doctor.user_id: (doctor.national_id, set()), nurse.user_id: (nurse.national_id, {SSIAD})}
    assert await service.workplaces_of_users(session=db, user_ids=[]) == {}
