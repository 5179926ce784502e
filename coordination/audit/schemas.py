"""Answer bodies of the audit-trail API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from coordination.ids import PatientId


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor_user_id: str = Field(description="Matrix ID of the professional")
    actor_national_id: str
    via_bot: bool = Field(description="The action went through the coordination bot")
    action: str = Field(examples=["patient.read", "circle.member_added"])
    object_type: str
    object_id: str | None = None
    patient_id: PatientId | None = None
