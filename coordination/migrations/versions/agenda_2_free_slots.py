"""agenda: materialised free slots (the next-free-slot search reads them in start order)

Revision ID: agenda_2_free_slots
Revises: notify_1_dac_rooms
Create Date: 2026-11-29 21:50:00

The table is filled for the agendas that already have openings, from their openings, bookable types
and active appointments (the same computation as the service's, ``agenda.rules.materialised_slots``).
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import coordination.db
from coordination.agenda import rules

revision: str = "agenda_2_free_slots"
down_revision: str | None = "notify_1_dac_rooms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    free = op.create_table(
        "agenda_free_slots",
        sa.Column("agenda_id", sa.Uuid(), nullable=False),
        sa.Column("start_at", coordination.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_type_id", sa.Uuid(), nullable=False),
        sa.Column("end_at", coordination.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agenda_id"],
            ["agendas.id"],
            name=op.f("fk_agenda_free_slots_agenda_id_agendas"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_type_id"],
            ["agenda_event_types.id"],
            name=op.f("fk_agenda_free_slots_event_type_id_agenda_event_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agenda_id", "start_at", "event_type_id", name=op.f("pk_agenda_free_slots")),
    )
    with op.batch_alter_table("agenda_free_slots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agenda_free_slots_start", ["start_at", "agenda_id", "event_type_id", "end_at"], unique=False
        )
    with op.batch_alter_table("agendas", schema=None) as batch_op:
        batch_op.create_index("ix_agendas_openings_until", ["openings_until"], unique=False)
    _fill(free)


def _fill(free: sa.Table) -> None:
    """Materialise the free slots of the agendas that have openings."""
    bind = op.get_bind()
    meta = sa.MetaData()
    openings = sa.Table(
        "agenda_openings",
        meta,
        sa.Column("agenda_id", sa.Uuid()),
        sa.Column("event_type_id", sa.Uuid()),
        sa.Column("start_at", coordination.db.UTCDateTime(timezone=True)),
        sa.Column("end_at", coordination.db.UTCDateTime(timezone=True)),
    )
    types = sa.Table(
        "agenda_event_types",
        meta,
        sa.Column("id", sa.Uuid()),
        sa.Column("agenda_id", sa.Uuid()),
        sa.Column("duration_minutes", sa.Integer()),
        sa.Column("bookable", sa.Boolean()),
    )
    appointments = sa.Table(
        "appointments",
        meta,
        sa.Column("agenda_id", sa.Uuid()),
        sa.Column("start_at", coordination.db.UTCDateTime(timezone=True)),
        sa.Column("end_at", coordination.db.UTCDateTime(timezone=True)),
        sa.Column("status", sa.String(12)),
    )
    by_agenda: dict[uuid.UUID, list[tuple[uuid.UUID | None, datetime, datetime]]] = defaultdict(list)
    for row in bind.execute(
        sa.select(openings.c.agenda_id, openings.c.event_type_id, openings.c.start_at, openings.c.end_at)
    ):
        by_agenda[row[0]].append((row[1], row[2], row[3]))
    bookable: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = defaultdict(list)
    for row in bind.execute(
        sa.select(types.c.agenda_id, types.c.id, types.c.duration_minutes).where(types.c.bookable.is_(True))
    ):
        bookable[row[0]].append((row[1], row[2]))
    busy: dict[uuid.UUID, list[rules.Interval]] = defaultdict(list)
    for row in bind.execute(
        sa.select(appointments.c.agenda_id, appointments.c.start_at, appointments.c.end_at).where(
            appointments.c.status.in_(("propose", "reserve"))
        )
    ):
        busy[row[0]].append((row[1], row[2]))
    for agenda_id, agenda_openings in by_agenda.items():
        rows = [
            {"agenda_id": agenda_id, "event_type_id": type_id, "start_at": start, "end_at": end}
            for type_id, start, end in rules.materialised_slots(
                openings=agenda_openings, types=bookable[agenda_id], busy=busy[agenda_id]
            )
        ]
        for i in range(0, len(rows), 5000):
            bind.execute(sa.insert(free), rows[i : i + 5000])


def downgrade() -> None:
    with op.batch_alter_table("agendas", schema=None) as batch_op:
        batch_op.drop_index("ix_agendas_openings_until")
    with op.batch_alter_table("agenda_free_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_agenda_free_slots_start")
    op.drop_table("agenda_free_slots")
