"""Bodies of the outbox API (read by the coordination bot)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coordination.ids import UserId
from coordination.outbox.events import Event

MAX_CURSOR = 2**31 - 1  # event ids are 32-bit integers on PostgreSQL


class EventOut(BaseModel):
    """One stored event: where it stands in the outbox, who to tell, and the typed event."""

    id: int = Field(description="Monotonic; the idempotency key of the consumer's handler")
    created_at: datetime
    recipients: list[UserId] = Field(description="Matrix IDs to notify")
    event: Event


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to: int = Field(ge=0, le=MAX_CURSOR, description="Acknowledge every event up to this id")


class AckOut(BaseModel):
    cursor: int = Field(description="The consumer's acknowledged cursor after this call")
