"""Request and answer bodies of the evaluations API (the answers are also the service's read models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from coordination.ids import EvaluationId, NationalId, PatientId
from coordination.vocab import EvaluationStatus

FormCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
AnswerValue = bool | int | float | Annotated[str, StringConstraints(max_length=5000)] | None
Answers = Annotated[
    dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]{1,64}$")], AnswerValue],
    Field(max_length=500, description="Réponses par linkId de question ; null efface une réponse"),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptionOut(BaseModel):
    code: str
    display: str
    ordinal: float | None = None


class ItemOut(BaseModel):
    link_id: str
    text: str
    type: str = Field(description="boolean, integer, decimal, string, text, date ou choice")
    required: bool
    section: str | None
    section_text: str | None
    options: list[OptionOut]


class FormSummaryOut(BaseModel):
    id: str
    version: str
    title: str
    description: str
    scoring: str = Field(description="aggir, sum ou none")


class FormOut(FormSummaryOut):
    """A form: its questions as the dashboard renders them, and the FHIR Questionnaire it comes from."""

    items: list[ItemOut]
    questionnaire: dict[str, Any] = Field(description="La ressource FHIR R4 Questionnaire")


class EvaluationCreate(_In):
    form_id: FormCode = Field(examples=["aggir"])
    answers: Answers = Field(default_factory=dict)
    sign: bool = Field(default=False, description="Signer tout de suite (toutes les questions requises)")


class EvaluationUpdate(_In):
    """Answers to change (merged into the draft: ``null`` clears one); ``sign`` signs the evaluation."""

    version: int = Field(ge=1, le=2**31 - 1)
    answers: Answers = Field(default_factory=dict)
    sign: bool = False


class EvaluationOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: EvaluationId
    version: int
    patient_id: PatientId
    form_id: str
    form_version: str
    form_title: str
    status: EvaluationStatus
    answers: dict[str, Any]
    score: float | None
    score_label: str | None
    score_details: dict[str, Any] | None
    created_by: NationalId
    created_at: datetime
    updated_by: NationalId
    updated_at: datetime
    signed_by: NationalId | None
    signed_by_name: str | None
    signed_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status_label(self) -> str:
        return self.status.label


class ScorePointOut(BaseModel):
    """One signed evaluation's score in the patient's history, with the change since the previous one
    of the same form (``None`` for the first)."""

    evaluation_id: EvaluationId
    form_id: str
    form_title: str
    signed_at: datetime
    score: float
    score_label: str
    change: float | None
