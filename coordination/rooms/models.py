"""Which Matrix room is about which patient or theme. A room is about one thing at most."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class PatientRoom(Base):
    """A room linked to a patient dossier (the room ID is the key: one patient per room)."""

    __tablename__ = "patient_rooms"

    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    linked_by: Mapped[str] = mapped_column(String(20))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ThemeRoom(Base):
    """A thematic room ("vaccination covid", "soins non programmés"), open to any professional."""

    __tablename__ = "theme_rooms"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    room_id: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
