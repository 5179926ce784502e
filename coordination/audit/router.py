"""HTTP edge of the audit trail: a patient's authorised members read who did what, newest first."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from coordination.audit import service
from coordination.audit.schemas import AuditEntryOut, AuditPageOut
from coordination.db import SessionDep
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients/{patient_id}/audit", tags=["traçabilité"])


@router.get(
    "",
    response_model=AuditPageOut,
    summary="The patient's audit trail (authorised members only), newest first",
)
async def patient_trail(
    patient_id: uuid.UUID,
    session: SessionDep,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="From the previous page")] = None,
) -> AuditPageOut:
    entries, next_before = await service.patient_trail(
        session=session, actor=actor, patient_id=patient_id, limit=limit, before_id=before_id
    )
    return AuditPageOut(
        entries=[AuditEntryOut.model_validate(e, from_attributes=True) for e in entries],
        next_before_id=next_before,
    )
