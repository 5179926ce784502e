"""Agenda tables.

Availability is stored as the professional wrote it (an RFC 5545 RRULE on a local Europe/Paris start,
with EXDATE exceptions) and *materialised* into ``agenda_openings`` (availability minus unavailability,
in UTC) over a horizon whenever it changes, so that the region-wide "next free slot" search is one
index range scan ordered by start time rather than a recurrence expansion of every agenda per request;
the free slots themselves (openings cut on each bookable type's grid, minus appointments) are
materialised too, in ``agenda_free_slots``, so the search computes nothing per row.

No double booking: ``uq_appointments_active_start`` is a partial unique index on (agenda, start) for
the appointments that hold their slot (proposed or booked), on SQLite and PostgreSQL alike; overlaps
of different starts are refused by the service under a per-agenda lock (``SELECT ... FOR UPDATE`` on the
agenda row on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow
from coordination.patients import models as _patients  # noqa: F401  (the "patients" table we reference)

ACTIVE_STATUSES = ("propose", "reserve")
"""Appointment statuses that hold their slot (``AppointmentStatus.PROPOSE`` and ``RESERVE``)."""
_ACTIVE_SQL = "status IN ('propose', 'reserve')"


class Agenda(Base):
    """An agenda of a professional, a structure, or a structure's service/resource.

    ``profession_code``, ``specialty``, ``city``, ``postal_code`` and ``department`` are copied from the
    directory when the agenda is created, so the slot search filters on the agenda row alone; so are
    ``latitude`` and ``longitude``, the point of the commune of that postal code and city
    (``agenda.geo.locate``; NULL when they name no known commune: such an agenda is left out of a
    search by distance). ``ix_agendas_position`` serves the search's bounding box.
    """

    __tablename__ = "agendas"
    __table_args__ = (
        Index("ix_agendas_owner", "owner_national_id"),
        Index("ix_agendas_structure", "structure_id"),
        Index("ix_agendas_openings_until", "openings_until"),
        Index("ix_agendas_position", "latitude", "longitude"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    owner_kind: Mapped[str] = mapped_column(String(20))
    owner_national_id: Mapped[str | None] = mapped_column(String(20))
    structure_id: Mapped[str | None] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(20))
    booking: Mapped[str] = mapped_column(String(20))
    requires_confirmation: Mapped[bool] = mapped_column(Boolean, default=False)
    profession_code: Mapped[str | None] = mapped_column(String(10))
    specialty: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(120))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    department: Mapped[str | None] = mapped_column(String(3))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # SHA-256 of the ICS feed's secret (the secret itself is shown once); NULL: no feed.
    ics_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    openings_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)


class AgendaDelegate(Base):
    """A professional the owner lets manage the agenda (a secretary, a colleague)."""

    __tablename__ = "agenda_delegates"
    __table_args__ = (Index("ix_agenda_delegates_national_id", "national_id"),)

    agenda_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agendas.id", ondelete="CASCADE"), primary_key=True
    )
    national_id: Mapped[str] = mapped_column(String(20), primary_key=True)


class EventType(Base):
    """A kind of event of one agenda: consultation (30 min, bookable), team meeting (not bookable)..."""

    __tablename__ = "agenda_event_types"
    __table_args__ = (Index("ix_agenda_event_types_agenda", "agenda_id", "category"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    agenda_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agendas.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(30))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    colour: Mapped[str] = mapped_column(String(7))
    bookable: Mapped[bool] = mapped_column(Boolean)


class Availability(Base):
    """Recurring opening hours: ``start_local`` (Europe/Paris wall time, ``YYYY-MM-DDTHH:MM``) repeated
    by ``rrule`` (RFC 5545, no DTSTART; NULL: once), ``duration_minutes`` long, minus ``exdates``
    (local starts of cancelled occurrences). ``event_type_id`` NULL: open to every bookable type."""

    __tablename__ = "agenda_availabilities"
    __table_args__ = (Index("ix_agenda_availabilities_agenda", "agenda_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    agenda_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agendas.id", ondelete="CASCADE"))
    event_type_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agenda_event_types.id", ondelete="CASCADE")
    )
    start_local: Mapped[str] = mapped_column(String(16))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    rrule: Mapped[str | None] = mapped_column(String(500))
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    label: Mapped[str] = mapped_column(String(100), default="")


class Unavailability(Base):
    """A period the agenda is closed (holidays, training), in UTC; subtracted from the openings."""

    __tablename__ = "agenda_unavailabilities"
    __table_args__ = (Index("ix_agenda_unavailabilities_agenda", "agenda_id", "start_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    agenda_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agendas.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(200), default="")


class Opening(Base):
    """One materialised opening window (an availability occurrence minus unavailability), UTC.

    ``ix_agenda_openings_start`` (start_at, agenda_id) serves the region-wide search, in start order;
    ``ix_agenda_openings_agenda`` (agenda_id, start_at) one agenda's slots and planning.
    """

    __tablename__ = "agenda_openings"
    __table_args__ = (
        Index("ix_agenda_openings_start", "start_at", "agenda_id"),
        Index("ix_agenda_openings_agenda", "agenda_id", "start_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agenda_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agendas.id", ondelete="CASCADE"))
    event_type_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FreeSlot(Base):
    """One materialised free slot: a grid slot of a bookable event type in an opening, that no
    appointment holding its slot overlaps, UTC.

    Maintained in the transaction that changes what it derives from: availability, exceptions and
    unavailability (the agenda's slots are recomputed with its openings), a new bookable type, a
    booking (the overlapping slots of every type are deleted) and a cancelled, declined, done or
    no-show appointment (the slots of the openings around it are recomputed). The region-wide search
    is then one range scan of ``ix_agenda_free_slots_start`` in (start, agenda, type) order, with a
    limit, that reads no table page; ``(agenda_id, start_at, event_type_id)`` serves one agenda's slots.
    """

    __tablename__ = "agenda_free_slots"
    # end_at last: the index covers the row, so the start-ordered scan reads no table page (an
    # index-only scan on PostgreSQL): a selective filter (a city) walks ~40 entries per slot kept,
    # and those were as many random heap reads.
    __table_args__ = (
        Index("ix_agenda_free_slots_start", "start_at", "agenda_id", "event_type_id", "end_at"),
    )

    agenda_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agendas.id", ondelete="CASCADE"), primary_key=True
    )
    start_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    event_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agenda_event_types.id", ondelete="CASCADE"), primary_key=True
    )
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Appointment(Base):
    """An appointment in an agenda, optionally for a patient (booked by an authorised circle member)."""

    __tablename__ = "appointments"
    __table_args__ = (
        Index(
            "uq_appointments_active_start",
            "agenda_id",
            "start_at",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index("ix_appointments_agenda_start", "agenda_id", "start_at"),
        Index("ix_appointments_patient_start", "patient_id", "start_at"),
        Index("ix_appointments_booker_start", "booked_by_national_id", "start_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    agenda_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agendas.id", ondelete="CASCADE"))
    event_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agenda_event_types.id"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(12))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    # Participants besides the agenda: ``pp:<national id>`` or ``st:<structure id>``.
    participants: Mapped[list[str]] = mapped_column(JSON, default=list)
    booked_by_national_id: Mapped[str] = mapped_column(String(20))
    booked_by_user_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)
