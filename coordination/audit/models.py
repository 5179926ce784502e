from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DDL, Boolean, Index, Integer, String, Uuid, event
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """One access to patient data. Never updated nor deleted (the service has no code path for it)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_patient_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_user_id: Mapped[str] = mapped_column(String(255))
    actor_national_id: Mapped[str] = mapped_column(String(20))
    via_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    action: Mapped[str] = mapped_column(String(60))  # e.g. "patient.read", "circle.member_added"
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))


# Append-only is enforced by the database itself, not only by the absence of code paths: an UPDATE,
# DELETE (or TRUNCATE) of the trail aborts. The Alembic migration "audit append-only" installs the
# same triggers in real databases; these listeners cover schemas built with ``create_all`` (tests).
SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END",
]
POSTGRESQL_APPEND_ONLY = [
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit trail is append-only'; END $$",
    "CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
    "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
]
for _sql in SQLITE_APPEND_ONLY:
    event.listen(AuditEntry.__table__, "after_create", DDL(_sql).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _sql in POSTGRESQL_APPEND_ONLY:
    event.listen(AuditEntry.__table__, "after_create", DDL(_sql).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]
