"""Messages marked **important** (reaction ❗) or **question** (reaction ❓), per room, for ``!synthese``.

Only identifiers are kept (room, marked event, reaction event, who reacted): the marked message's text
stays in the (encrypted) room and is fetched when a synthesis quotes it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from coordination_bot.ids import EventId, RoomId, UserId

IMPORTANT = "important"
QUESTION = "question"
# Reaction keys as clients send them (with or without the emoji variation selector).
REACTION_KINDS = {
    "❗": IMPORTANT,
    "❗️": IMPORTANT,
    "❕": IMPORTANT,
    "❓": QUESTION,
    "❓️": QUESTION,
    "❔": QUESTION,
}


@dataclass(frozen=True)
class Mark:
    room_id: RoomId
    target: EventId
    kind: str
    sender: UserId


class MarkStore:
    def __init__(self, path: Path | None) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS marks (reaction_event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,"
            " target_event_id TEXT NOT NULL, kind TEXT NOT NULL, sender TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS marks_room ON marks (room_id, target_event_id)")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def add(self, *, room_id: RoomId, reaction: EventId, target: EventId, key: str, sender: UserId) -> bool:
        """Record a reaction if it is ❗ or ❓; True when it was one."""
        kind = REACTION_KINDS.get(key.strip())
        if kind is None:
            return False
        self._db.execute(
            "INSERT OR IGNORE INTO marks VALUES (?, ?, ?, ?, ?)", (reaction, room_id, target, kind, sender)
        )
        self._db.commit()
        return True

    def remove(self, *, reaction: EventId) -> None:
        """A reaction was redacted (the mark taken back)."""
        self._db.execute("DELETE FROM marks WHERE reaction_event_id = ?", (reaction,))
        self._db.commit()

    def for_room(self, room_id: RoomId) -> list[Mark]:
        """Marks of a room, one per (message, kind), oldest first."""
        rows = self._db.execute(
            "SELECT target_event_id, kind, MIN(sender) FROM marks WHERE room_id = ? "
            "GROUP BY target_event_id, kind ORDER BY MIN(rowid)",
            (room_id,),
        ).fetchall()
        return [Mark(room_id, EventId(t), k, UserId(s)) for t, k, s in rows]
