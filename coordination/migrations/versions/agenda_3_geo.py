"""agenda: the agendas' coordinates (the slot search by distance from a commune)

Revision ID: agenda_3_geo
Revises: agenda_2_free_slots
Create Date: 2026-11-30 01:30:00

The existing agendas get the point of the commune their postal code and city name (copied from the
directory) designate, with the service's own function (``agenda.geo.locate``); those that name no
known commune keep NULL and are left out of searches by distance.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from coordination.agenda import geo

revision: str = "agenda_3_geo"
down_revision: str | None = "agenda_2_free_slots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agendas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("longitude", sa.Float(), nullable=True))
        batch_op.create_index("ix_agendas_position", ["latitude", "longitude"], unique=False)
    _fill()


def _fill() -> None:
    bind = op.get_bind()
    agendas = sa.Table(
        "agendas",
        sa.MetaData(),
        sa.Column("id", sa.Uuid()),
        sa.Column("city", sa.String(120)),
        sa.Column("postal_code", sa.String(10)),
        sa.Column("latitude", sa.Float()),
        sa.Column("longitude", sa.Float()),
    )
    places = bind.execute(
        sa.select(agendas.c.id, agendas.c.postal_code, agendas.c.city).where(
            sa.or_(agendas.c.postal_code.is_not(None), agendas.c.city.is_not(None))
        )
    ).all()
    rows = []
    for agenda_id, postal_code, city in places:
        commune = geo.locate(postal_code, city)
        if commune is not None:
            rows.append({"key": agenda_id, "lat": commune.latitude, "lon": commune.longitude})
    statement = (
        sa.update(agendas)
        .where(agendas.c.id == sa.bindparam("key"))
        .values(latitude=sa.bindparam("lat"), longitude=sa.bindparam("lon"))
    )
    for i in range(0, len(rows), 1000):
        bind.execute(statement, rows[i : i + 1000])


def downgrade() -> None:
    with op.batch_alter_table("agendas", schema=None) as batch_op:
        batch_op.drop_index("ix_agendas_position")
        batch_op.drop_column("longitude")
        batch_op.drop_column("latitude")
