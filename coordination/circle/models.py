"""Care-circle members: directory professionals, directory structures, and relatives typed by hand."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class CircleMember(Base):
    """One member of a patient's circle.

    ``kind`` is "professional" (``national_id`` set), "structure" (``structure_id`` set) or "relative"
    (name and contact typed by hand; never ``habilite``: a relative never reads the dossier).
    """

    __tablename__ = "circle_members"
    __table_args__ = (
        UniqueConstraint("patient_id", "national_id", name="uq_circle_members_patient_person"),
        UniqueConstraint("patient_id", "structure_id", name="uq_circle_members_patient_structure"),
        Index("ix_circle_members_national_id", "national_id"),
        Index("ix_circle_members_structure_id", "structure_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    national_id: Mapped[str | None] = mapped_column(String(20))
    structure_id: Mapped[str | None] = mapped_column(String(80))
    relative_name: Mapped[str | None] = mapped_column(String(200))
    relationship: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(60))
    habilite: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Who added the member: a national id, or "system" when a DAC inclusion added it.
    added_by: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(200))
