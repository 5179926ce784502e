"""Request and answer bodies of the tasks API (the answers are also the service's read models)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, computed_field

from coordination import text
from coordination.ids import NationalId, PatientId, StructureId, TaskId, ThemeId, UserId
from coordination.vocab import TaskPriority, TaskStatus, TaskType

TaskScope = Literal["mine", "assigned", "created", "structure"]

Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=5000, pattern=text.PARAGRAPH_PATTERN),
    AfterValidator(text.nfc),
]
"""Free text that may be empty (``text.Paragraph5000`` requires one character)."""
NationalIdIn = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z]{2,20}$")]
StructureIdIn = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskCreate(_In):
    title: text.Line200 = Field(examples=["Organiser la concertation de sortie"])
    description: Description = ""
    type: TaskType
    patient_id: PatientId | None = Field(
        default=None, description="Le patient concerné ; les assignés sont alors des membres de son cercle"
    )
    theme_id: ThemeId | None = Field(
        default=None, description="Le thème (salon thématique) de la tâche ; jamais avec un patient"
    )
    assignee_national_ids: list[NationalIdIn] = Field(
        default_factory=list,
        max_length=50,
        description="Professionnels (idNatPS) ; avec un patient, membres habilités de son cercle de soins",
    )
    assignee_structure_ids: list[StructureIdIn] = Field(
        default_factory=list,
        max_length=50,
        description="Structures ; avec un patient, structures habilitées de son cercle de soins",
    )
    due_date: date | None = None
    priority: TaskPriority | None = None
    status: TaskStatus = TaskStatus.A_FAIRE


class TaskUpdate(_In):
    """A partial change (``coordination.patch``): fields left out are kept, ``null`` clears
    ``due_date``, ``priority`` or ``description``; ``version`` is the one you read (else 409)."""

    version: int = Field(ge=1, le=2**31 - 1)
    title: text.Line200 | None = None
    description: Description | None = None
    type: TaskType | None = None
    status: TaskStatus | None = None
    priority: TaskPriority | None = None
    due_date: date | None = None
    assignee_national_ids: list[NationalIdIn] | None = Field(
        default=None, max_length=50, description="Remplace les professionnels assignés"
    )
    assignee_structure_ids: list[StructureIdIn] | None = Field(
        default=None, max_length=50, description="Remplace les structures assignées"
    )


class AssigneeOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["professionnel", "structure"]
    national_id: NationalId | None = None
    structure_id: StructureId | None = None
    label: str = Field(description="Nom dans l'annuaire, pour l'affichage (« Dr Jeanne MARTIN »)")


class TaskOut(BaseModel):
    """A task as the service returns it (no ORM object leaves the service)."""

    model_config = ConfigDict(frozen=True)

    id: TaskId
    number: int = Field(
        description="N° court de la tâche (« !fait 12 ») : unique pour le patient, "
        "ou pour l'auteur d'une tâche sans patient"
    )
    version: int
    patient_id: PatientId | None
    theme_id: ThemeId | None = None
    title: str
    description: str
    type: TaskType
    status: TaskStatus
    priority: TaskPriority | None
    due_date: date | None
    creator_national_id: NationalId
    creator_user_id: UserId
    assignees: list[AssigneeOut]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def type_label(self) -> str:
        return self.type.label

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status_label(self) -> str:
        return self.status.label


class VocabularyEntry(BaseModel):
    code: str
    label: str


class TaskVocabulary(BaseModel):
    """The fixed lists, with their French labels (for forms and bot replies)."""

    types: list[VocabularyEntry]
    statuses: list[VocabularyEntry]
    priorities: list[VocabularyEntry]
