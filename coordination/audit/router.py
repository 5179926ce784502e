"""HTTP edge of the audit trail: a patient's authorised members read who did what, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coordination.audit import service
from coordination.audit.schemas import AuditEntryOut
from coordination.db import SessionDep
from coordination.ids import PatientId
from coordination.pagination import Cursor, Page
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients/{patient_id}/audit", tags=["traçabilité"])


@router.get(
    "",
    response_model=Page[AuditEntryOut],
    summary="The patient's audit trail (authorised members only), newest first",
)
async def patient_trail(
    patient_id: PatientId,
    session: SessionDep,
    actor: CurrentActor,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[AuditEntryOut]:
    return await service.patient_trail(
        session=session, actor=actor, patient_id=patient_id, limit=limit, cursor=cursor
    )
