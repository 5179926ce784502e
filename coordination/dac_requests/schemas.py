"""Request and answer bodies of the DAC requests API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from coordination.dac_requests.rules import DECISIONS, REQUEST_STATUSES, URGENCIES
from coordination.tasks.rules import canonical

RequestStatus = Annotated[
    Literal["brouillon", "envoyée", "en_cours", "clôturée", "refusée", "annulée"],
    BeforeValidator(lambda v: canonical(v, REQUEST_STATUSES)),
]
Urgency = Annotated[
    Literal["normale", "urgente", "très_urgente"],
    BeforeValidator(lambda v: canonical(v, URGENCIES)),
]
Decision = Annotated[
    Literal["acceptée", "réorientée", "refusée", "information"],
    BeforeValidator(lambda v: canonical(v, DECISIONS)),
]

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=5000)]
Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
StructureIdStr = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 .()\-]{4,30}$", max_length=40)
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestCreate(_In):
    """Steps 1 and 2 of a new request; it starts as a draft (``brouillon``)."""

    dac_structure_id: StructureIdStr = Field(
        description="The DAC addressed: a directory structure marked as DAC", examples=["finess:060000099"]
    )
    patient_id: uuid.UUID | None = Field(
        default=None, description="The patient concerned, if any (you must be an authorised member)"
    )
    reason: Reason = Field(description="Motif de la demande", examples=["Situation complexe à domicile"])
    description: LongText = ""
    urgency: Urgency = "normale"
    requester_structure_id: StructureIdStr | None = Field(
        default=None, description="The structure you act for: one where you work per the directory"
    )
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    actions: list[Item] = Field(default_factory=list, max_length=30, description="Actions à mettre en place")
    alerts: list[Item] = Field(default_factory=list, max_length=30, description="Alertes identifiées")


class RequestUpdate(_In):
    """Changes to steps 1 and 2 while the request is a draft; absent fields keep their value."""

    version: int = Field(ge=1)
    dac_structure_id: StructureIdStr | None = None
    reason: Reason | None = None
    description: LongText | None = None
    urgency: Urgency | None = None
    requester_structure_id: StructureIdStr | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    actions: list[Item] | None = Field(default=None, max_length=30)
    alerts: list[Item] | None = Field(default=None, max_length=30)


class VersionIn(_In):
    version: int = Field(ge=1, description="The version you read (else 409)")


class AnswerIn(_In):
    """Step 3, by a coordinator of the DAC: closes the request (``refusée`` when refused)."""

    version: int = Field(ge=1)
    decision: Decision
    comment: LongText = ""
    include_patient: bool = Field(
        default=False,
        description="Include the patient in the DAC's follow-up: the DAC joins the care circle",
    )


class RequestOut(BaseModel):
    id: uuid.UUID
    version: int
    patient_id: uuid.UUID | None
    dac_structure_id: str
    dac_name: str
    status: str
    status_label: str
    urgency: str
    urgency_label: str
    reason: str
    description: str
    requester_user_id: str
    requester_national_id: str
    requester_structure_id: str | None
    contact_phone: str | None
    contact_email: str | None
    actions: list[str]
    alerts: list[str]
    decision: str | None
    decision_label: str | None
    answer_comment: str | None
    patient_included: bool
    taken_by_national_id: str | None
    answered_by_national_id: str | None
    created_at: datetime
    updated_at: datetime
    received_at: datetime
    sent_at: datetime | None
    taken_at: datetime | None
    answered_at: datetime | None
    cancelled_at: datetime | None
    age_days: int = Field(description="Whole days since the DAC received it (since creation for a draft)")


class RequestPage(BaseModel):
    items: list[RequestOut]
    next_offset: int | None = Field(description="Pass as ``offset`` for the next page; null at the end")
