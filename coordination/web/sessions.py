"""Server-side dashboard sessions: create at sign-in, check the timeouts, end (and log the device out).

The cookie holds a random 256-bit value; the table is keyed by its sha256. Each session has its own
anti-forgery token, compared with the hidden field of every form that changes something.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import utcnow
from coordination.ids import UserId
from coordination.web.models import WebSession

TOUCH_EVERY = timedelta(seconds=30)
"""``last_seen_at`` is written at most this often (the idle timeout does not need the second)."""


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class Expiry(StrEnum):
    IDLE = "idle"
    ABSOLUTE = "absolute"


@dataclass(frozen=True, slots=True)
class SessionView:
    """What a page needs of the session (the ORM row never leaves this module)."""

    key: str
    user_id: UserId
    access_token: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


def _view(row: WebSession) -> SessionView:
    return SessionView(
        key=row.id,
        user_id=UserId(row.user_id),
        access_token=row.access_token,
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


async def create(
    *, session: AsyncSession, user_id: UserId, access_token: str, device_id: str | None, method: str
) -> str:
    """Store a new session; returns the cookie value (shown to nobody else, stored nowhere)."""
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id=_key(cookie),
            user_id=user_id,
            access_token=access_token,
            device_id=device_id,
            csrf_token=secrets.token_urlsafe(32),
            method=method,
            created_at=now,
            last_seen_at=now,
        )
    )
    await session.commit()
    return cookie


async def find(*, session: AsyncSession, cookie: str) -> SessionView | None:
    row = await session.get(WebSession, _key(cookie))
    return _view(row) if row is not None else None


def expiry(
    view: SessionView, *, idle: timedelta, absolute: timedelta, now: datetime | None = None
) -> Expiry | None:
    """Whether the session is over: unused past ``idle``, or older than ``absolute``."""
    now = now or utcnow()
    if now - view.created_at >= absolute:
        return Expiry.ABSOLUTE
    if now - view.last_seen_at >= idle:
        return Expiry.IDLE
    return None


async def touch(*, session: AsyncSession, view: SessionView) -> None:
    now = utcnow()
    if now - view.last_seen_at >= TOUCH_EVERY:
        await session.execute(update(WebSession).where(WebSession.id == view.key).values(last_seen_at=now))
        await session.commit()


async def end(*, session: AsyncSession, key: str) -> str | None:
    """Delete the session; returns its Matrix access token (to log the device out), if it existed."""
    row = await session.get(WebSession, key)
    if row is None:
        return None
    token = row.access_token
    await session.execute(delete(WebSession).where(WebSession.id == key))
    await session.commit()
    return token


async def push_flash(*, session: AsyncSession, key: str, kind: str, text: str) -> None:
    """Queue a message for the next page shown in this session (after a redirect)."""
    current = await session.scalar(select(WebSession.flash).where(WebSession.id == key))
    messages = json.loads(current) if current else []
    messages.append({"kind": kind, "text": text})
    await session.execute(
        update(WebSession).where(WebSession.id == key).values(flash=json.dumps(messages[-5:]))
    )
    await session.commit()


async def pop_flash(*, session: AsyncSession, key: str) -> list[dict[str, str]]:
    current = await session.scalar(select(WebSession.flash).where(WebSession.id == key))
    if not current:
        return []
    await session.execute(update(WebSession).where(WebSession.id == key).values(flash=None))
    await session.commit()
    loaded = json.loads(current)
    return [{"kind": str(m["kind"]), "text": str(m["text"])} for m in loaded]


async def sweep_expired(*, session: AsyncSession, idle: timedelta, absolute: timedelta) -> list[str]:
    """Delete every session past a timeout; returns their Matrix tokens (the caller logs them out).

    Run at start-up: a professional who never came back must not leave a live device token behind.
    """
    now = utcnow()
    rows = (
        await session.execute(
            select(WebSession.id, WebSession.access_token).where(
                (WebSession.created_at <= now - absolute) | (WebSession.last_seen_at <= now - idle)
            )
        )
    ).all()
    if rows:
        await session.execute(delete(WebSession).where(WebSession.id.in_([key for key, _ in rows])))
    await session.commit()
    return [token for _, token in rows]
