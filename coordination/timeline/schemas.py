"""Bodies of the timeline API: items, entered events and the complex-situation flag."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

from coordination import text
from coordination.ids import NationalId, PatientEventId, PatientId
from coordination.vocab import PatientEventKind, TimelineKind


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimelineItemOut(BaseModel):
    """One thing that happened to the patient's situation, from any source (``kind``)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    kind: TimelineKind
    title: str
    detail: str | None = None
    object_type: str = Field(
        description="evaluation, care_plan, request, event, task, document, situation, appointment"
    )
    object_id: str
    key: str = Field(description="Identifiant unique de l'élément dans la chronologie")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kind_label(self) -> str:
        return self.kind.label


class PatientEventIn(_In):
    """An event entered by a member (a hospitalisation, a discharge, a fall...)."""

    kind: PatientEventKind
    occurred_on: date = Field(
        ge=date(1900, 1, 1), le=date(2100, 12, 31), description="Le jour de l'événement"
    )
    title: text.Line200 = Field(examples=["Hospitalisation en gériatrie, CH de Nice"])
    note: text.Paragraph2000 | None = None


class PatientEventOut(BaseModel):
    id: PatientEventId
    patient_id: PatientId
    kind: PatientEventKind
    occurred_on: date
    title: str
    note: str
    created_by: NationalId
    created_at: datetime


class ComplexSituationIn(_In):
    """Flag (``flagged`` true, with the reason) or clear the complex situation."""

    flagged: bool
    reason: text.Line500 = Field(examples=["Polypathologie, aidante épuisée, isolement"])


class ComplexSituationOut(BaseModel):
    patient_id: PatientId
    flagged: bool
    reason: str | None
    flagged_by: NationalId | None
    flagged_by_name: str | None
    flagged_at: datetime | None


class BoardEntryOut(BaseModel):
    """A flagged patient on the DAC's board: who, why, since when, next review of the plan."""

    patient_id: PatientId
    display_name: str
    birth_date: date
    reason: str
    flagged_at: datetime
    next_review_date: date | None
    open_actions: int
