"""Every version of a patient's synthesis text; the newest is the current one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class SynthesisVersion(Base):
    """One saved version. ``(patient_id, version)`` is unique: two editors who read the same version
    cannot both save the next one (the second gets 409), so no edit is silently lost."""

    __tablename__ = "synthesis_versions"
    __table_args__ = (UniqueConstraint("patient_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    author_national_id: Mapped[str] = mapped_column(String(20))
    author_user_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
