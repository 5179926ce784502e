"""Request and answer bodies of the tasks API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from coordination.tasks.rules import TASK_PRIORITIES, TASK_STATUSES, TASK_TYPES, canonical

TaskType = Annotated[
    Literal[
        "concertation_pluriprofessionnelle",
        "visite",
        "appel",
        "evaluation",
        "soins",
        "rendez_vous",
        "administratif",
        "autre",
    ],
    BeforeValidator(lambda v: canonical(v, TASK_TYPES)),
]
TaskStatus = Annotated[
    Literal["à_faire", "en_cours", "terminée", "annulée"],
    BeforeValidator(lambda v: canonical(v, TASK_STATUSES)),
]
TaskPriority = Annotated[
    Literal["basse", "normale", "haute"], BeforeValidator(lambda v: canonical(v, TASK_PRIORITIES))
]
TaskScope = Literal["mine", "assigned", "created", "structure"]

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
NationalIdStr = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z]{2,20}$")]
StructureIdStr = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskCreate(_In):
    title: Title = Field(examples=["Organiser la concertation de sortie"])
    description: Description = ""
    type: TaskType
    patient_id: uuid.UUID | None = Field(
        default=None, description="The patient the task is about; assignees must then be in its circle"
    )
    assignee_national_ids: list[NationalIdStr] = Field(
        default_factory=list,
        max_length=50,
        description="Professionals (idNatPS); with a patient, habilité members of its care circle",
    )
    assignee_structure_ids: list[StructureIdStr] = Field(
        default_factory=list,
        max_length=50,
        description="Structures; with a patient, habilité structures of its care circle",
    )
    due_date: date | None = None
    priority: TaskPriority | None = None
    status: TaskStatus = "à_faire"


class TaskUpdate(_In):
    """Fields to change; absent fields keep their value. ``version`` is the one you read (else 409)."""

    version: int = Field(ge=1)
    title: Title | None = None
    description: Description | None = None
    type: TaskType | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    due_date: date | None = None
    clear_due_date: bool = Field(default=False, description="Remove the due date")
    assignee_national_ids: list[NationalIdStr] | None = Field(
        default=None, max_length=50, description="Replaces the professional assignees when given"
    )
    assignee_structure_ids: list[StructureIdStr] | None = Field(
        default=None, max_length=50, description="Replaces the structure assignees when given"
    )


class AssigneeOut(BaseModel):
    kind: Literal["professionnel", "structure"]
    national_id: str | None = None
    structure_id: str | None = None
    label: str = Field(description="Name from the directory, for display")


class TaskOut(BaseModel):
    id: uuid.UUID
    version: int
    patient_id: uuid.UUID | None
    title: str
    description: str
    type: str
    type_label: str
    status: str
    status_label: str
    priority: str | None
    due_date: date | None
    creator_national_id: str
    creator_user_id: str
    assignees: list[AssigneeOut]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` to get the next page; null on the last page"
    )


class VocabularyEntry(BaseModel):
    code: str
    label: str


class TaskVocabulary(BaseModel):
    """The fixed lists, with their French labels (for forms and bot replies)."""

    types: list[VocabularyEntry]
    statuses: list[VocabularyEntry]
    priorities: list[VocabularyEntry]
