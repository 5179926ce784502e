"""HTTP edge of the DAC indicators: the figures as JSON, and the same figures as CSV for Excel."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from coordination.db import SessionDep
from coordination.ids import StructureId
from coordination.indicators import rules
from coordination.indicators import service as indicators
from coordination.indicators.export import csv_response
from coordination.indicators.schemas import DacOut, IndicatorsOut
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor

router = APIRouter(prefix="/api/v1/indicators", tags=["indicateurs"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Pas coordinateur de ce DAC, ou inactif"},
    422: {"model": ErrorOut, "description": "Période invalide, ou DAC à préciser"},
}

DacParam = Annotated[
    str | None,
    Query(
        max_length=80,
        pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$",
        description="Le DAC (structure de l'annuaire) ; facultatif si vous n'en coordonnez qu'un",
        examples=["finess:060000099"],
    ),
]
FromParam = Annotated[
    date | None,
    Query(alias="from", description="Premier jour de la période (Europe/Paris) ; par défaut il y a 30 jours"),
]
ToParam = Annotated[
    date | None,
    Query(alias="to", description="Jour suivant le dernier jour de la période (exclu) ; par défaut demain"),
]


@router.get("/dacs", response_model=list[DacOut], summary="Les DAC dont je suis coordinateur")
async def my_dacs(actor: CurrentActor, session: SessionDep) -> list[DacOut]:
    return await indicators.my_dacs(session=session, actor=actor)


@router.get("", response_model=IndicatorsOut, summary="Indicateurs d'activité d'un DAC", responses=_ERRORS)
async def get_indicators(
    actor: CurrentActor,
    session: SessionDep,
    dac_id: DacParam = None,
    start: FromParam = None,
    end: ToParam = None,
) -> IndicatorsOut:
    """Requests received over the period (by profession, origin, urgency, outcome), median delays to
    take and to answer, patients included, open tasks by age. Coordinators of the DAC only."""
    return await indicators.dac_indicators(
        session=session,
        actor=actor,
        dac_id=StructureId(dac_id) if dac_id else None,
        period=rules.period(start, end),
    )


@router.get(
    ".csv",
    response_class=Response,
    summary="Indicateurs d'activité d'un DAC, en CSV (Excel)",
    responses=_ERRORS | {200: {"content": {"text/csv": {}}, "description": "CSV ; séparateur « ; », UTF-8"}},
)
async def export_indicators(
    actor: CurrentActor,
    session: SessionDep,
    dac_id: DacParam = None,
    start: FromParam = None,
    end: ToParam = None,
) -> Response:
    """The same figures as CSV: UTF-8 with BOM, ``;`` separator, French headers and decimal commas."""
    ind = await indicators.dac_indicators(
        session=session,
        actor=actor,
        dac_id=StructureId(dac_id) if dac_id else None,
        period=rules.period(start, end),
    )
    return csv_response(ind)
