"""directory: search keys and the activities' structure compared byte by byte on PostgreSQL

Revision ID: directory_1_bytewise_keys
Revises: agenda_3_geo
Create Date: 2026-11-30 08:30:00

Collation "C" for the directory's indexed search keys, FINESS numbers and activity structures
(``coordination.directory.models._bytewise``): their indexes build from byte comparisons instead of the
locale's. PostgreSQL rebuilds the four indexes concerned; SQLite has nothing to change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "directory_1_bytewise_keys"
down_revision: str | None = "agenda_3_geo"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("directory_persons", "search_name", 400),
    ("directory_structures", "search_name", 300),
    ("directory_structures", "finess", 20),
    ("directory_activities", "structure_id", 80),
)


def set_collation(columns: Sequence[tuple[str, str, int]], collation: str | None) -> None:
    """Give ``(table, column, length)`` text columns ``collation`` (None: the database's) on
    PostgreSQL; SQLite has nothing to change. Also used by ``directory_2_structure_key``."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in columns:
        op.alter_column(
            table,
            column,
            type_=sa.String(length, collation=collation),
            existing_type=sa.String(length),
        )


def upgrade() -> None:
    set_collation(_COLUMNS, "C")


def downgrade() -> None:
    set_collation(_COLUMNS, None)
