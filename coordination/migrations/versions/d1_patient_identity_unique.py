"""Duplicate detection that holds under concurrency: one patient row per identity key and rank.

Adds ``patients.homonym_rank`` and the unique index ``uq_patients_identity`` on (normalised birth
name, normalised first birth first name, birth date, rank). Dossiers that concurrent creations already
duplicated (issue 6, item 3) are kept: they get ranks 0, 1, 2... in creation order, and every one of
them the ``homonyme`` attribute, so their identity is provisoire until someone resolves it (RNIV).

Revision ID: d1_patient_identity_unique
Revises: f6_task_numbers
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d1_patient_identity_unique"
down_revision: str | None = "f6_task_numbers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "search_birth_name, search_first_given_name, birth_date"


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN and CREATE UNIQUE INDEX: no table rebuild on SQLite, which could
    # not drop "patients" while tasks, documents or requests reference it.
    op.add_column("patients", sa.Column("homonym_rank", sa.Integer(), server_default="0", nullable=False))
    # UPDATE ... FROM and window functions: SQLite >= 3.33 and PostgreSQL.
    op.execute(
        f"""
        UPDATE patients
        SET homonym_rank = ranked.rank, homonyme = TRUE, identity_status = 'provisoire'
        FROM (
            SELECT id,
                   ROW_NUMBER() OVER (PARTITION BY {KEY} ORDER BY created_at, id) - 1 AS rank,
                   COUNT(*) OVER (PARTITION BY {KEY}) AS same
            FROM patients
        ) AS ranked
        WHERE patients.id = ranked.id AND ranked.same > 1
        """
    )
    op.create_index(
        "uq_patients_identity",
        "patients",
        ["search_birth_name", "search_first_given_name", "birth_date", "homonym_rank"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_patients_identity", table_name="patients")
    op.execute("ALTER TABLE patients DROP COLUMN homonym_rank")  # SQLite >= 3.35: no rebuild either
