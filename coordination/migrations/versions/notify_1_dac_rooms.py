"""The DAC's own room (issue 9: "DAC request sent -> the DAC's own room when one is configured").

Revision ID: notify_1_dac_rooms
Revises: agenda_1_tables
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from coordination.db import UTCDateTime

revision: str = "notify_1_dac_rooms"
down_revision: str | None = "agenda_1_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dac_rooms",
        sa.Column("structure_id", sa.String(length=80), nullable=False),
        sa.Column("room_id", sa.String(length=255), nullable=False),
        sa.Column("set_by", sa.String(length=20), nullable=False),
        sa.Column("set_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["directory_structures.structure_id"],
            name=op.f("fk_dac_rooms_structure_id_directory_structures"),
        ),
        sa.PrimaryKeyConstraint("structure_id", name=op.f("pk_dac_rooms")),
        sa.UniqueConstraint("room_id", name=op.f("uq_dac_rooms_room_id")),
    )


def downgrade() -> None:
    op.drop_table("dac_rooms")
