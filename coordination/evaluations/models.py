"""Evaluations: one row per filled form, versioned while a draft, frozen once signed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow
from coordination.patients import models as _patients  # noqa: F401  (the "patients" table we reference)


class Evaluation(Base):
    """A form filled for a patient. ``answers`` maps each question's ``linkId`` to its typed value.

    ``ix_evaluations_patient_created`` serves the patient's history (newest first, keyset on
    ``(created_at, id)``). The score is computed by the service at every save (``rules.compute_score``),
    so readers never recompute it.
    """

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_patient_created", "patient_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Optimistic concurrency: SQLAlchemy adds "WHERE version = <read>" to every UPDATE and bumps it.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    form_id: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[str] = mapped_column(String(40))
    # The title when it was filled: the history reads the same even if the form file is renamed.
    form_title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12))  # vocab.EvaluationStatus
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float)
    score_label: Mapped[str | None] = mapped_column(String(200))
    score_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    signed_by: Mapped[str | None] = mapped_column(String(20))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)
