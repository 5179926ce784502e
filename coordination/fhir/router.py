"""HTTP edge of the FHIR export."""

from __future__ import annotations

from fastapi import APIRouter

from coordination.db import SessionDep
from coordination.fhir import service
from coordination.fhir.schemas import FhirBundleOut
from coordination.ids import PatientId
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/patients/{patient_id}/fhir", tags=["FHIR"])


@router.get(
    "",
    response_model=FhirBundleOut,
    response_model_exclude_none=True,
    summary="The dossier as a FHIR R4 Bundle: Patient (FR Core), CareTeam, RelatedPerson, Task",
)
async def export_patient(patient_id: PatientId, session: SessionDep, actor: CurrentActor) -> FhirBundleOut:
    return await service.export_patient(session=session, actor=actor, patient_id=patient_id)
