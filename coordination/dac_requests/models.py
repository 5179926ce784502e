"""The ``dac_requests`` table: one request to a DAC, its three steps and its lifecycle timestamps."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow
from coordination.directory import models as _directory  # noqa: F401  (referenced tables)
from coordination.patients import models as _patients  # noqa: F401


class DacRequest(Base):
    """A request addressed to a DAC.

    Indexes:
    - ``ix_dac_requests_dac_status`` (dac_structure_id, status, received_at): a DAC's dashboard.
    - ``ix_dac_requests_requester`` (requester_national_id, received_at): "my requests".
    - ``ix_dac_requests_patient`` (patient_id): a patient's requests.
    """

    __tablename__ = "dac_requests"
    __table_args__ = (
        Index("ix_dac_requests_dac_status", "dac_structure_id", "status", "received_at"),
        Index("ix_dac_requests_requester", "requester_national_id", "received_at"),
        Index("ix_dac_requests_patient", "patient_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Optimistic concurrency: SQLAlchemy adds "WHERE version = <read>" to every UPDATE and bumps it.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    dac_structure_id: Mapped[str] = mapped_column(ForeignKey("directory_structures.structure_id"))
    status: Mapped[str] = mapped_column(String(12))

    # Step 1: the request and the requester.
    reason: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    urgency: Mapped[str] = mapped_column(String(14))
    requester_user_id: Mapped[str] = mapped_column(String(255))
    requester_national_id: Mapped[str] = mapped_column(String(20))
    requester_structure_id: Mapped[str | None] = mapped_column(String(80))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    contact_email: Mapped[str | None] = mapped_column(String(254))

    # Step 2: actions to set up, alerts identified.
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    alerts: Mapped[list[str]] = mapped_column(JSON, default=list)

    # Step 3: the DAC's answer.
    decision: Mapped[str | None] = mapped_column(String(12))
    answer_comment: Mapped[str | None] = mapped_column(Text)
    patient_included: Mapped[bool] = mapped_column(Boolean, default=False)
    taken_by_national_id: Mapped[str | None] = mapped_column(String(20))
    answered_by_national_id: Mapped[str | None] = mapped_column(String(20))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the DAC received it (sending time); the creation time while a draft. Ages count from it.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)


class DacRoom(Base):
    """The DAC's own room: "request.received" is posted there (once, mentioning its coordinators)
    instead of a direct message to each. Set by one of its coordinators (``!dac salon`` in the room,
    or ``PUT /api/v1/dacs/{structure_id}/room``); one room per DAC, and a room serves one DAC."""

    __tablename__ = "dac_rooms"

    structure_id: Mapped[str] = mapped_column(
        ForeignKey("directory_structures.structure_id"), primary_key=True
    )
    room_id: Mapped[str] = mapped_column(String(255), unique=True)
    set_by: Mapped[str] = mapped_column(String(20))  # the coordinator's national id
    set_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
