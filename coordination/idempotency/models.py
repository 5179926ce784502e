"""Answers already given to a write that carried an ``Idempotency-Key``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow


class IdempotentAnswer(Base):
    """One write's answer, keyed by who asked (the acting professional) and their key.

    ``request_hash`` (sha256 of method, path and body) tells a replay from a key reused for another
    write. Rows older than ``RETENTION`` are swept at start-up.
    """

    __tablename__ = "idempotent_answers"
    __table_args__ = (Index("ix_idempotent_answers_created_at", "created_at"),)

    scope: Mapped[str] = mapped_column(String(520), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
