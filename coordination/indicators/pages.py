"""Dashboard page of the DAC indicators: the figures of a period as tables and SVG charts, and the
same figures as CSV (the browser holds the session cookie, not a Matrix token, so the CSV link is a
page route too). Same service function as the API, so access and audit are the same."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from coordination.db import SessionDep
from coordination.ids import StructureId
from coordination.indicators import rules, view
from coordination.indicators import service as indicators
from coordination.indicators.export import csv_response
from coordination.web.deps import PageActor
from coordination.web.templating import render

router = APIRouter(prefix=view.PAGE_PATH, include_in_schema=False)

DacParam = Annotated[str | None, Query(max_length=80, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")]


@router.get("", response_class=HTMLResponse)
async def indicators_page(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    dac_id: DacParam = None,
    du: Annotated[date | None, Query()] = None,
    au: Annotated[date | None, Query()] = None,
) -> HTMLResponse:
    ind = await indicators.dac_indicators(
        session=session,
        actor=actor,
        dac_id=StructureId(dac_id) if dac_id else None,
        period=view.form_period(du=du, au=au),
    )
    dacs = await indicators.my_dacs(session=session, actor=actor)
    return render(request, "indicators/page.html", view.page_context(ind=ind, dacs=dacs))


@router.get(".csv")
async def indicators_csv(
    session: SessionDep,
    actor: PageActor,
    dac_id: DacParam = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    ind = await indicators.dac_indicators(
        session=session,
        actor=actor,
        dac_id=StructureId(dac_id) if dac_id else None,
        period=rules.period(start, end),
    )
    return csv_response(ind)
