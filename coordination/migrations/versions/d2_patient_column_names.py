"""Patient columns named like the API fields (issue 7: API field names equal column names).

``birth_given_names`` -> ``birth_first_names``, ``first_birth_given_name`` -> ``first_birth_first_name``,
``birthplace_code`` -> ``birth_place_code``, ``used_given_name`` -> ``used_first_name``. ``ALTER TABLE ...
RENAME COLUMN`` keeps the data and the indexes on SQLite (>= 3.25) and PostgreSQL alike.

Revision ID: d2_patient_column_names
Revises: d1_patient_identity_unique
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d2_patient_column_names"
down_revision: str | None = "d1_patient_identity_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = {
    "birth_given_names": "birth_first_names",
    "first_birth_given_name": "first_birth_first_name",
    "birthplace_code": "birth_place_code",
    "used_given_name": "used_first_name",
}


def upgrade() -> None:
    for old, new in RENAMES.items():
        op.execute(f"ALTER TABLE patients RENAME COLUMN {old} TO {new}")


def downgrade() -> None:
    for old, new in RENAMES.items():
        op.execute(f"ALTER TABLE patients RENAME COLUMN {new} TO {old}")
