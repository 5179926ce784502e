"""Bodies of the room-link API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from coordination.patients.schemas import NO_CONTROL

# "!opaque:server" with an optional port (Matrix spec, room ID grammar); 255 bytes at most.
ROOM_ID_PATTERN = r"^![A-Za-z0-9._~=+\-]{1,200}:[A-Za-z0-9.\-]{1,230}(:[0-9]{1,5})?$"
RoomIdStr = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255, pattern=ROOM_ID_PATTERN)]


class PatientRoomIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: RoomIdStr = Field(examples=["!AbCdEf:azurezo.local"])


class ThemeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=2, max_length=120, pattern=NO_CONTROL)
    ] = Field(examples=["vaccination covid", "soins non programmés"])
    room_id: RoomIdStr


class PatientRoomOut(BaseModel):
    room_id: str
    patient_id: uuid.UUID
    linked_by: str
    linked_at: datetime


class ThemeOut(BaseModel):
    id: uuid.UUID
    name: str
    room_id: str
    created_by: str
    created_at: datetime


class RoomOut(BaseModel):
    """What a room is about: a patient dossier or a theme."""

    room_id: str
    kind: Literal["patient", "theme"]
    patient_id: uuid.UUID | None = None
    theme: ThemeOut | None = None
