"""Dashboard pages of requests to a DAC: the DAC's board (home page), a request, take, answer.

Same service functions as the API (``coordination.dac_requests.service``), so every read is audited the
same way and every rule (coordinator of the DAC now, not the author, inclusion only when the requester
is still authorised) applies unchanged. For a DAC's coordinator the board also lists the complex
situations they may read, next plan review first, and marks the requests about a flagged patient
(``coordination.timeline.service``: only patients whose circle they are an authorised member of, each
listed patient audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from coordination.dac_requests import service as dac_requests
from coordination.dac_requests.schemas import AnswerIn, RequestOut
from coordination.db import SessionDep
from coordination.directory import service as directory
from coordination.errors import ServiceError
from coordination.ids import RequestId, StructureId
from coordination.timeline import service as situations
from coordination.validation import french_validation_message
from coordination.vocab import Decision, RequestStatus, Urgency
from coordination.web.deps import FormActor, PageActor, flash
from coordination.web.templating import PARIS, render

router = APIRouter(prefix="/app/demandes", include_in_schema=False)

SITUATIONS_PAGE = 50
"""Complex situations listed on the board at a time (then a link to the next ones)."""

TABS: dict[str, tuple[str, tuple[RequestStatus, ...]]] = {
    "nouvelles": ("Nouvelles", (RequestStatus.ENVOYEE,)),
    "prises": ("Prises en charge", (RequestStatus.EN_COURS,)),
    "repondues": ("Répondues", (RequestStatus.CLOTUREE, RequestStatus.REFUSEE)),
    "toutes": ("Toutes", ()),
}


async def _names(db: SessionDep, items: list[RequestOut]) -> dict[str, str]:
    ids = {r.requester_national_id for r in items}
    ids |= {n for r in items for n in (r.taken_by_national_id, r.answered_by_national_id) if n}
    return await directory.display_names(session=db, national_ids=ids)


@router.get("")
async def board(
    request: Request,
    actor: PageActor,
    db: SessionDep,
    onglet: Annotated[str, Query(max_length=20)] = "nouvelles",
    urgence: Annotated[Urgency | None, Query()] = None,
    age_min: Annotated[int | None, Query(ge=0, le=36500)] = None,
    dac: Annotated[str | None, Query(max_length=80)] = None,
    envoyees: Annotated[bool, Query()] = False,
    curseur: Annotated[str | None, Query(max_length=500)] = None,
    situations_curseur: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """The DAC's board: requests received by my DACs (and those I sent), newest received first; for a
    DAC coordinator, the complex situations (of the DAC chosen in the filter, else of all their DACs)."""
    tab = onglet if onglet in TABS else "nouvelles"
    page = await dac_requests.list_requests(
        session=db,
        actor=actor,
        filters=dac_requests.RequestFilters(
            dac=StructureId(dac) if dac else None,
            statuses=TABS[tab][1],
            urgencies=(urgence,) if urgence else (),
            min_age_days=age_min,
            mine=envoyees,
        ),
        limit=50,
        cursor=curseur,
    )
    my_dacs = await directory.structure_names(
        session=db,
        structure_ids=await directory.active_dac_ids(session=db, structure_ids=actor.structure_ids),
    )
    complex_page, complex_count = None, 0
    if my_dacs:
        dac_scope = dac if dac in my_dacs else None
        complex_page = await situations.complex_board(
            session=db, actor=actor, limit=SITUATIONS_PAGE, cursor=situations_curseur, dac=dac_scope
        )
        complex_count = await situations.count_complex_situations(session=db, actor=actor, dac=dac_scope)
    flagged = await situations.flagged_among(
        session=db, actor=actor, patient_ids=[r.patient_id for r in page.items if r.patient_id]
    )
    filters = {
        "onglet": tab,
        "urgence": urgence or "",
        "age_min": age_min if age_min is not None else "",
        "dac": dac or "",
        "envoyees": envoyees,
    }
    return render(
        request,
        "dac_requests/board.html",
        {
            "page": page,
            "names": await _names(db, page.items),
            "tabs": TABS,
            "tab": tab,
            "filters": filters,
            "urgencies": Urgency,
            "my_dacs": my_dacs,
            "complex_page": complex_page,
            "complex_count": complex_count,
            "flagged": flagged,
            "today": datetime.now(PARIS).date(),
        },
    )


@router.get("/{request_id}")
async def detail(request: Request, request_id: RequestId, actor: PageActor, db: SessionDep) -> Response:
    """A request, its history and the actions the signed-in professional may take now."""
    req = await dac_requests.get_request(session=db, actor=actor, request_id=request_id)
    is_coordinator = (
        req.dac_structure_id in actor.structure_ids and req.requester_national_id != actor.national_id
    )
    return render(
        request,
        "dac_requests/detail.html",
        {
            "req": req,
            "names": await _names(db, [req]),
            "can_take": is_coordinator and req.status == RequestStatus.ENVOYEE,
            "can_answer": is_coordinator and req.status == RequestStatus.EN_COURS,
            "decisions": Decision,
        },
    )


def _back(request_id: RequestId) -> RedirectResponse:
    return RedirectResponse(f"/app/demandes/{request_id}", status_code=303)


@router.post("/{request_id}/prendre")
async def take(
    request: Request,
    request_id: RequestId,
    actor: FormActor,
    db: SessionDep,
    version: Annotated[int, Form(ge=1)],
) -> Response:
    """Take the request in charge (a coordinator of the DAC who did not create it)."""
    try:
        await dac_requests.take_request(session=db, actor=actor, request_id=request_id, version=version)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(request_id)
    await flash(request, db, "Demande prise en charge : elle est maintenant « En cours » à votre nom.")
    return _back(request_id)


@router.post("/{request_id}/repondre")
async def answer(
    request: Request,
    request_id: RequestId,
    actor: FormActor,
    db: SessionDep,
    version: Annotated[int, Form(ge=1)],
    decision: Annotated[str, Form(max_length=40)] = "",
    commentaire: Annotated[str, Form(max_length=6000)] = "",
    inclure: Annotated[bool, Form()] = False,
) -> Response:
    """Step 3: the decision, a comment, and whether the patient is included (the DAC joins the circle)."""
    try:
        data = AnswerIn(version=version, decision=decision, comment=commentaire, include_patient=inclure)
    except ValidationError as exc:
        labels = {"decision": "Décision", "comment": "Commentaire"}
        text = "; ".join(
            f"{labels.get(str(e['loc'][0]), str(e['loc'][0]))} : {french_validation_message(dict(e))}"
            for e in exc.errors()
        )
        await flash(request, db, f"Réponse non envoyée — {text}.", kind="erreur")
        return _back(request_id)
    try:
        out = await dac_requests.answer_request(session=db, actor=actor, request_id=request_id, data=data)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(request_id)
    done = f"Réponse envoyée : {out.decision_label or ''}."
    if out.patient_included:
        done += " Le patient est inclus : votre DAC fait partie de son cercle de soins."
    await flash(request, db, done)
    return _back(request_id)
