"""Document tables. The bytes live in the content-addressed store (``storage.py``), keyed by sha256."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coordination.db import Base, UTCDateTime, utcnow
from coordination.patients import models as _patients  # noqa: F401  (the "patients" table we reference)


class Document(Base):
    """One document of a patient's dossier. Soft-deleted (``deleted_at``): the trace stays.

    ``ix_documents_patient_created`` (patient_id, created_at) serves the dossier's document list;
    ``sha256`` is indexed to count the references of stored content.
    """

    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_patient_created", "patient_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(30))
    # What the content really is (filetyping), never what the client declared.
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    mime_type: Mapped[str] = mapped_column(String(120))
    extension: Mapped[str] = mapped_column(String(10))
    uploader_user_id: Mapped[str] = mapped_column(String(255))
    uploader_national_id: Mapped[str] = mapped_column(String(20))
    # "cercle": every authorised member; "restreinte": the uploader and the chosen members only.
    visibility: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_by: Mapped[str | None] = mapped_column(String(20))

    audience: Mapped[list[DocumentAudience]] = relationship(
        back_populates="document", cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy's declarative API)


class DocumentAudience(Base):
    """A circle member chosen to see a restricted document.

    The member's national id or structure id is copied at choice time, so the visibility check needs
    no join; access still requires being an authorised circle member on every request.
    """

    __tablename__ = "document_audience"

    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    national_id: Mapped[str | None] = mapped_column(String(20))
    structure_id: Mapped[str | None] = mapped_column(String(80))

    document: Mapped[Document] = relationship(back_populates="audience", lazy="raise")
