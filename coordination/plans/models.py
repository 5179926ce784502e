"""The PPCS: the current plan of a patient, and every saved version of it."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow
from coordination.patients import models as _patients  # noqa: F401  (the "patients" table we reference)


class CarePlan(Base):
    """The living plan, one per patient (``patient_id`` unique). ``content`` holds the problems,
    objectives and actions (``schemas.PlanContent``); each save writes a ``CarePlanVersion`` too."""

    __tablename__ = "care_plans"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Optimistic concurrency: SQLAlchemy adds "WHERE version = <read>" to every UPDATE and bumps it.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), unique=True)
    status: Mapped[str] = mapped_column(String(12))  # vocab.PlanStatus
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    next_review_date: Mapped[date | None] = mapped_column(Date)
    review_task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)


class CarePlanVersion(Base):
    """A saved version of a plan (what it said, who saved it, when): the plan's history."""

    __tablename__ = "care_plan_versions"
    __table_args__ = (UniqueConstraint("patient_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    next_review_date: Mapped[date | None] = mapped_column(Date)
    saved_by: Mapped[str] = mapped_column(String(20))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
