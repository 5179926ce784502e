"""Task tables, shaped for the list queries (see ``service.list_tasks`` for which index serves which).

Every list is ordered by ``(sort_due, id)`` and paginated by keyset on that pair, so each list query is a
range scan of one composite index that stops after ``limit`` rows, whatever the table size.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, select
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coordination.db import Base, UTCDateTime, utcnow
from coordination.patients import models as _patients  # noqa: F401  (the "patients" table we reference)
from coordination.rooms import models as _rooms  # noqa: F401  (the "theme_rooms" table we reference)


class Task(Base):
    """A task, optionally about a patient.

    Indexes:
    - ``ix_tasks_patient_status_due`` (patient_id, status, sort_due, id): a patient's tasks, by status.
    - ``ix_tasks_creator_status_due`` (creator_national_id, status, sort_due, id): "tasks I created".
    - ``ix_tasks_creator_type_status_due`` (creator_national_id, type, status, sort_due, id): the same,
      of one type. Without it a type filter walks every task of the creator in that status (thousands
      for a busy coordinator) to fill one page.
    - ``ix_tasks_theme_status_due`` (theme_id, status, sort_due, id): a thematic room's tasks.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_patient_status_due", "patient_id", "status", "sort_due", "id"),
        Index("ix_tasks_creator_status_due", "creator_national_id", "status", "sort_due", "id"),
        Index("ix_tasks_creator_type_status_due", "creator_national_id", "type", "status", "sort_due", "id"),
        Index("ix_tasks_theme_status_due", "theme_id", "status", "sort_due", "id"),
        UniqueConstraint("number_scope", "number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Optimistic concurrency: SQLAlchemy adds "WHERE version = <read>" to every UPDATE and bumps it.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    # A task of a thematic room (``!tache`` there): never with a patient (the theme is open to every
    # professional of the directory, a patient's tasks only to its circle).
    theme_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("theme_rooms.id", ondelete="SET NULL"))
    # The short number people type (« !fait 12 »): unique per patient, or per creator for a task with
    # no patient (``number_scope``), given at creation from ``TaskNumberCounter``, never reused.
    number: Mapped[int] = mapped_column(Integer)
    number_scope: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12))
    priority: Mapped[str | None] = mapped_column(String(10))
    due_date: Mapped[date | None] = mapped_column(Date)
    # ``due_date`` or 9999-12-31 when there is none: a NOT NULL sort key keeps keyset pagination simple
    # and puts undated tasks last on every backend.
    sort_due: Mapped[date] = mapped_column(Date)
    creator_user_id: Mapped[str] = mapped_column(String(255))
    creator_national_id: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    assignees: Mapped[list[TaskAssignee]] = relationship(
        back_populates="task", cascade="all, delete-orphan", lazy="raise", order_by="TaskAssignee.key"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)


def _task_type(context: DefaultExecutionContext) -> str | None:
    """Default of ``TaskAssignee.type``: its task's (the service sets it; this covers other writers)."""
    task_id = context.get_current_parameters()["task_id"]  # type: ignore[no-untyped-call]
    task_type: str | None = context.connection.scalar(select(Task.type).where(Task.id == task_id))
    return task_type


class TaskAssignee(Base):
    """One assignee of a task: ``pp:<national id>`` (a professional) or ``st:<structure id>``.

    ``status``, ``type`` and ``sort_due`` are copies of the task's, kept in step by the service (the only
    writer), so that "tasks assigned to X" is one range scan of ``ix_task_assignees_key_status_due``
    (key, status, sort_due, task_id), or of ``ix_task_assignees_key_type_status_due`` (key, type,
    status, sort_due, task_id) for one type, with no sort and no join before the limit.
    """

    __tablename__ = "task_assignees"
    __table_args__ = (
        Index("ix_task_assignees_key_status_due", "key", "status", "sort_due", "task_id"),
        Index("ix_task_assignees_key_type_status_due", "key", "type", "status", "sort_due", "task_id"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(90), primary_key=True)
    status: Mapped[str] = mapped_column(String(12))
    type: Mapped[str] = mapped_column(String(40), default=_task_type)
    sort_due: Mapped[date] = mapped_column(Date)

    task: Mapped[Task] = relationship(back_populates="assignees", lazy="raise")


class TaskNumberCounter(Base):
    """The last short number given in a scope (``patient:<id>`` or ``creator:<national id>``).

    Bumped with one atomic upsert, so concurrent creations in a scope get distinct numbers without
    retries (the row lock serialises them on PostgreSQL; SQLite has a single writer)."""

    __tablename__ = "task_number_counters"

    scope: Mapped[str] = mapped_column(String(60), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
