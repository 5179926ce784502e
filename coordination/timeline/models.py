"""Events entered on a patient's timeline (hospitalisations, discharges...) and the complex-situation flag."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow
from coordination.patients import models as _patients  # noqa: F401  (the "patients" table we reference)


class PatientEvent(Base):
    """An event a member entered (``vocab.PatientEventKind``), on the day it happened."""

    __tablename__ = "patient_events"
    __table_args__ = (Index("ix_patient_events_patient_at", "patient_id", "occurred_on"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(30))
    occurred_on: Mapped[date] = mapped_column(Date)
    title: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ComplexSituation(Base):
    """The complex-situation flag of a patient (one row per patient; cleared rows stay, ``flagged``
    false, so the board's history and the audit agree)."""

    __tablename__ = "complex_situations"
    __table_args__ = (Index("ix_complex_situations_flagged", "flagged", "flagged_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    flagged: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(500))
    flagged_by: Mapped[str] = mapped_column(String(20))
    flagged_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
