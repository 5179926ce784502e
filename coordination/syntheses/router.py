"""HTTP edge of the synthesis text: parse, call one service function, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coordination.db import SessionDep
from coordination.errors import Invalid
from coordination.ids import PatientId
from coordination.pagination import Cursor, Page, decode_cursor, encode_cursor
from coordination.security import CurrentActor
from coordination.syntheses import service
from coordination.syntheses.schemas import SynthesisIn, SynthesisOut

router = APIRouter(prefix="/api/v1/patients/{patient_id}/synthesis", tags=["synthèse"])


@router.get("", response_model=SynthesisOut, summary="The current synthesis text (authorised members)")
async def get_synthesis(patient_id: PatientId, session: SessionDep, actor: CurrentActor) -> SynthesisOut:
    return await service.get_synthesis(session=session, actor=actor, patient_id=patient_id)


@router.put(
    "",
    response_model=SynthesisOut,
    summary="Replace the synthesis text, naming the version read (409 if someone saved meanwhile)",
)
async def replace_synthesis(
    patient_id: PatientId, body: SynthesisIn, session: SessionDep, actor: CurrentActor
) -> SynthesisOut:
    return await service.replace_synthesis(
        session=session, actor=actor, patient_id=patient_id, text=body.text, version=body.version
    )


@router.get("/versions", response_model=Page[SynthesisOut], summary="Every saved version, newest first")
async def list_versions(
    patient_id: PatientId,
    session: SessionDep,
    actor: CurrentActor,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_VERSIONS_PAGE)] = 20,
) -> Page[SynthesisOut]:
    position = decode_cursor(cursor)
    before = position.get("before") if position else None
    if before is not None and not isinstance(before, int):
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor")
    items, next_before = await service.list_versions(
        session=session, actor=actor, patient_id=patient_id, before=before, limit=limit
    )
    return Page(items=items, next_cursor=encode_cursor({"before": next_before}) if next_before else None)
