"""Identifiers named in the type system, so a Matrix ID is never passed where a national id is expected."""

from typing import NewType
from uuid import UUID

UserId = NewType("UserId", str)
"""A Matrix user ID, e.g. ``@jmartin:azurezo.local``."""
RoomId = NewType("RoomId", str)
"""A Matrix room ID, e.g. ``!abc:azurezo.local``."""
EventId = NewType("EventId", str)
NationalId = NewType("NationalId", str)
"""A professional's national id (idNatPS): ``8`` + RPPS or ``0`` + ADELI."""
StructureId = NewType("StructureId", str)
"""A directory structure key, e.g. ``finess:060780491`` or ``ror:1234564``."""
PatientId = NewType("PatientId", UUID)
DocumentId = NewType("DocumentId", UUID)
RequestId = NewType("RequestId", UUID)
TaskId = NewType("TaskId", UUID)
MemberId = NewType("MemberId", UUID)
EvaluationId = NewType("EvaluationId", UUID)
PatientEventId = NewType("PatientEventId", UUID)
ThemeId = NewType("ThemeId", UUID)
"""A thematic room's theme (``POST /api/v1/themes``)."""
AgendaId = NewType("AgendaId", UUID)
EventTypeId = NewType("EventTypeId", UUID)
AvailabilityId = NewType("AvailabilityId", UUID)
UnavailabilityId = NewType("UnavailabilityId", UUID)
AppointmentId = NewType("AppointmentId", UUID)
