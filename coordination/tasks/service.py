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
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    exists,
    literal_column,
    select,
    tuple_,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, joinedload, selectinload

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle.models import CircleMember
from coordination.db import commit_or_conflict, utcnow
from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound
from coordination.ids import PatientId, StructureId, TaskId
from coordination.outbox import service as outbox
from coordination.security import Actor
from coordination.tasks import rules
from coordination.tasks.models import Task, TaskAssignee
from coordination.tasks.schemas import TaskCreate, TaskScope, TaskUpdate

logger = logging.getLogger(__name__)

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """Filters of ``list_tasks``. ``patient_id`` alone lists the patient's tasks; ``scope`` alone the
    actor's own; both together intersect. ``statuses`` empty means every status."""

    scope: TaskScope | None = None
    patient_id: PatientId | None = None
    structure_id: StructureId | None = None
    statuses: tuple[str, ...] = ()
    type: str | None = None
    assignee_national_id: str | None = None
    assignee_structure_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskPageResult:
    tasks: list[Task]
    next_cursor: str | None


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


# --- directory look-ups (read-only) -------------------------------------------------------------


async def _labels(
    session: AsyncSession, national_ids: Iterable[str], structure_ids: Iterable[str]
) -> dict[str, str]:
    """Display names by assignee key, in two small queries."""
    out: dict[str, str] = {}
    nids = set(national_ids)
    sids = set(structure_ids)
    if nids:
        for nid, given, family in (
            await session.execute(
                select(Person.national_id, Person.given_name, Person.family_name).where(
                    Person.national_id.in_(nids)
                )
            )
        ).all():
            out[rules.person_key(nid)] = f"{given} {family}".strip()
    if sids:
        for sid, name in (
            await session.execute(
                select(Structure.structure_id, Structure.name).where(Structure.structure_id.in_(sids))
            )
        ).all():
            out[rules.structure_key(sid)] = name
    return out


async def matrix_ids_for_keys(*, session: AsyncSession, keys: Iterable[str]) -> list[str]:
    """Matrix IDs to notify for assignee keys: the professional's bound account, and every active,
    bound professional working at an assigned structure."""
    nids = {k[3:] for k in keys if k.startswith("pp:")}
    sids = {k[3:] for k in keys if k.startswith("st:")}
    users: set[str] = set()
    if nids:
        users.update(
            (
                await session.scalars(
                    select(AccountBinding.user_id)
                    .join(Person, Person.national_id == AccountBinding.national_id)
                    .where(AccountBinding.national_id.in_(nids), Person.active.is_(True))
                )
            ).all()
        )
    if sids:
        users.update(
            (
                await session.scalars(
                    select(AccountBinding.user_id)
                    .join(Person, Person.national_id == AccountBinding.national_id)
                    .join(Activity, Activity.national_id == Person.national_id)
                    .where(Activity.structure_id.in_(sids), Person.active.is_(True))
                    .distinct()
                )
            ).all()
        )
    return sorted(users)


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
    nids = sorted(set(national_ids))
    sids = sorted(set(structure_ids))
    if patient_id is not None:
        ok_n: set[str] = set()
        ok_s: set[str] = set()
        if nids:
            ok_n = {
                n
                for n in (
                    await session.scalars(
                        select(CircleMember.national_id).where(
                            CircleMember.patient_id == patient_id,
                            CircleMember.habilite.is_(True),
                            CircleMember.national_id.in_(nids),
                        )
                    )
                ).all()
                if n is not None
            }
        if sids:
            ok_s = {
                s
                for s in (
                    await session.scalars(
                        select(CircleMember.structure_id).where(
                            CircleMember.patient_id == patient_id,
                            CircleMember.habilite.is_(True),
                            CircleMember.structure_id.in_(sids),
                        )
                    )
                ).all()
                if s is not None
            }
        bad = [n for n in nids if n not in ok_n] + [s for s in sids if s not in ok_s]
        if bad:
            raise Invalid(
                "Assignation impossible : " + ", ".join(bad) + " ne fait pas partie des membres "
                "habilités du cercle de soins de ce patient. Ajoutez-le au cercle (habilité) ou "
                "choisissez un autre membre.",
                field="assignees",
            )
    else:
        ok_n = set(
            (
                await session.scalars(
                    select(Person.national_id).where(Person.national_id.in_(nids), Person.active.is_(True))
                )
            ).all()
            if nids
            else []
        )
        ok_s = set(
            (
                await session.scalars(
                    select(Structure.structure_id).where(
                        Structure.structure_id.in_(sids), Structure.active.is_(True)
                    )
                )
            ).all()
            if sids
            else []
        )
        bad = [n for n in nids if n not in ok_n] + [s for s in sids if s not in ok_s]
        if bad:
            raise Invalid(
                "Assignation impossible : " + ", ".join(bad) + " n'est pas un professionnel ou une "
                "structure active de l'annuaire. Vérifiez l'identifiant.",
                field="assignees",
            )
    return [rules.person_key(n) for n in nids] + [rules.structure_key(s) for s in sids]


# --- reading ------------------------------------------------------------------------------------


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
    return False


async def labels_for(*, session: AsyncSession, tasks: Sequence[Task]) -> dict[str, str]:
    """Display names of every assignee of ``tasks`` (for the answers)."""
    keys = {a.key for t in tasks for a in t.assignees}
    return await _labels(
        session,
        (k[3:] for k in keys if k.startswith("pp:")),
        (k[3:] for k in keys if k.startswith("st:")),
    )


async def get_task(*, session: AsyncSession, actor: Actor, task_id: TaskId) -> Task:
    """One task the actor may see (404 otherwise, without telling whether it exists). Audited when it
    is about a patient."""
    task = await _load(session, task_id)
    if task is None or not await _can_see(session, actor, task):
        raise _not_found()
    if task.patient_id is not None:
        await audit.record(
            session=session,
            actor=actor,
            action="task.read",
            object_type="task",
            object_id=task.id,
            patient_id=task.patient_id,
        )
        await session.commit()
    return task


def _keyset(
    sort_col: QueryableAttribute[date],
    id_col: QueryableAttribute[uuid.UUID],
    after: tuple[date, uuid.UUID] | None,
) -> ColumnElement[bool] | None:
    if after is None:
        return None
    return tuple_(sort_col, id_col) > tuple_(after[0], after[1])


async def list_tasks(
    *,
    session: AsyncSession,
    actor: Actor,
    filters: TaskFilters,
    limit: int = 50,
    cursor: str | None = None,
) -> TaskPageResult:
    """A page of the tasks matching ``filters`` that the actor may see, by due date (undated last).

    Without ``patient_id`` the scope defaults to "mine" (assigned to me or created by me); "structure"
    lists tasks assigned to my structures (or to ``structure_id``, which must be one of mine). With
    ``patient_id`` the actor must be an authorised member; every patient whose tasks are returned is
    recorded in the audit trail.
    """
    limit = max(1, min(limit, MAX_PAGE))
    after = rules.decode_cursor(cursor) if cursor else None
    statuses = filters.statuses or tuple(rules.TASK_STATUSES)
    scope = filters.scope
    if filters.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=filters.patient_id)
    elif scope is None:
        scope = "mine"

    # Filters that every source applies on the task row.
    task_conds: list[ColumnElement[bool]] = []
    if filters.type is not None:
        task_conds.append(Task.type == filters.type)
    if filters.patient_id is not None:
        task_conds.append(Task.patient_id == filters.patient_id)
    wanted_keys = []
    if filters.assignee_national_id:
        wanted_keys.append(rules.person_key(filters.assignee_national_id))
    if filters.assignee_structure_id:
        wanted_keys.append(rules.structure_key(filters.assignee_structure_id))

    def assigned_to(key_col: QueryableAttribute[uuid.UUID]) -> list[ColumnElement[bool]]:
        other = TaskAssignee.__table__.alias("wanted")
        return [exists().where(other.c.task_id == key_col, other.c.key == k) for k in wanted_keys]

    stmts: list[Select[date, uuid.UUID]] = []

    def from_tasks(where: ColumnElement[bool], status: str) -> None:
        stmt = select(Task.sort_due.label("d"), Task.id.label("i")).where(
            where, Task.status == status, *task_conds
        )
        stmt = stmt.where(*assigned_to(Task.id))
        ks = _keyset(Task.sort_due, Task.id, after)
        if ks is not None:
            stmt = stmt.where(ks)
        stmts.append(stmt.order_by(Task.sort_due, Task.id).limit(limit + 1))

    def from_assignees(key: str, status: str) -> None:
        stmt = select(TaskAssignee.sort_due.label("d"), TaskAssignee.task_id.label("i")).where(
            TaskAssignee.key == key, TaskAssignee.status == status
        )
        # The type is copied on the assignee row (served by ix_task_assignees_key_type_status_due);
        # only a patient filter needs the task row.
        if filters.type is not None:
            stmt = stmt.where(TaskAssignee.type == filters.type)
        if filters.patient_id is not None:
            stmt = stmt.join(Task, Task.id == TaskAssignee.task_id).where(
                Task.patient_id == filters.patient_id
            )
        stmt = stmt.where(*assigned_to(TaskAssignee.task_id))
        ks = _keyset(TaskAssignee.sort_due, TaskAssignee.task_id, after)
        if ks is not None:
            stmt = stmt.where(ks)
        stmts.append(stmt.order_by(TaskAssignee.sort_due, TaskAssignee.task_id).limit(limit + 1))

    for status in statuses:
        if scope is None:
            assert filters.patient_id is not None
            from_tasks(Task.patient_id == filters.patient_id, status)
            continue
        if scope in ("mine", "assigned"):
            from_assignees(rules.person_key(actor.national_id), status)
        if scope in ("mine", "created"):
            from_tasks(Task.creator_national_id == actor.national_id, status)
        if scope == "structure":
            if filters.structure_id is not None:
                if filters.structure_id not in actor.structure_ids:
                    raise Forbidden(
                        "Vous n'exercez pas dans cette structure selon l'annuaire : vous ne pouvez "
                        "pas consulter ses tâches. Choisissez l'une de vos structures.",
                        errcode=ErrCode.NOT_YOUR_STRUCTURE,
                    )
                structures: Iterable[str] = [filters.structure_id]
            else:
                structures = sorted(actor.structure_ids)
            for sid in structures:
                from_assignees(rules.structure_key(sid), status)

    # One round trip: each branch keeps its own ORDER BY / LIMIT (an index range scan); the database
    # merges the branches (at most sources x (limit + 1) short rows, UNION drops a task found twice)
    # and cuts the page, so only limit + 1 rows come back to Python. The columns are named, not taken
    # from ``subquery().c``, which would rebuild a column collection per branch on every request.
    if len(stmts) == 1:
        combined: Select[date, uuid.UUID] | CompoundSelect[date, uuid.UUID] = stmts[0]
    else:
        due_col = literal_column("d", Task.sort_due.type)
        id_col = literal_column("i", Task.id.type)
        combined = (
            union(*(select(due_col, id_col).select_from(stmt.subquery()) for stmt in stmts))
            .order_by(due_col, id_col)
            .limit(limit + 1)
        )
    rows = sorted((d, i) for d, i in (await session.execute(combined)).all())
    picked: list[tuple[date, uuid.UUID]] = []
    seen: set[uuid.UUID] = set()
    for d, i in rows:
        if i in seen:
            continue
        seen.add(i)
        picked.append((d, i))
        if len(picked) > limit:
            break
    next_cursor = None
    if len(picked) > limit:
        picked = picked[:limit]
        last_due, last_id = picked[-1]
        next_cursor = rules.encode_cursor(last_due, last_id)
    ids = [i for _, i in picked]
    if not ids:
        return TaskPageResult(tasks=[], next_cursor=None)
    loaded = {
        t.id: t
        for t in (
            # One round trip for the tasks and their assignees (a page is at most 200 tasks).
            await session.scalars(select(Task).where(Task.id.in_(ids)).options(joinedload(Task.assignees)))
        )
        .unique()
        .all()
    }
    tasks = [loaded[i] for i in ids if i in loaded]
    patient_ids = sorted({t.patient_id for t in tasks if t.patient_id is not None})
    if patient_ids:
        await audit.record_many(
            session=session, actor=actor, action="task.list", object_type="task", patient_ids=patient_ids
        )
        await session.commit()
    return TaskPageResult(tasks=tasks, next_cursor=next_cursor)


# --- writing ------------------------------------------------------------------------------------


async def _recipients(session: AsyncSession, keys: Iterable[str], actor: Actor) -> list[str]:
    """Who to tell about an assignment: everyone the keys designate, except the actor."""
    return [u for u in await matrix_ids_for_keys(session=session, keys=keys) if u != actor.user_id]


async def _emit_assigned(session: AsyncSession, task: Task, recipients: Sequence[str], actor: Actor) -> None:
    if recipients:
        await outbox.emit(
            session=session,
            kind="task.assigned",
            recipients=recipients,
            payload={
                "task_id": str(task.id),
                "patient_id": str(task.patient_id) if task.patient_id else None,
                "type": task.type,
                "assigned_by": actor.user_id,
            },
            patient_id=task.patient_id,
        )


async def create_task(*, session: AsyncSession, actor: Actor, data: TaskCreate) -> Task:
    """Create a task. With a patient, the actor must be an authorised member and every assignee a
    habilité member of the circle. Assignees are notified ("task.assigned") when it commits."""
    if data.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=data.patient_id)
    keys = await _validated_keys(
        session=session,
        patient_id=data.patient_id,
        national_ids=data.assignee_national_ids,
        structure_ids=data.assignee_structure_ids,
    )
    now = utcnow()
    due = rules.sort_due(data.due_date)
    task = Task(
        id=uuid.uuid4(),
        patient_id=data.patient_id,
        title=data.title,
        description=data.description,
        type=data.type,
        status=data.status,
        priority=data.priority,
        due_date=data.due_date,
        sort_due=due,
        creator_user_id=actor.user_id,
        creator_national_id=actor.national_id,
        created_at=now,
        updated_at=now,
        completed_at=now if data.status == "terminée" else None,
    )
    task.assignees = [TaskAssignee(key=k, status=task.status, type=task.type, sort_due=due) for k in keys]
    session.add(task)
    if task.patient_id is not None:
        await audit.record(
            session=session,
            actor=actor,
            action="task.created",
            object_type="task",
            object_id=task.id,
            patient_id=task.patient_id,
        )
    await _emit_assigned(session, task, await _recipients(session, keys, actor), actor)
    await session.commit()
    logger.info("task %s created by %s", task.id, actor.national_id)
    return task


async def update_task(*, session: AsyncSession, actor: Actor, task_id: TaskId, data: TaskUpdate) -> Task:
    """Change a task (creator or assignee). ``data.version`` must be the current version, else 409;
    newly added assignees are notified."""
    task = await _load(session, task_id)
    if task is None or not await _can_see(session, actor, task):
        raise _not_found()
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
    if data.version != task.version:
        raise _stale()

    # Every query comes before the first change, so the task row is written (and its version
    # bumped) exactly once, at commit.
    added: list[str] = []
    wanted: set[str] | None = None
    if data.assignee_national_ids is not None or data.assignee_structure_ids is not None:
        current = {a.key for a in task.assignees}
        nids = (
            data.assignee_national_ids
            if data.assignee_national_ids is not None
            else [k[3:] for k in current if k.startswith("pp:")]
        )
        sids = (
            data.assignee_structure_ids
            if data.assignee_structure_ids is not None
            else [k[3:] for k in current if k.startswith("st:")]
        )
        # Only the newly named assignees are checked: someone already assigned stays valid even if
        # the rule would now refuse them (they are removed by naming the others, not by accident).
        new_nids = [n for n in nids if rules.person_key(n) not in current]
        new_sids = [s for s in sids if rules.structure_key(s) not in current]
        added = await _validated_keys(
            session=session, patient_id=task.patient_id, national_ids=new_nids, structure_ids=new_sids
        )
        wanted = {rules.person_key(n) for n in nids} | {rules.structure_key(s) for s in sids}
    recipients = await _recipients(session, added, actor) if added else []

    if data.title is not None:
        task.title = data.title
    if data.description is not None:
        task.description = data.description
    if data.type is not None:
        task.type = data.type
    if data.priority is not None:
        task.priority = data.priority
    if data.clear_due_date:
        task.due_date = None
    elif data.due_date is not None:
        task.due_date = data.due_date
    task.sort_due = rules.sort_due(task.due_date)
    if data.status is not None and data.status != task.status:
        task.status = data.status
        task.completed_at = utcnow() if data.status == "terminée" else None
    if wanted is not None:
        task.assignees = [a for a in task.assignees if a.key in wanted] + [
            TaskAssignee(key=k, status=task.status, type=task.type, sort_due=task.sort_due) for k in added
        ]
    # Keep the denormalised copies in step (they serve the "assigned to" indexes).
    for a in task.assignees:
        a.status = task.status
        a.type = task.type
        a.sort_due = task.sort_due
    task.updated_at = utcnow()
    if task.patient_id is not None:
        await audit.record(
            session=session,
            actor=actor,
            action="task.updated",
            object_type="task",
            object_id=task.id,
            patient_id=task.patient_id,
        )
    await _emit_assigned(session, task, recipients, actor)
    await commit_or_conflict(session, on_stale=_stale())
    return task
