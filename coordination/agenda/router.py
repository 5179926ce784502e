"""HTTP edge of the agenda: parse, call one service function, format.

``/api/v1/agendas`` (agendas, event types, availability, planning, ICS secret, FHIR export),
``/api/v1/slots`` (the region-wide free-slot search), ``/api/v1/appointments`` (booking and follow-up),
``/api/v1/patients/{patient_id}/appointments`` (a patient's appointments), and the ICS feed itself at
``/ics/v1/{token}.ics`` (no Matrix token: a calendar app holds only the secret URL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from coordination.agenda import fhir, ics
from coordination.agenda import service as agenda
from coordination.agenda.schemas import (
    AgendaCreate,
    AgendaOut,
    AgendaUpdate,
    AppointmentCreate,
    AppointmentOut,
    AppointmentUpdate,
    AvailabilityCreate,
    AvailabilityExceptions,
    AvailabilityOut,
    EventTypeCreate,
    EventTypeOut,
    IcsTokenOut,
    PlanningOut,
    SlotOut,
    SlotTakenOut,
    UnavailabilityCreate,
    UnavailabilityOut,
)
from coordination.db import SessionDep
from coordination.fhir.schemas import FhirBundleOut
from coordination.ids import (
    AgendaId,
    AppointmentId,
    AvailabilityId,
    EventTypeId,
    PatientId,
    StructureId,
    UnavailabilityId,
)
from coordination.pagination import Cursor, Page
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.vocab import AppointmentStatus, EventCategory

agendas_router = APIRouter(prefix="/api/v1/agendas", tags=["agenda"])
slots_router = APIRouter(prefix="/api/v1/slots", tags=["agenda"])
appointments_router = APIRouter(prefix="/api/v1/appointments", tags=["agenda"])
patient_router = APIRouter(prefix="/api/v1/patients/{patient_id}/appointments", tags=["agenda"])
feed_router = APIRouter(prefix="/ics/v1", tags=["agenda"])

_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Réservé aux gestionnaires, ou réservation refusée"},
    404: {"model": ErrorOut, "description": "Agenda ou rendez-vous inconnu ou non accessible"},
    409: {"model": ErrorOut, "description": "Version périmée, ou créneau déjà pris"},
    422: {"model": ErrorOut, "description": "Saisie invalide"},
}
_BOOK_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    409: {"model": SlotTakenOut, "description": "Créneau déjà pris : les prochains créneaux libres"},
}

Start = Annotated[
    datetime | None, Query(alias="from", description="Début (avec fuseau) ; défaut : maintenant")
]
End = Annotated[datetime | None, Query(alias="to", description="Fin (avec fuseau)")]


# --- agendas -------------------------------------------------------------------------------------


@agendas_router.post(
    "", response_model=AgendaOut, status_code=201, summary="Créer un agenda", responses=_ERRORS
)
async def create_agenda(body: AgendaCreate, actor: CurrentActor, session: SessionDep) -> AgendaOut:
    return await agenda.create_agenda(session=session, actor=actor, data=body)


@agendas_router.get("", response_model=Page[AgendaOut], summary="Agendas visibles", responses=_ERRORS)
async def list_agendas(
    actor: CurrentActor,
    session: SessionDep,
    managed: Annotated[bool, Query(description="Seulement ceux que je gère")] = False,
    structure_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=agenda.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> Page[AgendaOut]:
    return await agenda.list_agendas(
        session=session,
        actor=actor,
        managed_only=managed,
        structure_id=StructureId(structure_id) if structure_id else None,
        limit=limit,
        cursor=cursor,
    )


@agendas_router.get(
    "/planning", response_model=PlanningOut, summary="Planning de plusieurs agendas", responses=_ERRORS
)
async def planning(
    actor: CurrentActor,
    session: SessionDep,
    agenda_id: Annotated[list[AgendaId], Query(description="Répétable (1 à 50)")],
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
) -> PlanningOut:
    """Openings and busy periods of several agendas (day, week or month), for coordinators."""
    return await agenda.planning(session=session, actor=actor, agenda_ids=agenda_id, start=start, end=end)


@agendas_router.get("/{agenda_id}", response_model=AgendaOut, summary="Lire un agenda", responses=_ERRORS)
async def get_agenda(agenda_id: AgendaId, actor: CurrentActor, session: SessionDep) -> AgendaOut:
    return await agenda.get_agenda(session=session, actor=actor, agenda_id=agenda_id)


@agendas_router.patch(
    "/{agenda_id}", response_model=AgendaOut, summary="Modifier un agenda", responses=_ERRORS
)
async def update_agenda(
    agenda_id: AgendaId, body: AgendaUpdate, actor: CurrentActor, session: SessionDep
) -> AgendaOut:
    return await agenda.update_agenda(session=session, actor=actor, agenda_id=agenda_id, data=body)


@agendas_router.post(
    "/{agenda_id}/event-types",
    response_model=EventTypeOut,
    status_code=201,
    summary="Ajouter un type",
    responses=_ERRORS,
)
async def add_event_type(
    agenda_id: AgendaId, body: EventTypeCreate, actor: CurrentActor, session: SessionDep
) -> EventTypeOut:
    return await agenda.add_event_type(session=session, actor=actor, agenda_id=agenda_id, data=body)


@agendas_router.post(
    "/{agenda_id}/availabilities",
    response_model=AvailabilityOut,
    status_code=201,
    summary="Ajouter des horaires d'ouverture (RRULE)",
    responses=_ERRORS,
)
async def add_availability(
    agenda_id: AgendaId, body: AvailabilityCreate, actor: CurrentActor, session: SessionDep
) -> AvailabilityOut:
    return await agenda.add_availability(session=session, actor=actor, agenda_id=agenda_id, data=body)


@agendas_router.get(
    "/{agenda_id}/availabilities",
    response_model=Page[AvailabilityOut],
    summary="Horaires d'ouverture",
    responses=_ERRORS,
)
async def list_availabilities(
    agenda_id: AgendaId, actor: CurrentActor, session: SessionDep
) -> Page[AvailabilityOut]:
    return await agenda.list_availabilities(session=session, actor=actor, agenda_id=agenda_id)


@agendas_router.post(
    "/{agenda_id}/availabilities/{availability_id}/exceptions",
    response_model=AvailabilityOut,
    summary="Annuler des occurrences (EXDATE)",
    responses=_ERRORS,
)
async def add_exceptions(
    agenda_id: AgendaId,
    availability_id: AvailabilityId,
    body: AvailabilityExceptions,
    actor: CurrentActor,
    session: SessionDep,
) -> AvailabilityOut:
    return await agenda.add_exceptions(
        session=session,
        actor=actor,
        agenda_id=agenda_id,
        availability_id=availability_id,
        exdates=body.exdates,
    )


@agendas_router.delete(
    "/{agenda_id}/availabilities/{availability_id}",
    status_code=204,
    summary="Retirer des horaires",
    responses=_ERRORS,
)
async def delete_availability(
    agenda_id: AgendaId, availability_id: AvailabilityId, actor: CurrentActor, session: SessionDep
) -> Response:
    await agenda.delete_availability(
        session=session, actor=actor, agenda_id=agenda_id, availability_id=availability_id
    )
    return Response(status_code=204)


@agendas_router.post(
    "/{agenda_id}/unavailabilities",
    response_model=UnavailabilityOut,
    status_code=201,
    summary="Ajouter une indisponibilité",
    responses=_ERRORS,
)
async def add_unavailability(
    agenda_id: AgendaId, body: UnavailabilityCreate, actor: CurrentActor, session: SessionDep
) -> UnavailabilityOut:
    return await agenda.add_unavailability(session=session, actor=actor, agenda_id=agenda_id, data=body)


@agendas_router.get(
    "/{agenda_id}/unavailabilities",
    response_model=Page[UnavailabilityOut],
    summary="Indisponibilités",
    responses=_ERRORS,
)
async def list_unavailabilities(
    agenda_id: AgendaId, actor: CurrentActor, session: SessionDep
) -> Page[UnavailabilityOut]:
    return await agenda.list_unavailabilities(session=session, actor=actor, agenda_id=agenda_id)


@agendas_router.delete(
    "/{agenda_id}/unavailabilities/{unavailability_id}",
    status_code=204,
    summary="Retirer une indisponibilité",
    responses=_ERRORS,
)
async def delete_unavailability(
    agenda_id: AgendaId, unavailability_id: UnavailabilityId, actor: CurrentActor, session: SessionDep
) -> Response:
    await agenda.delete_unavailability(
        session=session, actor=actor, agenda_id=agenda_id, unavailability_id=unavailability_id
    )
    return Response(status_code=204)


@agendas_router.get(
    "/{agenda_id}/slots",
    response_model=Page[SlotOut],
    summary="Créneaux libres d'un agenda",
    responses=_ERRORS,
)
async def agenda_slots(
    agenda_id: AgendaId,
    actor: CurrentActor,
    session: SessionDep,
    event_type_id: Annotated[EventTypeId | None, Query()] = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=agenda.MAX_PAGE)] = 100,
) -> Page[SlotOut]:
    return await agenda.agenda_slots(
        session=session,
        actor=actor,
        agenda_id=agenda_id,
        event_type_id=event_type_id,
        start=start,
        end=end,
        limit=limit,
    )


@agendas_router.post(
    "/{agenda_id}/ics-token",
    response_model=IcsTokenOut,
    summary="Nouvelle adresse secrète du flux ICS",
    responses=_ERRORS,
)
async def new_ics_token(
    agenda_id: AgendaId, request: Request, actor: CurrentActor, session: SessionDep
) -> IcsTokenOut:
    """A new secret URL (the previous one stops working at once); shown only in this answer."""
    token = await agenda.new_ics_token(session=session, actor=actor, agenda_id=agenda_id)
    return IcsTokenOut(url=str(request.url_for("ics_feed", token=token)))


@agendas_router.delete(
    "/{agenda_id}/ics-token", status_code=204, summary="Révoquer le flux ICS", responses=_ERRORS
)
async def revoke_ics_token(agenda_id: AgendaId, actor: CurrentActor, session: SessionDep) -> Response:
    await agenda.revoke_ics_token(session=session, actor=actor, agenda_id=agenda_id)
    return Response(status_code=204)


@agendas_router.get(
    "/{agenda_id}/fhir",
    response_model=FhirBundleOut,
    response_model_exclude_none=True,
    summary="L'agenda en FHIR R4 : Schedule, Slot, Appointment",
    responses=_ERRORS,
)
async def export_fhir(
    agenda_id: AgendaId, actor: CurrentActor, session: SessionDep, start: Start = None, end: End = None
) -> FhirBundleOut:
    return await fhir.export_agenda(session=session, actor=actor, agenda_id=agenda_id, start=start, end=end)


# --- slots ---------------------------------------------------------------------------------------


@slots_router.get("", response_model=Page[SlotOut], summary="Prochains créneaux libres", responses=_ERRORS)
async def search_slots(
    actor: CurrentActor,
    session: SessionDep,
    category: Annotated[EventCategory | None, Query(description="Type de rendez-vous")] = None,
    event_type_id: Annotated[EventTypeId | None, Query()] = None,
    agenda_id: Annotated[list[AgendaId] | None, Query()] = None,
    profession_code: Annotated[
        str | None, Query(max_length=10, description="Code profession (TRE_G15)")
    ] = None,
    specialty: Annotated[str | None, Query(max_length=200)] = None,
    structure_id: Annotated[str | None, Query(max_length=80)] = None,
    department: Annotated[str | None, Query(max_length=3)] = None,
    city: Annotated[str | None, Query(max_length=120)] = None,
    postal_code: Annotated[str | None, Query(max_length=10)] = None,
    near: Annotated[
        str | None,
        Query(
            max_length=120,
            description="Commune d'origine d'une recherche par distance : nom (« Nice », « Saint-Laurent "
            "22 »), code postal ou code INSEE ; seuls les agendas situés (coordonnées connues) à moins "
            "de `within_km` sont retenus, chaque créneau avec sa `distance_km`",
        ),
    ] = None,
    within_km: Annotated[
        float,
        Query(ge=1, le=agenda.MAX_WITHIN_KM, description="Rayon autour de `near`, en km (défaut 20)"),
    ] = agenda.DEFAULT_WITHIN_KM,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    per_agenda: Annotated[int, Query(ge=1, le=50)] = 3,
    cursor: Cursor = None,
) -> Page[SlotOut]:
    """Free slots across the agendas you may book, earliest first; with `near`, those within
    `within_km` of a commune (an unknown or ambiguous commune: 422 saying what to type)."""
    filters = agenda.SlotFilters(
        category=category,
        event_type_id=event_type_id,
        agenda_ids=tuple(agenda_id or ()),
        profession_code=profession_code,
        specialty=specialty,
        structure_id=StructureId(structure_id) if structure_id else None,
        department=department,
        city=city,
        postal_code=postal_code,
        near=near,
        within_km=within_km,
    )
    return await agenda.search_slots(
        session=session,
        actor=actor,
        filters=filters,
        start=start,
        end=end,
        limit=limit,
        per_agenda=per_agenda,
        cursor=cursor,
    )


# --- appointments --------------------------------------------------------------------------------


@appointments_router.post(
    "", response_model=AppointmentOut, status_code=201, summary="Réserver un créneau", responses=_BOOK_ERRORS
)
async def book(
    body: AppointmentCreate, actor: CurrentActor, session: SessionDep
) -> AppointmentOut | JSONResponse:
    try:
        return await agenda.book(session=session, actor=actor, data=body)
    except agenda.SlotTaken as exc:
        out = SlotTakenOut(errcode=exc.errcode, error=exc.message, next_slots=exc.next_slots)
        return JSONResponse(status_code=409, content=out.model_dump(mode="json"))


@appointments_router.get(
    "", response_model=Page[AppointmentOut], summary="Mes rendez-vous", responses=_ERRORS
)
async def list_appointments(
    actor: CurrentActor,
    session: SessionDep,
    agenda_id: Annotated[AgendaId | None, Query(description="Ceux d'un agenda que je gère")] = None,
    start: Start = None,
    end: End = None,
    status: Annotated[list[AppointmentStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=agenda.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> Page[AppointmentOut]:
    return await agenda.list_appointments(
        session=session,
        actor=actor,
        agenda_id=agenda_id,
        start=start,
        end=end,
        statuses=tuple(status or ()),
        limit=limit,
        cursor=cursor,
    )


@appointments_router.get(
    "/{appointment_id}", response_model=AppointmentOut, summary="Lire un rendez-vous", responses=_ERRORS
)
async def get_appointment(
    appointment_id: AppointmentId, actor: CurrentActor, session: SessionDep
) -> AppointmentOut:
    return await agenda.get_appointment(session=session, actor=actor, appointment_id=appointment_id)


@appointments_router.patch(
    "/{appointment_id}",
    response_model=AppointmentOut,
    summary="Confirmer, refuser, annuler, marquer effectué ou non venu",
    responses=_ERRORS,
)
async def update_appointment(
    appointment_id: AppointmentId, body: AppointmentUpdate, actor: CurrentActor, session: SessionDep
) -> AppointmentOut:
    return await agenda.update_appointment(
        session=session, actor=actor, appointment_id=appointment_id, data=body
    )


@patient_router.get(
    "", response_model=Page[AppointmentOut], summary="Rendez-vous du patient", responses=_ERRORS
)
async def patient_appointments(
    patient_id: PatientId,
    actor: CurrentActor,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=agenda.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> Page[AppointmentOut]:
    return await agenda.patient_appointments(
        session=session, actor=actor, patient_id=patient_id, limit=limit, cursor=cursor
    )


# --- the ICS feed --------------------------------------------------------------------------------


@feed_router.get(
    "/{token}.ics",
    name="ics_feed",
    summary="Flux ICS d'un agenda (adresse secrète)",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}},
        404: {"model": ErrorOut, "description": "Adresse de flux inconnue ou révoquée"},
    },
)
async def ics_feed(token: Annotated[str, Path(max_length=100)], session: SessionDep) -> Response:
    feed = await agenda.ics_feed(session=session, token=token)
    return Response(
        content=ics.render(feed),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )


routers = [agendas_router, slots_router, appointments_router, patient_router, feed_router]
