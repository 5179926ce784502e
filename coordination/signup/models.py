"""Tables of the sign-up domain: requests for an account, activation links, administrators."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime, utcnow
from coordination.directory import models as _directory  # noqa: F401  (the tables we reference)


class SignupRequest(Base):
    """A professional's request for an account, as typed on ``/inscription`` and as decided.

    Only requests that matched an active directory professional are stored (a mismatch is refused
    at once and leaves nothing but a log line). ``localpart`` is reserved (and the directory binding
    made) at approval; the Matrix account is registered at activation, with the password the
    professional chooses then, so no password ever exists that they did not choose.
    """

    __tablename__ = "signup_requests"
    __table_args__ = (Index("ix_signup_requests_status_created", "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    national_id: Mapped[str] = mapped_column(ForeignKey("directory_persons.national_id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    structure_id: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(255))  # a Matrix ID, or "auto"
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    localpart: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(255))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ActivationLink(Base):
    """A single-use activation link: only the SHA-256 of its token is kept."""

    __tablename__ = "signup_activation_links"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signup_requests.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Administrator(Base):
    """A professional who decides sign-up requests (``azurezo admin add NATIONAL_ID``)."""

    __tablename__ = "signup_administrators"

    national_id: Mapped[str] = mapped_column(ForeignKey("directory_persons.national_id"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
