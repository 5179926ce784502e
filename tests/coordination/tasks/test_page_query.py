"""``list_tasks``'s pure parts on their own: whose tasks (``sources_for``) and the SQL of one page
(``page_query``), compiled without a database."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from coordination.errors import Forbidden
from coordination.ids import NationalId, PatientId, StructureId, UserId
from coordination.security import Actor
from coordination.tasks.service import PageQuery, TaskFilters, TaskSources, page_query, sources_for
from coordination.vocab import TaskStatus, TaskType

ME = NationalId("810000000001")
SSIAD = StructureId("finess:060000002")
CABINET = StructureId("finess:060000001")
PATIENT = PatientId(uuid.UUID("00000000-0000-4000-8000-000000000001"))
ACTOR = Actor(
    user_id=UserId("@alice:azurezo.test"),
    national_id=ME,
    display_name="Jeanne MARTIN",
    profession_code="10",
    structure_ids=frozenset({SSIAD, CABINET}),
)


def _sql(query: PageQuery | None, dialect: object = sqlite.dialect()) -> str:
    assert query is not None
    return str(query.compile(dialect=dialect))  # type: ignore[arg-type]


def test_sources_by_scope() -> None:
    assert sources_for(actor=ACTOR, filters=TaskFilters()) == TaskSources(
        creator=ME, assignee_keys=(f"pp:{ME}",)
    )
    assert sources_for(actor=ACTOR, filters=TaskFilters(scope="created")) == TaskSources(creator=ME)
    assert sources_for(actor=ACTOR, filters=TaskFilters(scope="assigned")) == TaskSources(
        assignee_keys=(f"pp:{ME}",)
    )
    assert sources_for(actor=ACTOR, filters=TaskFilters(scope="structure")) == TaskSources(
        assignee_keys=(f"st:{CABINET}", f"st:{SSIAD}")
    )
    one = sources_for(actor=ACTOR, filters=TaskFilters(scope="structure", structure_id=SSIAD))
    assert one == TaskSources(assignee_keys=(f"st:{SSIAD}",))
    # A patient alone: the patient's tasks; with a scope, the scope (the patient filters it).
    assert sources_for(actor=ACTOR, filters=TaskFilters(patient_id=PATIENT)) == TaskSources(
        patient_id=PATIENT
    )
    assert sources_for(actor=ACTOR, filters=TaskFilters(patient_id=PATIENT, scope="created")) == TaskSources(
        creator=ME
    )


def test_a_structure_that_is_not_mine_is_refused() -> None:
    with pytest.raises(Forbidden, match="Vous n'exercez pas dans cette structure"):
        sources_for(actor=ACTOR, filters=TaskFilters(scope="structure", structure_id=StructureId("finess:1")))


def test_nothing_to_scan_builds_no_query() -> None:
    nowhere = Actor(
        user_id=UserId("@b:azurezo.test"),
        national_id=NationalId("810000000002"),
        display_name="B",
        profession_code=None,
    )
    filters = TaskFilters(scope="structure")
    assert page_query(sources=sources_for(actor=nowhere, filters=filters), filters=filters) is None


def test_one_scan_per_source_and_status_each_in_index_order() -> None:
    """Default scope, every status: 2 sources x 4 statuses = 8 branches, each with its own ORDER BY
    and LIMIT (an index range scan), merged by one UNION cut at limit + 1."""
    filters = TaskFilters()
    sql = _sql(page_query(sources=sources_for(actor=ACTOR, filters=filters), filters=filters, limit=20))
    assert sql.count("UNION") == 7
    assert sql.count("LIMIT") == 9  # 8 branches + the merged page
    assert sql.count('task_assignees."key" =') == 4 and sql.count("tasks.creator_national_id =") == 4
    # One status, one source: a single range scan, no UNION.
    one = TaskFilters(scope="assigned", statuses=(TaskStatus.EN_COURS,))
    single = _sql(page_query(sources=sources_for(actor=ACTOR, filters=one), filters=one))
    assert "UNION" not in single and single.count("LIMIT") == 1
    assert "ORDER BY task_assignees.sort_due, task_assignees.task_id" in single


def test_type_uses_the_copied_column_and_patient_joins_the_task() -> None:
    by_type = TaskFilters(scope="assigned", statuses=(TaskStatus.A_FAIRE,), type=TaskType.APPEL)
    sql = _sql(page_query(sources=sources_for(actor=ACTOR, filters=by_type), filters=by_type))
    assert "task_assignees.type =" in sql and "JOIN tasks" not in sql
    with_patient = TaskFilters(scope="assigned", statuses=(TaskStatus.A_FAIRE,), patient_id=PATIENT)
    sql = _sql(page_query(sources=sources_for(actor=ACTOR, filters=with_patient), filters=with_patient))
    assert "JOIN tasks ON tasks.id = task_assignees.task_id" in sql and "tasks.patient_id =" in sql


def test_keyset_and_assignee_filters() -> None:
    filters = TaskFilters(
        patient_id=PATIENT, statuses=(TaskStatus.A_FAIRE,), assignee_national_id=NationalId("810000000009")
    )
    after = (date(2030, 1, 2), uuid.UUID(int=5))
    query = page_query(
        sources=sources_for(actor=ACTOR, filters=filters), filters=filters, after=after, limit=10
    )
    sql = _sql(query, postgresql.dialect())
    assert "(tasks.sort_due, tasks.id) > (" in sql
    assert "EXISTS (SELECT" in sql and "wanted.key =" in sql
    assert sql.count("tasks.patient_id =") == 1
    assert query is not None and list(query.compile().params.values())[-1] == 11  # limit + 1
