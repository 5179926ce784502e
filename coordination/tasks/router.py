"""HTTP edge of tasks: parse, call one service function, format."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from coordination.db import SessionDep
from coordination.ids import PatientId, StructureId, TaskId
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.tasks import rules
from coordination.tasks import service as tasks
from coordination.tasks.models import Task
from coordination.tasks.schemas import (
    AssigneeOut,
    TaskCreate,
    TaskOut,
    TaskPage,
    TaskScope,
    TaskStatus,
    TaskType,
    TaskUpdate,
    TaskVocabulary,
    VocabularyEntry,
)

router = APIRouter(prefix="/api/v1/tasks", tags=["tâches"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Non habilité, inactif, ou pas partie prenante"},
    404: {"model": ErrorOut, "description": "Tâche inconnue ou non accessible"},
    409: {"model": ErrorOut, "description": "Version périmée : rechargez la tâche"},
    422: {"model": ErrorOut, "description": "Saisie invalide ou assigné hors cercle"},
}


def _out(task: Task, labels: dict[str, str]) -> TaskOut:
    assignees = [
        AssigneeOut(
            kind="professionnel" if a.key.startswith("pp:") else "structure",
            national_id=a.key[3:] if a.key.startswith("pp:") else None,
            structure_id=a.key[3:] if a.key.startswith("st:") else None,
            label=labels.get(a.key, a.key[3:]),
        )
        for a in task.assignees
    ]
    return TaskOut(
        id=task.id,
        version=task.version,
        patient_id=task.patient_id,
        title=task.title,
        description=task.description,
        type=task.type,
        type_label=rules.TASK_TYPES.get(task.type, task.type),
        status=task.status,
        status_label=rules.TASK_STATUSES.get(task.status, task.status),
        priority=task.priority,
        due_date=task.due_date,
        creator_national_id=task.creator_national_id,
        creator_user_id=task.creator_user_id,
        assignees=assignees,
        created_at=task.created_at,
        updated_at=task.updated_at,
        completed_at=task.completed_at,
    )


@router.get("/vocabulary", response_model=TaskVocabulary, summary="Types, statuts et priorités")
async def vocabulary(actor: CurrentActor) -> TaskVocabulary:
    """The fixed lists with their French labels."""

    def entries(d: dict[str, str]) -> list[VocabularyEntry]:
        return [VocabularyEntry(code=k, label=v) for k, v in d.items()]

    return TaskVocabulary(
        types=entries(rules.TASK_TYPES),
        statuses=entries(rules.TASK_STATUSES),
        priorities=entries(rules.TASK_PRIORITIES),
    )


@router.post("", response_model=TaskOut, status_code=201, summary="Créer une tâche", responses=_ERRORS)
async def create_task(body: TaskCreate, actor: CurrentActor, session: SessionDep) -> TaskOut:
    task = await tasks.create_task(session=session, actor=actor, data=body)
    return _out(task, await tasks.labels_for(session=session, tasks=[task]))


@router.get("", response_model=TaskPage, summary="Rechercher des tâches", responses=_ERRORS)
async def list_tasks(
    actor: CurrentActor,
    session: SessionDep,
    scope: Annotated[
        TaskScope | None,
        Query(
            description="mine = assignées à moi ou créées par moi (défaut sans patient) ; "
            "assigned ; created ; structure = assignées à mes structures"
        ),
    ] = None,
    patient_id: Annotated[uuid.UUID | None, Query()] = None,
    structure_id: Annotated[
        str | None, Query(max_length=80, description="Avec scope=structure : l'une de mes structures")
    ] = None,
    status: Annotated[list[TaskStatus] | None, Query(description="Répétable ; défaut : tous")] = None,
    type: Annotated[TaskType | None, Query()] = None,
    assignee_national_id: Annotated[str | None, Query(max_length=20)] = None,
    assignee_structure_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=tasks.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TaskPage:
    """Tasks by due date (undated last), keyset-paginated with ``next_cursor``."""
    if structure_id is not None and scope is None:
        scope = "structure"
    page = await tasks.list_tasks(
        session=session,
        actor=actor,
        filters=tasks.TaskFilters(
            scope=scope,
            patient_id=PatientId(patient_id) if patient_id else None,
            structure_id=StructureId(structure_id) if structure_id else None,
            statuses=tuple(dict.fromkeys(status or [])),
            type=type,
            assignee_national_id=assignee_national_id,
            assignee_structure_id=assignee_structure_id,
        ),
        limit=limit,
        cursor=cursor,
    )
    labels = await tasks.labels_for(session=session, tasks=page.tasks)
    return TaskPage(items=[_out(t, labels) for t in page.tasks], next_cursor=page.next_cursor)


@router.get("/{task_id}", response_model=TaskOut, summary="Lire une tâche", responses=_ERRORS)
async def get_task(task_id: uuid.UUID, actor: CurrentActor, session: SessionDep) -> TaskOut:
    task = await tasks.get_task(session=session, actor=actor, task_id=TaskId(task_id))
    return _out(task, await tasks.labels_for(session=session, tasks=[task]))


@router.patch("/{task_id}", response_model=TaskOut, summary="Modifier une tâche", responses=_ERRORS)
async def update_task(
    task_id: uuid.UUID, body: TaskUpdate, actor: CurrentActor, session: SessionDep
) -> TaskOut:
    task = await tasks.update_task(session=session, actor=actor, task_id=TaskId(task_id), data=body)
    return _out(task, await tasks.labels_for(session=session, tasks=[task]))
