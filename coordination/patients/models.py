"""The patient table. Identity traits follow the national identity-vigilance rules (RNIV / INS)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow

# The search columns hold upper-case ASCII (see ``rules.search_key``). On PostgreSQL they use the "C"
# collation so that a btree index serves prefix range scans whatever the database's locale.
SearchKey = String(200).with_variant(String(200, collation="C"), "postgresql")


class Patient(Base):
    """A patient dossier. ``identity_status`` is derived by ``rules.identity_status`` on every write."""

    __tablename__ = "patients"
    # Name prefix search walks one of these in order and stops after a page (see
    # ``service.search_patients``). ``uq_patients_identity`` (a unique index) makes the duplicate check
    # hold under concurrency (issue 6, item 3): one identity key (normalised birth name, first birth
    # first name, birth date) has one row per ``homonym_rank``; a creation that did not see a concurrent
    # one collides on rank 0 and is answered 409 with the candidates (see ``service.create_patient``).
    __table_args__ = (
        Index("ix_patients_search_birth_name", "search_birth_name", "birth_date"),
        Index("ix_patients_search_used_name", "search_used_name", "birth_date"),
        # A unique index rather than a table constraint: SQLite adds it without rebuilding the table
        # (a rebuild cannot drop a table other rows reference).
        Index(
            "uq_patients_identity",
            "search_birth_name",
            "search_first_given_name",
            "birth_date",
            "homonym_rank",
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Optimistic concurrency: SQLAlchemy adds "WHERE version = <read>" to every UPDATE and bumps it.
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    # The five strict traits.
    birth_name: Mapped[str] = mapped_column(String(100))
    birth_first_names: Mapped[list[str]] = mapped_column(JSON)
    first_birth_first_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))  # "F", "M", "I" (indéterminé)
    birth_place_code: Mapped[str] = mapped_column(String(5))  # INSEE code; "99xxx" born abroad

    used_name: Mapped[str | None] = mapped_column(String(100))
    used_first_name: Mapped[str | None] = mapped_column(String(100))

    search_birth_name: Mapped[str] = mapped_column(SearchKey)
    search_used_name: Mapped[str | None] = mapped_column(SearchKey)
    search_first_given_name: Mapped[str] = mapped_column(String(100))
    # 0 for the first dossier of an identity key; confirmed homonyms (``confirm_duplicate``) get 1, 2...
    homonym_rank: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    address: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))

    ins_number: Mapped[str | None] = mapped_column(String(15), unique=True)

    consent_given: Mapped[bool | None] = mapped_column(Boolean)
    consent_mode: Mapped[str | None] = mapped_column(String(20))
    consent_recorded_by: Mapped[str | None] = mapped_column(String(20))
    consent_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    identity_document_type: Mapped[str | None] = mapped_column(String(40))
    identity_document_checked_by: Mapped[str | None] = mapped_column(String(20))
    identity_document_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    insi_retrieved_by: Mapped[str | None] = mapped_column(String(20))
    insi_retrieved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    homonyme: Mapped[bool] = mapped_column(Boolean, default=False)
    douteuse: Mapped[bool] = mapped_column(Boolean, default=False)
    fictive: Mapped[bool] = mapped_column(Boolean, default=False)
    identity_status: Mapped[str] = mapped_column(String(12))

    status: Mapped[str] = mapped_column(String(10), default="active")  # "active" | "sortie"
    discharge_reason: Mapped[str | None] = mapped_column(String(30))
    discharge_date: Mapped[date | None] = mapped_column(Date)
    discharge_note: Mapped[str | None] = mapped_column(String(500))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)
