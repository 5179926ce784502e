"""Dashboard pages of tasks: mine, my structure's, filters; create, assign, close."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from coordination.db import SessionDep
from coordination.directory import service as directory
from coordination.errors import ServiceError
from coordination.ids import PatientId, StructureId, TaskId
from coordination.security import Actor
from coordination.tasks import service as tasks
from coordination.tasks.schemas import TaskCreate, TaskUpdate
from coordination.validation import french_validation_message
from coordination.vocab import TaskPriority, TaskStatus, TaskType
from coordination.web.deps import FormActor, PageActor, flash
from coordination.web.templating import render

router = APIRouter(prefix="/app/taches", include_in_schema=False)

SCOPES = {
    "mine": "Mes tâches",
    "assigned": "Assignées à moi",
    "created": "Créées par moi",
    "structure": "De ma structure",
}
_LABELS = {
    "title": "Titre",
    "type": "Type",
    "due_date": "Échéance",
    "priority": "Priorité",
    "assignee_national_ids": "Assigné(s)",
    "description": "Description",
    "patient_id": "Patient",
}


def _back(form: dict[str, str]) -> RedirectResponse:
    """Back to the patient page when the form came from there, else to the task list."""
    retour = form.get("retour", "")
    try:
        return RedirectResponse(f"/app/patients/{uuid.UUID(retour)}#taches", status_code=303)
    except ValueError:
        return RedirectResponse("/app/taches", status_code=303)


def _details(exc: ValidationError) -> str:
    return "; ".join(
        f"{_LABELS.get(str(e['loc'][0]), str(e['loc'][0]))} : {french_validation_message(dict(e))}"
        for e in exc.errors()
    )


def _ids(value: str) -> list[str]:
    return [p for p in value.replace(",", " ").split() if p]


@router.get("")
async def task_list(
    request: Request,
    actor: PageActor,
    db: SessionDep,
    portee: Annotated[str, Query(max_length=20)] = "mine",
    statut: Annotated[TaskStatus | None, Query()] = None,
    type: Annotated[TaskType | None, Query()] = None,
    assigne: Annotated[str | None, Query(max_length=20)] = None,
    patient: Annotated[PatientId | None, Query()] = None,
    curseur: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    scope = portee if portee in SCOPES else "mine"
    statuses = (statut,) if statut else (TaskStatus.A_FAIRE, TaskStatus.EN_COURS)
    page = await tasks.list_tasks(
        session=db,
        actor=actor,
        filters=tasks.TaskFilters(
            # A patient chosen: every task of that patient (the circle check is the service's).
            scope=None if patient else scope,  # type: ignore[arg-type]
            patient_id=patient,
            statuses=statuses,
            type=type,
            assignee_national_id=assigne or None,  # type: ignore[arg-type]
        ),
        limit=50,
        cursor=curseur,
    )
    names = await directory.display_names(
        session=db, national_ids={t.creator_national_id for t in page.items}
    )
    filters: dict[str, Any] = {
        "portee": scope,
        "statut": statut.value if statut else "",
        "type": type.value if type else "",
        "assigne": assigne or "",
        "patient": str(patient) if patient else "",
    }
    return render(
        request,
        "tasks/list.html",
        {
            "page": page,
            "scopes": SCOPES,
            "filters": filters,
            "statuses": TaskStatus,
            "types": TaskType,
            "priorities": TaskPriority,
            "names": names,
            "my_structures": sorted(actor.structure_ids),
        },
    )


@router.post("")
async def create(request: Request, actor: FormActor, db: SessionDep) -> Response:
    """Create a task, for a patient (assignees from the circle) or on its own."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    data: dict[str, Any] = {
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "type": form.get("type", ""),
        "assignee_national_ids": _ids(form.get("assignee_national_ids", "")),
        "assignee_structure_ids": _ids(form.get("assignee_structure_ids", "")),
        "due_date": form.get("due_date") or None,
        "priority": form.get("priority") or None,
    }
    if form.get("patient_id"):
        data["patient_id"] = form["patient_id"]
    try:
        created = await tasks.create_task(session=db, actor=actor, data=TaskCreate.model_validate(data))
    except ValidationError as exc:
        await flash(request, db, f"Tâche non créée — {_details(exc)}.", kind="erreur")
        return _back(form)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(form)
    await flash(request, db, f"Tâche n° {created.number} « {created.title} » créée.")
    return _back(form)


async def _update(
    request: Request,
    actor: Actor,
    db: SessionDep,
    task_id: TaskId,
    change: Callable[[dict[str, str]], dict[str, Any]],
    done: str,
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        data = TaskUpdate.model_validate({"version": form.get("version"), **change(form)})
        await tasks.update_task(session=db, actor=actor, task_id=task_id, data=data)
    except ValidationError as exc:
        await flash(request, db, f"Tâche non modifiée — {_details(exc)}.", kind="erreur")
        return _back(form)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(form)
    await flash(request, db, done)
    return _back(form)


@router.post("/{task_id}/assigner")
async def assign(request: Request, task_id: TaskId, actor: FormActor, db: SessionDep) -> Response:
    """Replace the assignees (national ids and/or structures)."""

    def change(form: dict[str, str]) -> dict[str, Any]:
        return {
            "assignee_national_ids": _ids(form.get("assignee_national_ids", "")),
            "assignee_structure_ids": [StructureId(s) for s in _ids(form.get("assignee_structure_ids", ""))],
        }

    return await _update(request, actor, db, task_id, change, "Assignation enregistrée.")


@router.post("/{task_id}/cloturer")
async def close(request: Request, task_id: TaskId, actor: FormActor, db: SessionDep) -> Response:
    """Mark the task as done."""
    return await _update(
        request, actor, db, task_id, lambda _f: {"status": TaskStatus.TERMINEE}, "Tâche terminée."
    )
