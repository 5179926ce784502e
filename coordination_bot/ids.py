"""Matrix identifiers named in the type system."""

from __future__ import annotations

from typing import NewType

UserId = NewType("UserId", str)
RoomId = NewType("RoomId", str)
EventId = NewType("EventId", str)
