from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """One access to patient data. Never updated nor deleted (the service has no code path for it)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_patient_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_user_id: Mapped[str] = mapped_column(String(255))
    actor_national_id: Mapped[str] = mapped_column(String(20))
    via_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    action: Mapped[str] = mapped_column(String(60))  # e.g. "patient.read", "circle.member_added"
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))
