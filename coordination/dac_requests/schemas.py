"""Request and answer bodies of the DAC requests API, and the read model services return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from coordination import text
from coordination.contact import Email, Phone
from coordination.ids import NationalId, PatientId, RequestId, RoomId, StructureId, UserId
from coordination.rooms.schemas import RoomIdStr
from coordination.text import Line200, Line300
from coordination.vocab import Decision, RequestStatus, Urgency

StructureIdStr = Annotated[
    StructureId, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")
]
# Free text that may be left empty: the shared paragraph rule (NFC, no control character but line
# breaks and tabs) with no minimum length.
OptionalParagraph = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=5000, pattern=text.PARAGRAPH_PATTERN),
    AfterValidator(text.nfc),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestCreate(_In):
    """Steps 1 and 2 of a new request; it starts as a draft (``brouillon``)."""

    dac_structure_id: StructureIdStr = Field(
        description="The DAC addressed: a directory structure marked as DAC", examples=["finess:060000099"]
    )
    patient_id: PatientId | None = Field(
        default=None, description="The patient concerned, if any (you must be an authorised member)"
    )
    reason: Line200 = Field(description="Motif de la demande", examples=["Situation complexe à domicile"])
    description: OptionalParagraph = ""
    urgency: Urgency = Urgency.NORMALE
    requester_structure_id: StructureIdStr | None = Field(
        default=None, description="The structure you act for: one where you work per the directory"
    )
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    actions: list[Line300] = Field(
        default_factory=list, max_length=30, description="Actions à mettre en place"
    )
    alerts: list[Line300] = Field(default_factory=list, max_length=30, description="Alertes identifiées")


class RequestUpdate(_In):
    """Changes to steps 1 and 2 while the request is a draft (``coordination.patch``: only the fields
    sent change; ``null`` clears an optional field)."""

    version: int = Field(ge=1)
    dac_structure_id: StructureIdStr | None = Field(default=None, description="Cannot be cleared")
    reason: Line200 | None = Field(default=None, description="Cannot be cleared")
    description: OptionalParagraph | None = Field(default=None, description="null clears it")
    urgency: Urgency | None = Field(default=None, description="Cannot be cleared")
    requester_structure_id: StructureIdStr | None = None
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    actions: list[Line300] | None = Field(default=None, max_length=30, description="null clears the list")
    alerts: list[Line300] | None = Field(default=None, max_length=30, description="null clears the list")


class VersionIn(_In):
    version: int = Field(ge=1, description="The version you read (else 409)")


class AnswerIn(_In):
    """Step 3, by a coordinator of the DAC: closes the request (``refusee`` when refused)."""

    version: int = Field(ge=1)
    decision: Decision
    comment: OptionalParagraph = ""
    include_patient: bool = Field(
        default=False,
        description="Include the patient in the DAC's follow-up: the DAC joins the care circle",
    )


class RequestOut(BaseModel):
    """A request as services return it (never the ORM row)."""

    id: RequestId
    version: int
    patient_id: PatientId | None
    dac_structure_id: StructureId
    dac_name: str
    status: RequestStatus
    status_label: str
    urgency: Urgency
    urgency_label: str
    reason: str
    description: str
    requester_user_id: UserId
    requester_national_id: NationalId
    requester_structure_id: StructureId | None
    contact_phone: str | None
    contact_email: str | None
    actions: list[str]
    alerts: list[str]
    decision: Decision | None
    decision_label: str | None
    answer_comment: str | None
    patient_included: bool
    taken_by_national_id: NationalId | None
    answered_by_national_id: NationalId | None
    created_at: datetime
    updated_at: datetime
    received_at: datetime
    sent_at: datetime | None
    taken_at: datetime | None
    answered_at: datetime | None
    cancelled_at: datetime | None
    age_days: int = Field(description="Whole days since the DAC received it (since creation for a draft)")


class DacRoomIn(_In):
    """The DAC's own room: a Matrix room ID (« !abc:serveur »), where the bot is a member."""

    room_id: RoomIdStr


class DacRoomOut(BaseModel):
    """Where the DAC's coordinators hear of new requests: its room, or (``room_id`` null) a direct
    message each."""

    structure_id: StructureId
    dac_name: str | None = None
    room_id: RoomId | None = None
    set_by_national_id: NationalId | None = None
    set_at: datetime | None = None
