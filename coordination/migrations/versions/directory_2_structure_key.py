"""directory: the structures' key compared byte by byte on PostgreSQL, as the activities' structure

Revision ID: directory_2_structure_key
Revises: directory_1_bytewise_keys
Create Date: 2026-11-30 12:50:00

``directory_1_bytewise_keys`` gave ``directory_activities.structure_id`` collation "C" but left
``directory_structures.structure_id`` in the database's: PostgreSQL makes their join in "C", where the
structures' primary key index (in the other collation) cannot serve it, so every person card read all
1.7 million structures of a liberal extract (226 ms a query instead of a few index look-ups). The key
takes "C" too; PostgreSQL rebuilds its index and keeps the foreign keys that reference it (theirs stay
in the database's collation: joins from them to the structures are made in "C" and use this index).
"""

from collections.abc import Sequence

from coordination.migrations.versions.directory_1_bytewise_keys import set_collation

revision: str = "directory_2_structure_key"
down_revision: str | None = "directory_1_bytewise_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("directory_structures", "structure_id", 80),)


def upgrade() -> None:
    set_collation(_COLUMNS, "C")


def downgrade() -> None:
    set_collation(_COLUMNS, None)
