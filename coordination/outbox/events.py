"""The events of the outbox: one pydantic model per kind, ``kind`` as the discriminator.

Emitters build one of these (``outbox.emit(event=TaskAssigned(...))``), the outbox stores its fields as
the row's JSON payload, and ``GET /api/v1/events`` answers them back as the ``Event`` union, which the
OpenAPI schema publishes so the bot reads typed events, not dicts.

Payloads carry identifiers and vocabulary codes only, never a patient's identity (name, birth date,
INS): the bot fetches what it may show through the API, as the recipient, so the access rule applies.
``tests/coordination/outbox`` checks every model against that rule. To add a kind: a model here, a
member of ``Event``, and a line in the tests' list of kinds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from coordination.ids import (
    AgendaId,
    AppointmentId,
    DocumentId,
    MemberId,
    NationalId,
    PatientId,
    RequestId,
    RoomId,
    StructureId,
    TaskId,
    UserId,
)
from coordination.vocab import AppointmentStatus, Decision, DocumentCategory, EventCategory, TaskType, Urgency


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    patient_id: PatientId | None = Field(default=None, description="The patient concerned, if any")


class CircleMemberAdded(_Event):
    """Someone joined a patient's care circle (told to the authorised members and the newcomer)."""

    kind: Literal["circle.member_added"] = "circle.member_added"
    patient_id: PatientId | None
    member_id: MemberId
    member_kind: str = Field(description="professional, structure or relative")
    national_id: NationalId | None = None
    structure_id: StructureId | None = None
    role: str | None = None
    habilite: bool
    added_by: str = Field(description="Matrix ID of the author, or « system »")


class TaskAssigned(_Event):
    """A task was assigned to the recipients (or to a structure they work at)."""

    kind: Literal["task.assigned"] = "task.assigned"
    task_id: TaskId
    type: TaskType
    assigned_by: UserId


class DocumentShared(_Event):
    """A document of a patient became visible to the recipients."""

    kind: Literal["document.shared"] = "document.shared"
    patient_id: PatientId | None
    document_id: DocumentId
    category: DocumentCategory


class RequestReceived(_Event):
    """A DAC received a request (told to its coordinators)."""

    kind: Literal["request.received"] = "request.received"
    request_id: RequestId
    dac_structure_id: StructureId
    urgency: Urgency
    # The DAC's own room when one is set (``dac_rooms``): announced there instead of a DM each.
    dac_room_id: RoomId | None = None


class RequestAnswered(_Event):
    """A DAC answered a request (told to the requester)."""

    kind: Literal["request.answered"] = "request.answered"
    request_id: RequestId
    dac_structure_id: StructureId
    decision: Decision | None
    patient_included: bool


class SynthesisUpdated(_Event):
    """A new version of the patient's synthesis text was saved (told to the authorised members)."""

    kind: Literal["synthesis.updated"] = "synthesis.updated"
    patient_id: PatientId | None
    version: int
    updated_by: UserId


class PlanUpdated(_Event):
    """A new version of the patient's coordination plan (PPCS) was saved (told to the authorised members)."""

    kind: Literal["plan.updated"] = "plan.updated"
    patient_id: PatientId | None
    version: int
    updated_by: UserId


class AppointmentBooked(_Event):
    """An appointment was booked, or requested for confirmation (``status`` says which); told to the
    agenda's managers, the booker and the participants, never to its author."""

    kind: Literal["appointment.booked"] = "appointment.booked"
    appointment_id: AppointmentId
    agenda_id: AgendaId
    category: EventCategory
    status: AppointmentStatus
    start: datetime = Field(description="UTC")
    booked_by: UserId


class AppointmentCancelled(_Event):
    """An appointment was cancelled or a request declined (told as ``AppointmentBooked``)."""

    kind: Literal["appointment.cancelled"] = "appointment.cancelled"
    appointment_id: AppointmentId
    agenda_id: AgendaId
    category: EventCategory
    start: datetime = Field(description="UTC")
    cancelled_by: UserId


class CircleMemberRemoved(_Event):
    """Someone left a patient's care circle (the bot removes them from the patient's rooms)."""

    kind: Literal["circle.member_removed"] = "circle.member_removed"
    patient_id: PatientId | None
    member_id: MemberId
    member_kind: str = Field(description="professional, structure or relative")
    national_id: NationalId | None = None
    structure_id: StructureId | None = None


class CircleMemberUpdated(_Event):
    """A circle member's role or habilitation changed (the bot brings the patient's rooms in step)."""

    kind: Literal["circle.member_updated"] = "circle.member_updated"
    patient_id: PatientId | None
    member_id: MemberId
    habilite: bool


class RoomRequested(_Event):
    """An authorised member asked for a new patient room: the bot creates it and links it on their
    behalf (``request_id`` keeps the creation single across bot restarts)."""

    kind: Literal["room.requested"] = "room.requested"
    patient_id: PatientId | None
    request_id: str = Field(max_length=64)
    requested_by: UserId


class RoomLinked(_Event):
    """A room was linked to a patient: from now on its members follow the care circle."""

    kind: Literal["room.linked"] = "room.linked"
    patient_id: PatientId | None
    room_id: RoomId
    linked_by: UserId


class TaskDone(_Event):
    """A task was closed (told to its creator)."""

    kind: Literal["task.done"] = "task.done"
    task_id: TaskId
    done_by: UserId


class RequestTaken(_Event):
    """A DAC coordinator took a request (told to the requester)."""

    kind: Literal["request.taken"] = "request.taken"
    request_id: RequestId
    dac_structure_id: StructureId


Event = Annotated[
    CircleMemberAdded
    | TaskAssigned
    | DocumentShared
    | RequestReceived
    | RequestAnswered
    | SynthesisUpdated
    | PlanUpdated
    | AppointmentBooked
    | AppointmentCancelled
    | CircleMemberRemoved
    | CircleMemberUpdated
    | RoomRequested
    | RoomLinked
    | TaskDone
    | RequestTaken,
    Field(discriminator="kind"),
]
"""Any outbox event; ``kind`` says which."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_MODELS: tuple[type[_Event], ...] = get_args(get_args(Event)[0])
EVENT_KINDS: tuple[str, ...] = tuple(str(m.model_fields["kind"].default) for m in EVENT_MODELS)
