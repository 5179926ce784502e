"""Bodies of the room-link API, and the Matrix room ID grammar."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from coordination.ids import PatientId, RoomId, UserId
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
    """Link an existing room (``room_id``), or ask the bot to create one (``"create": true``)."""

    model_config = ConfigDict(extra="forbid")

    room_id: RoomIdStr | None = Field(
        default=None, examples=["!AbCdEf:azurezo.local", "!O7zNoEyNkUhVqbGMPd6Z1bqBQbHGkVG8iCo7AVnH8Ik"]
    )
    create: bool = Field(
        default=False,
        description="true: the coordination bot creates an encrypted, invite-only room for the patient "
        "(answer 202); its members then follow the care circle",
    )

    @model_validator(mode="after")
    def _one_of(self) -> PatientRoomIn:
        if (self.room_id is None) == (not self.create):
            raise ValueError(
                "donnez soit « room_id » (lier un salon existant), soit « create »: true "
                "(faire créer le salon par le robot), mais pas les deux"
            )
        return self


class RoomRequestOut(BaseModel):
    """A patient room asked of the bot: it is created, linked and announced within seconds."""

    request_id: str
    patient_id: PatientId
    status: Literal["demande"] = "demande"


class RoomAccessOut(BaseModel):
    """What the Synapse module needs to let someone into a room (internal API)."""

    room_id: RoomId
    user_id: UserId
    patient_room: bool = Field(description="true when the room is linked to a patient dossier")
    authorised: bool = Field(description="may be in the room: always true outside patient rooms")


class RoomMembersOut(BaseModel):
    """A patient room and the Matrix users who should be in it now (internal API, for the bot)."""

    room_id: RoomId
    patient_id: PatientId
    members: list[UserId] = Field(description="authorised, bound, active professionals; never relatives")


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
