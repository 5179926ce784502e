"""Bodies of the outbox API (read by the coordination bot)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_CURSOR = 2**31 - 1  # event ids are 32-bit integers on PostgreSQL


class EventOut(BaseModel):
    """One event. Payloads carry identifiers and labels only, never a patient's identity."""

    id: int = Field(description="Monotonic; the idempotency key of the consumer's handler")
    created_at: datetime
    kind: str = Field(examples=["circle.member_added"])
    patient_id: uuid.UUID | None = None
    recipients: list[str] = Field(description="Matrix IDs to notify")
    payload: dict[str, Any]


class EventPageOut(BaseModel):
    after: int = Field(description="The cursor this page starts after")
    events: list[EventOut]
    last_id: int | None = Field(default=None, description="The id to acknowledge once handled")


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to: int = Field(ge=0, le=MAX_CURSOR, description="Acknowledge every event up to this id")


class AckOut(BaseModel):
    cursor: int = Field(description="The consumer's acknowledged cursor after this call")
