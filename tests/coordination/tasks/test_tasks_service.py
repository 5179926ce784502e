"""Service-level checks that need two sessions at once: a real race on the same version."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from coordination.errors import Conflict
from coordination.ids import PatientId, TaskId, UserId
from coordination.security import actor_for_user
from coordination.tasks import service as tasks
from coordination.tasks.schemas import TaskCreate, TaskUpdate
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, add_professional


async def test_second_client_with_the_same_version_gets_409(
    session_maker: async_sessionmaker[AsyncSession], db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    actor = await actor_for_user(session=db, user_id=UserId(pro.user_id))
    task = await tasks.create_task(
        session=db, actor=actor, data=TaskCreate(title="Appeler la pharmacie", type="appel")
    )
    async with session_maker() as s1, session_maker() as s2:
        # A client read version 1 and saved it...
        first = await tasks.update_task(
            session=s1, actor=actor, task_id=TaskId(task.id), data=TaskUpdate(version=1, title="A")
        )
        assert first.version == 2
        # ...s2 loads it afterwards, sees version 2, and refuses the client's version 1.
        with pytest.raises(Conflict):
            await tasks.update_task(
                session=s2, actor=actor, task_id=TaskId(task.id), data=TaskUpdate(version=1, title="B")
            )


async def test_stale_row_detected_at_write_time(
    session_maker: async_sessionmaker[AsyncSession], db: AsyncSession, tokens: FakeTokens
) -> None:
    """Both sessions hold version 1 in memory; the database refuses the second write (409)."""
    pro = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    actor = await actor_for_user(session=db, user_id=UserId(pro.user_id))
    task = await tasks.create_task(
        session=db, actor=actor, data=TaskCreate(title="Appeler la pharmacie", type="appel")
    )
    async with session_maker() as s1, session_maker() as s2:
        # s2 reads (and caches) the row before s1 writes.
        stale_copy = await tasks.get_task(session=s2, actor=actor, task_id=TaskId(task.id))
        assert stale_copy.version == 1
        await tasks.update_task(
            session=s1, actor=actor, task_id=TaskId(task.id), data=TaskUpdate(version=1, title="A")
        )
        with pytest.raises(Conflict):
            await tasks.update_task(
                session=s2, actor=actor, task_id=TaskId(task.id), data=TaskUpdate(version=1, title="B")
            )
    task_id = TaskId(task.id)
    db.expire_all()
    refreshed = await tasks.get_task(session=db, actor=actor, task_id=task_id)
    assert refreshed.title == "A" and refreshed.version == 2


async def test_tasks_of_patient_for_other_domains(db: AsyncSession, tokens: FakeTokens) -> None:
    """Read models of a patient's tasks, oldest first, with assignee labels (what FHIR exports)."""
    pro = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    actor = await actor_for_user(session=db, user_id=UserId(pro.user_id))
    patient = PatientId(await add_patient(db))
    await add_member(db, patient, national_id=pro.national_id)
    first = await tasks.create_task(
        session=db,
        actor=actor,
        data=TaskCreate(
            title="Un", type="appel", patient_id=patient, assignee_national_ids=[pro.national_id]
        ),
    )
    second = await tasks.create_task(
        session=db, actor=actor, data=TaskCreate(title="Deux", type="visite", patient_id=patient)
    )
    await tasks.create_task(session=db, actor=actor, data=TaskCreate(title="Sans patient", type="appel"))
    found = await tasks.tasks_of_patient(session=db, patient_id=patient)
    assert [t.id for t in found] == [first.id, second.id]
    assert found[0].assignees[0].label == "Jeanne MARTIN" and found[0].type_label == "Appel"
