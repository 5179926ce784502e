"""Tasks: creation, reading, updates and the filtered lists.

Access rule. A task is visible to its creator, to its assignees (the professional, or any professional
working at an assigned structure) and, for a task about a patient, to the patient's authorised circle
members. Changing a task is for its creator and its assignees; for a patient task they must also still
be authorised members of the circle (someone removed from the circle writes nothing about the patient).

Lists (``list_tasks``) are unions of index range scans, each ordered by ``(sort_due, id)`` and cut at
``limit + 1`` rows, merged here; one scan per (source, status):
- a patient's tasks             -> ``ix_tasks_patient_status_due``    (patient_id, status, sort_due, id)
- tasks I created               -> ``ix_tasks_creator_status_due``    (creator_national_id, status, ...)
- tasks assigned to me / to one of my structures / to a given assignee
                                -> ``ix_task_assignees_key_status_due`` (key, status, sort_due, task_id)
With a type filter, the creator and assignee scans use the indexes that put ``type`` after the
creator / key (``ix_tasks_creator_type_status_due``, ``ix_task_assignees_key_type_status_due``), so a
rare type still costs one page, not every task of a busy professional.
Splitting by status (4 fixed values) keeps every scan in index order: an ``IN`` over statuses would make
the database sort every matching row of a busy structure before applying the limit.

``list_tasks`` is three steps: ``sources_for`` (whose tasks: pure, from the actor and the filters),
``page_query`` (the SQL of one page: pure, tested on its own) and the executor (run it, load the page,
audit). Every function returns read models (``TaskOut``), never ORM rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, exists, literal_column, select, tuple_, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, joinedload, selectinload

from coordination import patch
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.db import commit_or_conflict, utcnow
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound
from coordination.ids import NationalId, PatientId, StructureId, TaskId, ThemeId, UserId
from coordination.outbox import service as outbox
from coordination.outbox.events import TaskAssigned, TaskDone
from coordination.pagination import Page
from coordination.rooms.models import ThemeRoom
from coordination.security import Actor
from coordination.tasks import rules
from coordination.tasks.models import Task, TaskAssignee, TaskNumberCounter
from coordination.tasks.schemas import AssigneeOut, TaskCreate, TaskOut, TaskScope, TaskUpdate
from coordination.vocab import TaskStatus, TaskType

logger = logging.getLogger(__name__)

MAX_PAGE = 200

PageQuery = Select[date, uuid.UUID] | CompoundSelect[date, uuid.UUID]


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """Filters of ``list_tasks``. ``patient_id`` alone lists the patient's tasks; ``scope`` alone the
    actor's own; both together intersect. ``statuses`` empty means every status."""

    scope: TaskScope | None = None
    patient_id: PatientId | None = None
    theme_id: ThemeId | None = None
    structure_id: StructureId | None = None
    statuses: tuple[TaskStatus, ...] = ()
    type: TaskType | None = None
    assignee_national_id: NationalId | None = None
    assignee_structure_id: StructureId | None = None


@dataclass(frozen=True, slots=True)
class TaskSources:
    """Whose tasks a list scans (one range scan per source and status)."""

    patient_id: PatientId | None = None
    """The patient's tasks (``ix_tasks_patient_status_due``)."""
    theme_id: ThemeId | None = None
    """A theme's tasks (``ix_tasks_theme_status_due``)."""
    creator: NationalId | None = None
    """Tasks created by this professional (``ix_tasks_creator_status_due``)."""
    assignee_keys: tuple[str, ...] = ()
    """Tasks assigned to these keys (``ix_task_assignees_key_status_due``)."""


def _not_found() -> NotFound:
    return NotFound(
        "Tâche introuvable, ou vous n'y avez pas accès : vérifiez le lien, ou demandez à son auteur "
        "de vous l'assigner."
    )


def _stale() -> Conflict:
    return Conflict(
        "La tâche a été modifiée entre-temps par quelqu'un d'autre : rechargez-la, puis refaites "
        "votre modification.",
        errcode=ErrCode.STALE_VERSION,
    )


def actor_keys(actor: Actor) -> set[str]:
    """The assignee keys that designate the actor: themself and every structure they work at."""
    return {rules.person_key(actor.national_id)} | {rules.structure_key(s) for s in actor.structure_ids}


# --- read models --------------------------------------------------------------------------------


def _assignee_out(key: str, labels: Mapping[str, str]) -> AssigneeOut:
    code = key[3:]
    if key.startswith(rules.PERSON):
        return AssigneeOut(kind="professionnel", national_id=NationalId(code), label=labels.get(key, code))
    return AssigneeOut(kind="structure", structure_id=StructureId(code), label=labels.get(key, code))


def _task_out(task: Task, labels: Mapping[str, str]) -> TaskOut:
    return TaskOut(
        id=TaskId(task.id),
        number=task.number,
        version=task.version,
        patient_id=PatientId(task.patient_id) if task.patient_id is not None else None,
        theme_id=ThemeId(task.theme_id) if task.theme_id is not None else None,
        title=task.title,
        description=task.description,
        type=task.type,
        status=task.status,
        priority=task.priority,
        due_date=task.due_date,
        creator_national_id=NationalId(task.creator_national_id),
        creator_user_id=UserId(task.creator_user_id),
        assignees=[_assignee_out(a.key, labels) for a in task.assignees],
        created_at=task.created_at,
        updated_at=task.updated_at,
        completed_at=task.completed_at,
    )


async def _read_models(session: AsyncSession, tasks: Sequence[Task]) -> list[TaskOut]:
    """Read models of ``tasks`` (assignees loaded), with the directory names of their assignees."""
    nids, sids = rules.split_keys({a.key for t in tasks for a in t.assignees})
    labels = {
        rules.person_key(n): name
        for n, name in (await directory.display_names(session=session, national_ids=nids)).items()
    }
    labels.update(
        (rules.structure_key(s), name)
        for s, name in (await directory.structure_names(session=session, structure_ids=sids)).items()
    )
    return [_task_out(t, labels) for t in tasks]


# --- who is assigned, who is told ---------------------------------------------------------------


async def matrix_ids_for_keys(*, session: AsyncSession, keys: Iterable[str]) -> list[str]:
    """Matrix IDs to notify for assignee keys: the professional's bound account, and every active,
    bound professional working at an assigned structure."""
    nids, sids = rules.split_keys(set(keys))
    return await directory.bound_active_user_ids(session=session, national_ids=nids, structure_ids=sids)


def _refuse_assignees(bad: Sequence[str], why: str) -> None:
    if bad:
        raise Invalid(f"Assignation impossible : {', '.join(bad)} {why}", field="assignees")


async def _validated_keys(
    *,
    session: AsyncSession,
    patient_id: uuid.UUID | None,
    national_ids: Sequence[str],
    structure_ids: Sequence[str],
) -> list[str]:
    """Check the assignees exist where they must, and return their keys.

    With a patient: habilité members of its care circle (an assignee reads the task, so a member who
    may not read the dossier cannot be one). Without: any active professional or structure of the
    directory.
    """
    nids, sids = sorted(set(national_ids)), sorted(set(structure_ids))
    if patient_id is not None:
        ok_n, ok_s = await circle_access.habilite_among(
            session=session, patient_id=patient_id, national_ids=nids, structure_ids=sids
        )
        why = (
            "ne fait pas partie des membres habilités du cercle de soins de ce patient. Ajoutez-le au "
            "cercle (habilité) ou choisissez un autre membre."
        )
    else:
        ok_n = await directory.active_national_ids(session=session, national_ids=nids)
        ok_s = await directory.active_structure_ids(session=session, structure_ids=sids)
        why = "n'est pas un professionnel ou une structure active de l'annuaire. Vérifiez l'identifiant."
    _refuse_assignees([n for n in nids if n not in ok_n] + [s for s in sids if s not in ok_s], why)
    return [rules.person_key(n) for n in nids] + [rules.structure_key(s) for s in sids]


async def _recipients(session: AsyncSession, keys: Iterable[str], actor: Actor) -> list[str]:
    """Who to tell about an assignment: everyone the keys designate, except the actor."""
    return [u for u in await matrix_ids_for_keys(session=session, keys=keys) if u != actor.user_id]


async def _emit_assigned(session: AsyncSession, task: Task, recipients: Sequence[str], actor: Actor) -> None:
    if recipients:
        await outbox.emit(
            session=session,
            recipients=recipients,
            event=TaskAssigned(
                task_id=TaskId(task.id),
                patient_id=PatientId(task.patient_id) if task.patient_id else None,
                type=task.type,
                assigned_by=actor.user_id,
            ),
        )


async def _record(session: AsyncSession, actor: Actor, action: str, task: Task) -> None:
    if task.patient_id is not None:
        await audit.record(
            session=session,
            actor=actor,
            action=action,
            object_type="task",
            object_id=task.id,
            patient_id=task.patient_id,
        )


# --- reading one --------------------------------------------------------------------------------


async def _load(session: AsyncSession, task_id: uuid.UUID) -> Task | None:
    return (
        await session.scalars(select(Task).where(Task.id == task_id).options(selectinload(Task.assignees)))
    ).one_or_none()


async def _can_see(session: AsyncSession, actor: Actor, task: Task) -> bool:
    if task.creator_national_id == actor.national_id:
        return True
    if actor_keys(actor) & {a.key for a in task.assignees}:
        return True
    if task.patient_id is not None:
        return await circle_access.is_authorised(session=session, actor=actor, patient_id=task.patient_id)
    # A thematic room is open to every professional of the directory, and so are its tasks (they are
    # about no patient).
    return task.theme_id is not None


async def _visible(session: AsyncSession, actor: Actor, task_id: TaskId) -> Task:
    task = await _load(session, task_id)
    if task is None or not await _can_see(session, actor, task):
        raise _not_found()
    return task


async def get_task(*, session: AsyncSession, actor: Actor, task_id: TaskId) -> TaskOut:
    """One task the actor may see (404 otherwise, without telling whether it exists). Audited when it
    is about a patient."""
    task = await _visible(session, actor, task_id)
    if task.patient_id is not None:
        await _record(session, actor, "task.read", task)
        await session.commit()
    return (await _read_models(session, [task]))[0]


async def tasks_by_ids(*, session: AsyncSession, actor: Actor, ids: Sequence[uuid.UUID]) -> list[TaskOut]:
    """The tasks among ``ids`` that the actor may see (the rule of ``get_task``), in the order asked;
    unknown or hidden ones are left out, as a 404 would tell nothing either.

    For a reader of many tasks at once (the bot labelling a page of notifications): one query for the
    tasks, one for the circle rule, and one audit entry per patient whose tasks are returned."""
    wanted = list(dict.fromkeys(ids))[:MAX_PAGE]
    if not wanted:
        return []
    loaded = {
        t.id: t
        for t in (
            await session.scalars(
                select(Task).where(Task.id.in_(wanted)).options(selectinload(Task.assignees))
            )
        ).all()
    }
    keys = actor_keys(actor)

    def party(task: Task) -> bool:
        return task.creator_national_id == actor.national_id or bool(keys & {a.key for a in task.assignees})

    ask = sorted({t.patient_id for t in loaded.values() if t.patient_id is not None and not party(t)})
    authorised = await circle_access.authorised_patient_ids(session=session, actor=actor, patient_ids=ask)
    visible = [
        t
        for t in (loaded.get(i) for i in wanted)
        if t is not None
        and (party(t) or (t.patient_id in authorised if t.patient_id is not None else t.theme_id is not None))
    ]
    items = await _read_models(session, visible)
    patient_ids = sorted({t.patient_id for t in visible if t.patient_id is not None})
    if patient_ids:
        await audit.record_many(
            session=session, actor=actor, action="task.read", object_type="task", patient_ids=patient_ids
        )
        await session.commit()
    return items


# --- lists: sources (pure), page query (pure), executor ----------------------------------------


def _my_structures(actor: Actor, structure_id: StructureId | None) -> list[str]:
    if structure_id is None:
        return sorted(actor.structure_ids)
    if structure_id not in actor.structure_ids:
        raise Forbidden(
            "Vous n'exercez pas dans cette structure selon l'annuaire : vous ne pouvez "
            "pas consulter ses tâches. Choisissez l'une de vos structures.",
            errcode=ErrCode.NOT_YOUR_STRUCTURE,
        )
    return [structure_id]


def sources_for(*, actor: Actor, filters: TaskFilters) -> TaskSources:
    """Whose tasks the list scans. Without ``patient_id`` the scope defaults to "mine" (assigned to me
    or created by me); "structure" is my structures (or ``structure_id``, which must be one of mine:
    else 403)."""
    scope = filters.scope
    if scope is None:
        if filters.patient_id is not None:
            return TaskSources(patient_id=filters.patient_id)
        if filters.theme_id is not None:
            return TaskSources(theme_id=filters.theme_id)
        scope = "mine"
    if scope == "structure":
        structures = _my_structures(actor, filters.structure_id)
        return TaskSources(assignee_keys=tuple(rules.structure_key(s) for s in structures))
    return TaskSources(
        creator=actor.national_id if scope in ("mine", "created") else None,
        assignee_keys=(rules.person_key(actor.national_id),) if scope in ("mine", "assigned") else (),
    )


def _keyset(
    sort_col: QueryableAttribute[date],
    id_col: QueryableAttribute[uuid.UUID],
    after: tuple[date, uuid.UUID] | None,
) -> list[ColumnElement[bool]]:
    return [] if after is None else [tuple_(sort_col, id_col) > tuple_(after[0], after[1])]


def _assigned_to(filters: TaskFilters, task_id: QueryableAttribute[uuid.UUID]) -> list[ColumnElement[bool]]:
    """The "assigned to this professional / structure" filters, on any branch."""
    wanted = []
    if filters.assignee_national_id:
        wanted.append(rules.person_key(filters.assignee_national_id))
    if filters.assignee_structure_id:
        wanted.append(rules.structure_key(filters.assignee_structure_id))
    other = TaskAssignee.__table__.alias("wanted")
    return [exists().where(other.c.task_id == task_id, other.c.key == k) for k in wanted]


def _from_tasks(
    where: ColumnElement[bool] | None,
    status: TaskStatus,
    filters: TaskFilters,
    after: tuple[date, uuid.UUID] | None,
    limit: int,
) -> Select[date, uuid.UUID]:
    """One scan of the tasks table (by creator, or by patient when ``where`` is None), in index order."""
    stmt = select(Task.sort_due.label("d"), Task.id.label("i")).where(Task.status == status.value)
    if where is not None:
        stmt = stmt.where(where)
    if filters.type is not None:
        stmt = stmt.where(Task.type == filters.type.value)
    if filters.patient_id is not None:
        stmt = stmt.where(Task.patient_id == filters.patient_id)
    if filters.theme_id is not None:
        stmt = stmt.where(Task.theme_id == filters.theme_id)
    stmt = stmt.where(*_assigned_to(filters, Task.id), *_keyset(Task.sort_due, Task.id, after))
    return stmt.order_by(Task.sort_due, Task.id).limit(limit + 1)


def _from_assignees(
    key: str,
    status: TaskStatus,
    filters: TaskFilters,
    after: tuple[date, uuid.UUID] | None,
    limit: int,
) -> Select[date, uuid.UUID]:
    """One scan of the assignees of ``key``, in index order (the type is copied on the assignee row,
    served by ``ix_task_assignees_key_type_status_due``; only a patient filter needs the task row)."""
    stmt = select(TaskAssignee.sort_due.label("d"), TaskAssignee.task_id.label("i")).where(
        TaskAssignee.key == key, TaskAssignee.status == status.value
    )
    if filters.type is not None:
        stmt = stmt.where(TaskAssignee.type == filters.type.value)
    if filters.patient_id is not None or filters.theme_id is not None:
        stmt = stmt.join(Task, Task.id == TaskAssignee.task_id)
    if filters.patient_id is not None:
        stmt = stmt.where(Task.patient_id == filters.patient_id)
    if filters.theme_id is not None:
        stmt = stmt.where(Task.theme_id == filters.theme_id)
    stmt = stmt.where(
        *_assigned_to(filters, TaskAssignee.task_id),
        *_keyset(TaskAssignee.sort_due, TaskAssignee.task_id, after),
    )
    return stmt.order_by(TaskAssignee.sort_due, TaskAssignee.task_id).limit(limit + 1)


def page_query(
    *,
    sources: TaskSources,
    filters: TaskFilters,
    after: tuple[date, uuid.UUID] | None = None,
    limit: int = 50,
) -> PageQuery | None:
    """``SELECT sort_due, id`` of the next ``limit + 1`` tasks after ``after``; None when there is
    nothing to scan (e.g. scope "structure" for someone working at none).

    One round trip: each branch keeps its own ORDER BY / LIMIT (an index range scan); the database
    merges the branches (at most sources x statuses x (limit + 1) short rows; UNION drops a task found
    twice) and cuts the page. The columns are named, not taken from ``subquery().c``, which would
    rebuild a column collection per branch on every request.
    """
    branches: list[Select[date, uuid.UUID]] = []
    for status in filters.statuses or tuple(TaskStatus):
        if sources.patient_id is not None:
            of_patient = replace(filters, patient_id=sources.patient_id)  # _from_tasks filters on it
            branches.append(_from_tasks(None, status, of_patient, after, limit))
        if sources.theme_id is not None:
            of_theme = replace(filters, theme_id=sources.theme_id)  # _from_tasks filters on it
            branches.append(_from_tasks(None, status, of_theme, after, limit))
        if sources.creator is not None:
            branches.append(
                _from_tasks(Task.creator_national_id == sources.creator, status, filters, after, limit)
            )
        branches.extend(_from_assignees(k, status, filters, after, limit) for k in sources.assignee_keys)
    if not branches:
        return None
    if len(branches) == 1:
        return branches[0]
    due_col = literal_column("d", Task.sort_due.type)
    id_col = literal_column("i", Task.id.type)
    return (
        union(*(select(due_col, id_col).select_from(b.subquery()) for b in branches))
        .order_by(due_col, id_col)
        .limit(limit + 1)
    )


def _cut(rows: Iterable[tuple[date, uuid.UUID]], limit: int) -> tuple[list[uuid.UUID], str | None]:
    """The ids of the page (first ``limit`` distinct) and the cursor of the next page, if any."""
    picked: list[tuple[date, uuid.UUID]] = []
    seen: set[uuid.UUID] = set()
    for d, i in sorted(rows):
        if i not in seen:
            seen.add(i)
            picked.append((d, i))
    if len(picked) <= limit:
        return [i for _, i in picked], None
    last_due, last_id = picked[limit - 1]
    return [i for _, i in picked[:limit]], rules.task_cursor(last_due, last_id)


async def list_tasks(
    *,
    session: AsyncSession,
    actor: Actor,
    filters: TaskFilters,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[TaskOut]:
    """A page of the tasks matching ``filters`` that the actor may see, by due date (undated last).

    With ``patient_id`` the actor must be an authorised member; every patient whose tasks are returned
    is recorded in the audit trail. See ``sources_for`` for the scopes.
    """
    limit = max(1, min(limit, MAX_PAGE))
    after = rules.task_position(cursor)
    if filters.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=filters.patient_id)
    query = page_query(
        sources=sources_for(actor=actor, filters=filters), filters=filters, after=after, limit=limit
    )
    if query is None:
        return Page[TaskOut](items=[])
    ids, next_cursor = _cut((await session.execute(query)).tuples(), limit)
    if not ids:
        return Page[TaskOut](items=[])
    # One round trip for the tasks and their assignees (a page is at most 200 tasks).
    loaded = {
        t.id: t
        for t in (
            await session.scalars(select(Task).where(Task.id.in_(ids)).options(joinedload(Task.assignees)))
        )
        .unique()
        .all()
    }
    tasks = [loaded[i] for i in ids if i in loaded]
    items = await _read_models(session, tasks)
    patient_ids = sorted({t.patient_id for t in tasks if t.patient_id is not None})
    if patient_ids:
        await audit.record_many(
            session=session, actor=actor, action="task.list", object_type="task", patient_ids=patient_ids
        )
        await session.commit()
    return Page[TaskOut](items=items, next_cursor=next_cursor)


# --- writing ------------------------------------------------------------------------------------


async def _next_number(session: AsyncSession, scope: str) -> int:
    """The next short number of ``scope``: one atomic upsert (``INSERT … ON CONFLICT DO UPDATE …
    RETURNING``), in the caller's transaction, so a rolled-back creation gives its number back."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    statement = (
        insert(TaskNumberCounter)
        .values(scope=scope, last=1)
        .on_conflict_do_update(
            index_elements=[TaskNumberCounter.scope], set_={"last": TaskNumberCounter.last + 1}
        )
        .returning(TaskNumberCounter.last)
    )
    return int((await session.execute(statement)).scalar_one())


async def _check_theme(session: AsyncSession, data: TaskCreate) -> None:
    """A task is about a patient or a theme, never both; the theme must exist."""
    if data.theme_id is None:
        return
    if data.patient_id is not None:
        raise Invalid(
            "Une tâche concerne un patient ou un thème, pas les deux : retirez le patient (tâche du "
            "salon thématique) ou le thème (tâche du dossier).",
            field="theme_id",
        )
    if await session.scalar(select(ThemeRoom.id).where(ThemeRoom.id == data.theme_id)) is None:
        raise Invalid(
            "Ce thème n'existe pas : choisissez-en un dans la liste des thèmes (GET /api/v1/themes).",
            field="theme_id",
        )


async def create_task(*, session: AsyncSession, actor: Actor, data: TaskCreate) -> TaskOut:
    """Create a task. With a patient, the actor must be an authorised member and every assignee a
    habilité member of the circle. Assignees are notified ("task.assigned") when it commits."""
    if data.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=data.patient_id)
    await _check_theme(session, data)
    keys = await _validated_keys(
        session=session,
        patient_id=data.patient_id,
        national_ids=data.assignee_national_ids,
        structure_ids=data.assignee_structure_ids,
    )
    now = utcnow()
    due = rules.sort_due(data.due_date)
    scope = rules.number_scope(
        patient_id=data.patient_id, creator_national_id=actor.national_id, theme_id=data.theme_id
    )
    task = Task(
        id=uuid.uuid4(),
        number=await _next_number(session, scope),
        number_scope=scope,
        patient_id=data.patient_id,
        theme_id=data.theme_id,
        title=data.title,
        description=data.description,
        type=data.type.value,
        status=data.status.value,
        priority=data.priority.value if data.priority else None,
        due_date=data.due_date,
        sort_due=due,
        creator_user_id=actor.user_id,
        creator_national_id=actor.national_id,
        created_at=now,
        updated_at=now,
        completed_at=now if data.status == TaskStatus.TERMINEE else None,
    )
    task.assignees = [TaskAssignee(key=k, status=task.status, type=task.type, sort_due=due) for k in keys]
    session.add(task)
    await _record(session, actor, "task.created", task)
    await _emit_assigned(session, task, await _recipients(session, keys, actor), actor)
    # The answer is read before the commit: inside an idempotent request a read after it would open
    # (and roll back) one more savepoint.
    out = (await _read_models(session, [task]))[0]
    await session.commit()
    logger.info("task %s created by %s", task.id, actor.national_id)
    return out


_REQUIRED = {"title": "le titre", "type": "le type", "status": "le statut"}


def _refuse_nulls(changed: Mapping[str, Any]) -> None:
    """``null`` clears an optional field; these ones a task cannot do without."""
    for name, what in _REQUIRED.items():
        if name in changed and changed[name] is None:
            raise Invalid(
                f"Une tâche a toujours {what} : donnez une valeur, ou n'envoyez pas le champ « {name} ».",
                field=name,
            )


async def _party_task(session: AsyncSession, actor: Actor, task_id: TaskId) -> Task:
    """The task, if the actor may change it: its creator or an assignee, still authorised on the
    patient for a patient task."""
    task = await _visible(session, actor, task_id)
    is_party = task.creator_national_id == actor.national_id or bool(
        actor_keys(actor) & {a.key for a in task.assignees}
    )
    if not is_party:
        raise Forbidden(
            "Seuls l'auteur de la tâche et ses assignés peuvent la modifier : demandez-leur.",
            errcode=ErrCode.NOT_TASK_PARTY,
        )
    if task.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=task.patient_id)
    return task


async def _assignee_change(
    session: AsyncSession, task: Task, changed: Mapping[str, Any]
) -> tuple[set[str] | None, list[str]]:
    """(every wanted key, the newly added keys) when the body names assignees; (None, []) otherwise.

    Only the newly named assignees are checked: someone already assigned stays valid even if the rule
    would now refuse them (they are removed by naming the others, not by accident). ``null`` for a
    list means "none".
    """
    if "assignee_national_ids" not in changed and "assignee_structure_ids" not in changed:
        return None, []
    current = {a.key for a in task.assignees}
    cur_nids, cur_sids = rules.split_keys(current)
    nids = changed.get("assignee_national_ids", cur_nids) or []
    sids = changed.get("assignee_structure_ids", cur_sids) or []
    added = await _validated_keys(
        session=session,
        patient_id=task.patient_id,
        national_ids=[n for n in nids if rules.person_key(n) not in current],
        structure_ids=[s for s in sids if rules.structure_key(s) not in current],
    )
    return {rules.person_key(n) for n in nids} | {rules.structure_key(s) for s in sids}, added


def _apply(task: Task, changed: Mapping[str, Any], wanted: set[str] | None, added: Sequence[str]) -> None:
    """Write the changes on the task and keep the denormalised assignee copies in step (they serve the
    "assigned to" indexes)."""
    fields = {
        k: (v.value if isinstance(v, Enum) else v)
        for k, v in changed.items()
        if k not in ("assignee_national_ids", "assignee_structure_ids")
    }
    if "description" in fields and fields["description"] is None:
        fields["description"] = ""
    if "status" in fields and fields["status"] != task.status:
        task.completed_at = utcnow() if fields["status"] == TaskStatus.TERMINEE else None
    patch.apply(task, fields)
    task.sort_due = rules.sort_due(task.due_date)
    if wanted is not None:
        task.assignees = [a for a in task.assignees if a.key in wanted] + [
            TaskAssignee(key=k, status=task.status, type=task.type, sort_due=task.sort_due) for k in added
        ]
    for a in task.assignees:
        a.status, a.type, a.sort_due = task.status, task.type, task.sort_due
    task.updated_at = utcnow()


async def update_task(*, session: AsyncSession, actor: Actor, task_id: TaskId, data: TaskUpdate) -> TaskOut:
    """Change a task (creator or assignee), the ``coordination.patch`` way: only the fields sent, and
    ``null`` clears ``due_date`` / ``priority`` / ``description``. ``data.version`` must be the
    current version, else 409; newly added assignees are notified."""
    task = await _party_task(session, actor, task_id)
    if data.version != task.version:
        raise _stale()
    changed = patch.changes(data)
    _refuse_nulls(changed)
    # Every query comes before the first change, so the task row is written (and its version bumped)
    # exactly once, at commit.
    wanted, added = await _assignee_change(session, task, changed)
    recipients = await _recipients(session, added, actor) if added else []
    closing = changed.get("status") == TaskStatus.TERMINEE and task.status != TaskStatus.TERMINEE
    _apply(task, changed, wanted, added)
    await _record(session, actor, "task.updated", task)
    await _emit_assigned(session, task, recipients, actor)
    if closing and task.creator_user_id != actor.user_id:
        # Its creator hears that it is done (issue 9), not the one who closed it.
        await outbox.emit(
            session=session,
            recipients=[task.creator_user_id],
            event=TaskDone(
                task_id=TaskId(task.id),
                patient_id=PatientId(task.patient_id) if task.patient_id else None,
                done_by=actor.user_id,
            ),
        )
    await commit_or_conflict(session, on_stale=_stale())
    return (await _read_models(session, [task]))[0]


# --- for the other domains ------------------------------------------------------------------------
# Other domains read tasks through these (never the task tables); they check access and audit.


async def tasks_of_patient(*, session: AsyncSession, patient_id: PatientId) -> list[TaskOut]:
    """Every task about ``patient_id``, oldest first, unaudited: for a caller that has already
    required the actor's access and records its own audit entry (e.g. the FHIR export)."""
    rows = await session.scalars(
        select(Task)
        .where(Task.patient_id == patient_id)
        .options(selectinload(Task.assignees))
        .order_by(Task.created_at, Task.id)
    )
    return await _read_models(session, rows.all())
