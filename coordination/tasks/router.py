"""HTTP edge of tasks: parse, call one service function, format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coordination.db import SessionDep
from coordination.errors import Invalid
from coordination.ids import NationalId, PatientId, StructureId, TaskId, ThemeId
from coordination.pagination import Cursor, Page
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.tasks import service as tasks
from coordination.tasks.schemas import (
    TaskCreate,
    TaskOut,
    TaskScope,
    TaskUpdate,
    TaskVocabulary,
    VocabularyEntry,
)
from coordination.vocab import TaskPriority, TaskStatus, TaskType, Vocabulary

router = APIRouter(prefix="/api/v1/tasks", tags=["tâches"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Non habilité, inactif, ou pas partie prenante"},
    404: {"model": ErrorOut, "description": "Tâche inconnue ou non accessible"},
    409: {"model": ErrorOut, "description": "Version périmée : rechargez la tâche"},
    422: {"model": ErrorOut, "description": "Saisie invalide ou assigné hors cercle"},
}


def _entries(vocabulary: type[Vocabulary]) -> list[VocabularyEntry]:
    return [VocabularyEntry(code=code, label=label) for code, label in vocabulary.labels().items()]


@router.get("/vocabulary", response_model=TaskVocabulary, summary="Types, statuts et priorités")
async def vocabulary(actor: CurrentActor) -> TaskVocabulary:
    """The fixed lists with their French labels."""
    return TaskVocabulary(
        types=_entries(TaskType), statuses=_entries(TaskStatus), priorities=_entries(TaskPriority)
    )


@router.post("", response_model=TaskOut, status_code=201, summary="Créer une tâche", responses=_ERRORS)
async def create_task(body: TaskCreate, actor: CurrentActor, session: SessionDep) -> TaskOut:
    return await tasks.create_task(session=session, actor=actor, data=body)


@router.get("", response_model=Page[TaskOut], summary="Rechercher des tâches", responses=_ERRORS)
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
    patient_id: Annotated[PatientId | None, Query()] = None,
    theme_id: Annotated[
        ThemeId | None, Query(description="Les tâches d'un thème (salon thématique), visibles de tous")
    ] = None,
    structure_id: Annotated[
        str | None, Query(max_length=80, description="Avec scope=structure : l'une de mes structures")
    ] = None,
    status: Annotated[list[TaskStatus] | None, Query(description="Répétable ; défaut : tous")] = None,
    type: Annotated[TaskType | None, Query()] = None,
    assignee_national_id: Annotated[str | None, Query(max_length=20)] = None,
    assignee_structure_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=tasks.MAX_PAGE)] = 50,
    cursor: Cursor = None,
    ids: Annotated[
        list[TaskId] | None,
        Query(
            max_length=tasks.MAX_PAGE,
            description="Répétable : ces tâches-là (celles que vous pouvez voir, dans l'ordre demandé ; "
            "les autres sont omises). Sans autre filtre.",
        ),
    ] = None,
) -> Page[TaskOut]:
    """Tasks by due date (undated last), keyset-paginated with ``next_cursor``; or, with ``ids``, those
    tasks in one answer (a reader of many tasks at once, such as the bot's notifications)."""
    if ids:
        if any(
            v is not None
            for v in (scope, patient_id, theme_id, structure_id, status, type, assignee_national_id)
        ) or (assignee_structure_id is not None or cursor is not None):
            raise Invalid(
                "Le paramètre « ids » se suffit à lui-même : retirez les autres filtres, ou retirez « ids ».",
                field="ids",
            )
        return Page[TaskOut](items=await tasks.tasks_by_ids(session=session, actor=actor, ids=ids))
    if structure_id is not None and scope is None:
        scope = "structure"
    return await tasks.list_tasks(
        session=session,
        actor=actor,
        filters=tasks.TaskFilters(
            scope=scope,
            patient_id=patient_id,
            theme_id=theme_id,
            structure_id=StructureId(structure_id) if structure_id else None,
            statuses=tuple(dict.fromkeys(status or [])),
            type=type,
            assignee_national_id=NationalId(assignee_national_id) if assignee_national_id else None,
            assignee_structure_id=StructureId(assignee_structure_id) if assignee_structure_id else None,
        ),
        limit=limit,
        cursor=cursor,
    )


@router.get("/{task_id}", response_model=TaskOut, summary="Lire une tâche", responses=_ERRORS)
async def get_task(task_id: TaskId, actor: CurrentActor, session: SessionDep) -> TaskOut:
    return await tasks.get_task(session=session, actor=actor, task_id=task_id)


@router.patch("/{task_id}", response_model=TaskOut, summary="Modifier une tâche", responses=_ERRORS)
async def update_task(task_id: TaskId, body: TaskUpdate, actor: CurrentActor, session: SessionDep) -> TaskOut:
    return await tasks.update_task(session=session, actor=actor, task_id=task_id, data=body)
