"""Bodies of the room-link API, and the Matrix room ID grammar."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from coordination.ids import PatientId, RoomId
from coordination.text import Line120

# Matrix room IDs (spec, appendices "Room IDs"), 255 bytes at most, two forms:
# - room versions 1 to 11: "!opaque:server_name", server_name = hostname, IPv4 or [IPv6], optional
#   port ("!AbCdEf:azurezo.local", "!x:[::1]:8448");
# - room version 12 (Synapse's default since 1.13x): "!" + the create event's reference hash in
#   unpadded URL-safe base64 (43 characters), with no server part
#   ("!O7zNoEyNkUhVqbGMPd6Z1bqBQbHGkVG8iCo7AVnH8Ik").
# Opaque parts use the URL-safe and historical characters; spaces, control characters, non-ASCII,
# an empty part or a dangling ":" are refused (issue 6, item 6).
_OPAQUE = r"[A-Za-z0-9._~=+\-/]{1,250}"
_SERVER = r"(?:[A-Za-z0-9.\-]{1,230}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
_REFERENCE_HASH = r"[A-Za-z0-9_\-]{43}"  # SHA-256 in unpadded URL-safe base64
ROOM_ID_PATTERN = rf"^!(?:{_REFERENCE_HASH}|{_OPAQUE}:{_SERVER})$"
RoomIdStr = Annotated[
    RoomId, StringConstraints(strip_whitespace=True, max_length=255, pattern=ROOM_ID_PATTERN)
]


class PatientRoomIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: RoomIdStr = Field(
        examples=["!AbCdEf:azurezo.local", "!O7zNoEyNkUhVqbGMPd6Z1bqBQbHGkVG8iCo7AVnH8Ik"]
    )


class ThemeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line120 = Field(min_length=2, examples=["vaccination covid", "soins non programmés"])
    room_id: RoomIdStr


class PatientRoomOut(BaseModel):
    room_id: RoomId
    patient_id: PatientId
    linked_by: str
    linked_at: datetime


class ThemeOut(BaseModel):
    id: uuid.UUID
    name: str
    room_id: RoomId
    created_by: str
    created_at: datetime


class RoomOut(BaseModel):
    """What a room is about: a patient dossier or a theme."""

    room_id: RoomId
    kind: Literal["patient", "theme"]
    patient_id: PatientId | None = None
    theme: ThemeOut | None = None
