"""Short task numbers (« !fait 12 »): unique per patient, or per creator for tasks without a patient.

Existing tasks are numbered in creation order within their scope, and each scope's counter starts
after its highest number.

Revision ID: f6_task_numbers
Revises: e5_synthesis_versions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f6_task_numbers"
down_revision: str | None = "e5_synthesis_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = (
    "CASE WHEN patient_id IS NOT NULL THEN 'patient:' || {patient} "
    "ELSE 'creator:' || creator_national_id END"
)


def upgrade() -> None:
    op.create_table(
        "task_number_counters",
        sa.Column("scope", sa.String(length=60), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_task_number_counters")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("number_scope", sa.String(length=60), nullable=True))

    dialect = op.get_bind().dialect.name
    # The scope text must equal what the service writes: "patient:" + the UUID in its hyphenated form.
    # SQLAlchemy stores a UUID as 32 hex characters on SQLite, natively on PostgreSQL.
    patient = (
        "CAST(patient_id AS TEXT)"
        if dialect == "postgresql"
        else "substr(patient_id,1,8) || '-' || substr(patient_id,9,4) || '-' || substr(patient_id,13,4) "
        "|| '-' || substr(patient_id,17,4) || '-' || substr(patient_id,21,12)"
    )
    scope = SCOPE.format(patient=patient)
    op.execute(sa.text(f"UPDATE tasks SET number_scope = {scope}"))
    op.execute(
        sa.text(
            "UPDATE tasks SET number = (SELECT n FROM (SELECT id, ROW_NUMBER() OVER "
            "(PARTITION BY number_scope ORDER BY created_at, id) AS n FROM tasks) numbered "
            "WHERE numbered.id = tasks.id)"
        )
    )
    op.execute(
        sa.text(
            "INSERT INTO task_number_counters (scope, last) "
            "SELECT number_scope, MAX(number) FROM tasks GROUP BY number_scope"
        )
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.alter_column("number", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("number_scope", existing_type=sa.String(length=60), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_tasks_number_scope"), ["number_scope", "number"])


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_tasks_number_scope"), type_="unique")
        batch_op.drop_column("number_scope")
        batch_op.drop_column("number")
    op.drop_table("task_number_counters")
