"""The Matrix side as the handlers see it: a small protocol, its matrix-nio implementation lives in
``coordination_bot.runner``; ``RecordingGateway`` is the fake the handler tests use (like mautrix's
``TestBot.responded``)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Protocol

from coordination_bot.ids import EventId, RoomId, UserId


@dataclass(frozen=True)
class Incoming:
    """A message that may hold a command, already decrypted and reduced to its command text."""

    room_id: RoomId
    event_id: EventId
    sender: UserId
    text: str
    mentions: tuple[UserId, ...] = ()
    thread_root: EventId | None = None


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    mimetype: str


@dataclass(frozen=True)
class Reply:
    text: str
    html: str
    # Sent right after the notice, as a reply to the same command (encrypted in encrypted rooms).
    attachment: Attachment | None = None


@dataclass(frozen=True)
class QuotedMessage:
    event_id: EventId
    sender: UserId
    text: str


class Gateway(Protocol):
    """What handlers may do on Matrix."""

    async def reply(self, incoming: Incoming, reply: Reply) -> EventId:
        """Send ``reply`` as an ``m.notice`` answering ``incoming`` (in its thread, if any), then its
        attachment if any."""
        ...

    async def fetch_message(self, room_id: RoomId, event_id: EventId) -> QuotedMessage | None:
        """A room message's sender and text (decrypted), or None when it cannot be read."""
        ...


def notice_content(incoming: Incoming, reply: Reply) -> dict[str, Any]:
    """The ``m.room.message`` content of a reply: m.notice, HTML + plain body, related to the command."""
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": reply.text,
        "format": "org.matrix.custom.html",
        "formatted_body": reply.html,
        # Replies mention nobody: a bot notice must not ping the whole circle.
        "m.mentions": {},
    }
    if incoming.thread_root is not None:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": incoming.thread_root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": incoming.event_id},
        }
    else:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": incoming.event_id}}
    return content


def file_content(incoming: Incoming, attachment: Attachment, media: dict[str, Any]) -> dict[str, Any]:
    """An ``m.file`` answering ``incoming``; ``media`` is ``{"url": mxc}`` or ``{"file": {...}}``
    (encrypted attachment, spec "Sending encrypted attachments")."""
    content: dict[str, Any] = {
        "msgtype": "m.file",
        "body": attachment.filename,
        "filename": attachment.filename,
        "info": {"mimetype": attachment.mimetype, "size": len(attachment.data)},
        "m.mentions": {},
        **media,
    }
    relates = notice_content(incoming, Reply("", ""))["m.relates_to"]
    content["m.relates_to"] = relates
    return content


@dataclass
class Sent:
    room_id: RoomId
    content: dict[str, Any]
    event_id: EventId


@dataclass
class RecordingGateway:
    """A fake gateway that records what the bot sent; ``messages`` are what ``fetch_message`` finds."""

    sent: list[Sent] = field(default_factory=list)
    messages: dict[tuple[RoomId, EventId], QuotedMessage] = field(default_factory=dict)
    files: list[Attachment] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def reply(self, incoming: Incoming, reply: Reply) -> EventId:
        event_id = EventId(f"$sent{next(self._ids)}")
        self.sent.append(Sent(incoming.room_id, notice_content(incoming, reply), event_id))
        if reply.attachment is not None:
            self.files.append(reply.attachment)
            media = {"url": f"mxc://fake/{len(self.files)}"}
            content = file_content(incoming, reply.attachment, media)
            self.sent.append(Sent(incoming.room_id, content, EventId(f"$sent{next(self._ids)}")))
        return event_id

    async def fetch_message(self, room_id: RoomId, event_id: EventId) -> QuotedMessage | None:
        return self.messages.get((room_id, event_id))

    def responded(self, incoming: Incoming) -> list[str]:
        """The plain bodies of the replies to ``incoming``."""
        return [
            s.content["body"]
            for s in self.sent
            if s.content.get("msgtype") == "m.notice"
            and s.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            == incoming.event_id
        ]
