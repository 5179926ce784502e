"""The dashboard's server-side sessions: the browser only holds an opaque cookie."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coordination.db import Base, UTCDateTime


class WebSession(Base):
    """One signed-in browser. The primary key is the sha256 of the cookie value, so the table alone
    (a backup, a read-only leak) never lets anyone present a valid cookie.

    ``access_token`` is the Matrix device's token: kept here, never sent to the browser, used to log the
    device out at sign-out, timeout or delisting.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    access_token: Mapped[str] = mapped_column(String(512))
    device_id: Mapped[str | None] = mapped_column(String(255))
    csrf_token: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(20), doc="m.login.password or m.login.token (SSO)")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    flash: Mapped[str | None] = mapped_column(Text, doc="JSON list of messages shown once")
