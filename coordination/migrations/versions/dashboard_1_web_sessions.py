"""Dashboard sessions (issue 10): the server-side half of the opaque sign-in cookie.

Revision ID: dashboard_1_web_sessions
Revises: files_1_task_theme
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coordination.db

revision: str = "dashboard_1_web_sessions"
down_revision: str | None = "files_1_task_theme"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("access_token", sa.String(length=512), nullable=False),
        sa.Column("device_id", sa.String(length=255), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("created_at", coordination.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", coordination.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flash", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
