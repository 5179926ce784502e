from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class OutboxEvent(Base):
    """An event written in the same transaction as the change it announces (transactional outbox)."""

    __tablename__ = "outbox_events"

    # Monotonic: the consumer's cursor is the last id it acknowledged.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(60))  # "task.assigned", "request.received", ...
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Matrix IDs to notify; payload carries identifiers and labels, never patient identity.
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConsumerCursor(Base):
    """Where each consumer (e.g. "bot") stands in the outbox."""

    __tablename__ = "outbox_cursors"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_acked_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
