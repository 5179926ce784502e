"""Bodies of the PPCS API. The plan's content (problems, objectives, actions) is stored as this JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, computed_field

from coordination import text
from coordination.ids import AppointmentId, NationalId, PatientId, TaskId
from coordination.vocab import AppointmentStatus, PlanActionStatus, PlanStatus, TaskStatus

ItemId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_\-]{1,40}$")]
FreeText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=5000, pattern=text.PARAGRAPH_PATTERN),
    AfterValidator(text.nfc),
]
"""Free text that may be empty."""
NationalIdIn = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z]{2,20}$")]
StructureIdIn = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemIn(_In):
    """A problem or need of the patient (HAS: « problèmes / besoins »)."""

    id: ItemId | None = Field(default=None, description="Absent pour un nouveau problème")
    title: text.Line300
    detail: FreeText = ""


class ObjectiveIn(_In):
    id: ItemId | None = None
    problem_id: ItemId | None = Field(default=None, description="Le problème auquel l'objectif répond")
    title: text.Line300


class ActionIn(_In):
    """An action: who is responsible (a habilité professional or structure of the circle, or someone
    named in ``responsible_other``: the patient, a relative), by when, where it stands."""

    id: ItemId | None = None
    objective_id: ItemId | None = None
    title: text.Line300
    responsible_national_id: NationalIdIn | None = None
    responsible_structure_id: StructureIdIn | None = None
    responsible_other: text.Line200 | None = Field(default=None, examples=["Mme Durand, fille (aidante)"])
    deadline: date | None = Field(default=None, ge=date(2000, 1, 1), le=date(2100, 12, 31))
    status: PlanActionStatus = PlanActionStatus.A_FAIRE
    create_task: bool = Field(
        default=False,
        description="Créer la tâche correspondante (assignée au responsable) si elle n'existe pas",
    )
    appointment_id: AppointmentId | None = Field(
        default=None,
        description="Un rendez-vous du patient (agenda) qui réalise l'action ; absent : aucun",
    )


class PlanIn(_In):
    """The whole plan as it must now read (it replaces the current version ``version``; 0 for the
    first). Items keep their ``id``; new ones get one."""

    version: int = Field(ge=0, le=2**31 - 1, description="La version lue (0 s'il n'y a pas encore de plan)")
    status: PlanStatus = PlanStatus.EN_COURS
    situation: FreeText = Field(default="", description="Synthèse de la situation")
    patient_wishes: FreeText = Field(default="", description="Attentes et souhaits de la personne")
    problems: list[ProblemIn] = Field(default_factory=list, max_length=100)
    objectives: list[ObjectiveIn] = Field(default_factory=list, max_length=100)
    actions: list[ActionIn] = Field(default_factory=list, max_length=200)
    next_review_date: date | None = Field(
        default=None,
        ge=date(2000, 1, 1),
        le=date(2100, 12, 31),
        description="Date de révision : une tâche de rappel est créée pour l'auteur",
    )


class ProblemOut(BaseModel):
    id: str
    title: str
    detail: str


class ObjectiveOut(BaseModel):
    id: str
    problem_id: str | None
    title: str


class ActionOut(BaseModel):
    id: str
    objective_id: str | None
    title: str
    responsible_national_id: NationalId | None
    responsible_structure_id: str | None
    responsible_other: str | None
    responsible_label: str | None = Field(default=None, description="Nom à afficher du responsable")
    deadline: date | None
    status: PlanActionStatus
    task_id: TaskId | None
    task_number: int | None = None
    task_status: TaskStatus | None = None
    appointment_id: AppointmentId | None = None
    appointment_start: datetime | None = Field(default=None, description="Début du rendez-vous lié")
    appointment_status: AppointmentStatus | None = None
    appointment_label: str | None = Field(
        default=None, description="Type et agenda du rendez-vous lié", examples=["Consultation (Dr Martin)"]
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status_label(self) -> str:
        return self.status.label

    @computed_field  # type: ignore[prop-decorator]
    @property
    def appointment_status_label(self) -> str | None:
        return self.appointment_status.label if self.appointment_status else None


class PlanOut(BaseModel):
    """The current plan (version 0 and empty lists when none was written yet)."""

    patient_id: PatientId
    version: int
    status: PlanStatus
    situation: str
    patient_wishes: str
    problems: list[ProblemOut]
    objectives: list[ObjectiveOut]
    actions: list[ActionOut]
    next_review_date: date | None
    review_task_id: TaskId | None
    updated_by: NationalId | None
    updated_by_name: str | None
    updated_at: datetime | None


class PlanVersionOut(BaseModel):
    version: int
    status: PlanStatus
    saved_by: NationalId
    saved_by_name: str | None
    saved_at: datetime
    next_review_date: date | None
    open_actions: int
