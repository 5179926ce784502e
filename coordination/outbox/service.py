"""Emitting to and consuming from the outbox.

Nothing is lost while the consumer is down: events stay until acknowledged, and a consumer that
crashes after reading but before acknowledging reads them again (handlers must be idempotent; the
event id is the idempotency key).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import utcnow
from coordination.errors import Invalid
from coordination.outbox.models import ConsumerCursor, OutboxEvent


async def emit(
    *,
    session: AsyncSession,
    kind: str,
    recipients: Iterable[str],
    payload: dict[str, Any],
    patient_id: uuid.UUID | None = None,
) -> None:
    """Add an event to the caller's transaction: it exists if and only if the change commits."""
    session.add(
        OutboxEvent(
            kind=kind,
            recipients=sorted(set(recipients)),
            payload=payload,
            patient_id=patient_id,
        )
    )


async def read(
    *, session: AsyncSession, consumer: str, after: int | None = None, limit: int = 100
) -> tuple[int, Sequence[OutboxEvent]]:
    """Events after ``after`` (default: the consumer's acknowledged cursor), oldest first."""
    if after is None:
        cursor = await session.get(ConsumerCursor, consumer)
        after = cursor.last_acked_id if cursor else 0
    events = (
        await session.scalars(
            select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id).limit(limit)
        )
    ).all()
    return after, events


async def ack(*, session: AsyncSession, consumer: str, up_to: int) -> int:
    """Move the consumer's cursor forward to ``up_to`` (never backwards); returns the new cursor."""
    last = (await session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()))).first()
    if up_to < 0 or up_to > (last or 0):
        raise Invalid("Curseur inconnu : on ne peut acquitter que des événements déjà lus.", field="up_to")
    cursor = await session.get(ConsumerCursor, consumer)
    if cursor is None:
        cursor = ConsumerCursor(consumer=consumer, last_acked_id=0)
        session.add(cursor)
    if up_to > cursor.last_acked_id:
        cursor.last_acked_id = up_to
        cursor.updated_at = utcnow()
    await session.commit()
    return cursor.last_acked_id
