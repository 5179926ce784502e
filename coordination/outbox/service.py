"""Emitting to and consuming from the outbox.

Nothing is lost while the consumer is down: events stay until acknowledged, and a consumer that
crashes after reading but before acknowledging reads them again (handlers must be idempotent; the
event id is the idempotency key).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import utcnow
from coordination.errors import Invalid
from coordination.ids import UserId
from coordination.outbox.events import EVENT_ADAPTER, Event
from coordination.outbox.models import ConsumerCursor, OutboxEvent
from coordination.outbox.schemas import MAX_CURSOR, EventOut
from coordination.pagination import Page, decode_cursor, encode_cursor


async def emit(*, session: AsyncSession, event: Event, recipients: Iterable[str]) -> None:
    """Add ``event`` to the caller's transaction: it exists if and only if the change commits."""
    session.add(
        OutboxEvent(
            kind=event.kind,
            recipients=sorted(set(recipients)),
            payload=event.model_dump(mode="json", exclude={"kind"}),
            patient_id=event.patient_id,
        )
    )


def _fields(row: OutboxEvent) -> dict[str, Any]:
    """The event's fields from a stored row. Rows written before events were typed named the circle
    member's kind ``kind`` in the payload (now the discriminator): read them as ``member_kind``."""
    payload = dict(row.payload)
    if row.kind == "circle.member_added" and "member_kind" not in payload and "kind" in payload:
        payload["member_kind"] = payload.pop("kind")
    return {**payload, "kind": row.kind}


def _out(row: OutboxEvent) -> EventOut:
    return EventOut(
        id=row.id,
        created_at=row.created_at,
        recipients=[UserId(u) for u in row.recipients],
        event=EVENT_ADAPTER.validate_python(_fields(row)),
    )


def _after(cursor: str | None) -> int | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    after = position.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_CURSOR:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente "
            "telle quelle, ou omettez-la pour repartir du dernier événement acquitté.",
            field="cursor",
        )
    return after


def cursor_after(event_id: int) -> str:
    """The cursor of the page that starts after event ``event_id``."""
    return encode_cursor({"after": event_id})


async def read(
    *, session: AsyncSession, consumer: str, cursor: str | None = None, limit: int = 100
) -> Page[EventOut]:
    """Events after ``cursor`` (default: after the consumer's acknowledged id), oldest first.

    ``next_cursor`` is set while more events follow this page.
    """
    after = _after(cursor)
    if after is None:
        acked = await session.get(ConsumerCursor, consumer)
        after = acked.last_acked_id if acked else 0
    rows = (
        await session.scalars(
            select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id).limit(limit + 1)
        )
    ).all()
    items = [_out(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[EventOut](items=items, next_cursor=cursor_after(items[-1].id) if more else None)


async def ack(*, session: AsyncSession, consumer: str, up_to: int) -> int:
    """Move the consumer's cursor forward to ``up_to`` (never backwards); returns the new cursor."""
    last = (await session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()))).first()
    if up_to < 0 or up_to > (last or 0):
        raise Invalid("Curseur inconnu : on ne peut acquitter que des événements déjà lus.", field="up_to")
    acked = await session.get(ConsumerCursor, consumer)
    if acked is None:
        acked = ConsumerCursor(consumer=consumer, last_acked_id=0)
        session.add(acked)
    if up_to > acked.last_acked_id:
        acked.last_acked_id = up_to
        acked.updated_at = utcnow()
    await session.commit()
    return acked.last_acked_id
