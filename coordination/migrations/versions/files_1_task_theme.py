"""Tasks of a thematic room: ``tasks.theme_id`` (coordination_bot/SERVICE_NEEDS.md, need 6).

A task is about a patient, a theme, or neither; ``!taches`` in a theme room lists the theme's tasks
through ``ix_tasks_theme_status_due``. Existing tasks have no theme.

Revision ID: files_1_task_theme
Revises: evaluations_1_tables
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "files_1_task_theme"
down_revision: str | None = "evaluations_1_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("theme_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_theme_id_theme_rooms"),
            "theme_rooms",
            ["theme_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            "ix_tasks_theme_status_due", ["theme_id", "status", "sort_due", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_theme_status_due")
        batch_op.drop_constraint(batch_op.f("fk_tasks_theme_id_theme_rooms"), type_="foreignkey")
        batch_op.drop_column("theme_id")
