"""Dashboard pages of the agenda: my agendas, an agenda's week (free slots to book, with an optional
patient), opening hours, the planning of several agendas side by side, cancelling an appointment, and
the search of the next free slots across agendas (by type, profession, department, or within a radius
of a commune).

Every read and write goes through ``coordination.agenda.service`` (access rules, audit, outbox); this
module only shapes the week into rows and columns for accessible tables.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from coordination.agenda import service as agenda
from coordination.agenda.schemas import (
    AgendaOut,
    AppointmentCreate,
    AppointmentUpdate,
    AvailabilityCreate,
    BusyOut,
    SlotOut,
)
from coordination.db import SessionDep
from coordination.errors import ServiceError
from coordination.ids import AgendaId, AppointmentId, PatientId
from coordination.security import Actor
from coordination.validation import french_validation_message
from coordination.vocab import AppointmentStatus, EventCategory
from coordination.web.deps import FormActor, PageActor, flash
from coordination.web.templating import PARIS, render

router = APIRouter(prefix="/app", include_in_schema=False)

DAYS = ["Lundi", "Mardi", "Mercredi", "Jeudi", "Vendredi", "Samedi", "Dimanche"]
BYDAY = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_LABELS = {
    "start_local": "Début",
    "duration_minutes": "Durée",
    "rrule": "Jours",
    "start": "Début",
    "patient_id": "Patient",
    "note": "Note",
    "event_type_id": "Type de rendez-vous",
}


def _details(exc: ValidationError) -> str:
    return "; ".join(
        f"{_LABELS.get(str(e['loc'][0]), str(e['loc'][0]))} : {french_validation_message(dict(e))}"
        for e in exc.errors()
    )


def _monday(day: date | None) -> date:
    today = day or datetime.now(PARIS).date()
    return today - timedelta(days=today.weekday())


def _utc_range(first: date, days: int) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time(0, 0), tzinfo=PARIS)
    end = datetime.combine(first + timedelta(days=days), time(0, 0), tzinfo=PARIS)
    return start, end


@dataclass
class Cell:
    """What one day holds at one time: free slots (to book) and busy periods."""

    slots: list[SlotOut] = field(default_factory=list)
    busy: list[BusyOut] = field(default_factory=list)


def week_grid(
    monday: date, slots: list[SlotOut], busy: list[BusyOut]
) -> tuple[list[date], list[tuple[str, list[Cell]]]]:
    """Rows by Paris time of day (« 09:30 »), one column per day; the weekend only when it holds
    something, so an office week stays narrow."""
    days = [monday + timedelta(days=i) for i in range(7)]
    rows: dict[str, dict[date, Cell]] = {}
    for slot in slots:
        at = slot.start.astimezone(PARIS)
        rows.setdefault(f"{at:%H:%M}", {}).setdefault(at.date(), Cell()).slots.append(slot)
    for period in busy:
        at = period.start.astimezone(PARIS)
        rows.setdefault(f"{at:%H:%M}", {}).setdefault(at.date(), Cell()).busy.append(period)
    used = {d for cells in rows.values() for d in cells}
    shown = [d for d in days if d.weekday() < 5 or d in used]
    return shown, [(hhmm, [rows[hhmm].get(d, Cell()) for d in shown]) for hhmm in sorted(rows)]


PROFESSIONS = {
    "10": "Médecin",
    "60": "Infirmier",
    "70": "Masseur-kinésithérapeute",
    "40": "Chirurgien-dentiste",
    "50": "Sage-femme",
    "21": "Pharmacien",
}
"""The professions (TRE_G15 codes) the slot search offers, as « !rdv » does."""
BOOKABLE = (EventCategory.CONSULTATION, EventCategory.TELECONSULTATION, EventCategory.VISITE_DOMICILE)


def _agenda_href(agenda_id: uuid.UUID, monday: date, patient: str) -> str:
    suffix = f"&patient={patient}" if patient else ""
    return f"/app/agendas/{agenda_id}?semaine={monday.isoformat()}{suffix}"


# --- my agendas ----------------------------------------------------------------------------------


@router.get("/agendas")
async def agenda_list(
    request: Request,
    actor: PageActor,
    db: SessionDep,
    patient: Annotated[PatientId | None, Query()] = None,
    curseur: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """The agendas I manage, then those I may see or book (``patient``: book for that patient)."""
    page = await agenda.list_agendas(session=db, actor=actor, limit=50, cursor=curseur)
    return render(
        request,
        "agenda/list.html",
        {
            "managed": [a for a in page.items if a.can_manage],
            "others": [a for a in page.items if not a.can_manage],
            "next_cursor": page.next_cursor,
            "patient": str(patient) if patient else "",
        },
    )


# --- the next free slots across agendas ----------------------------------------------------------


@router.get("/creneaux")
async def slot_search(
    request: Request,
    actor: PageActor,
    db: SessionDep,
    categorie: Annotated[str, Query(max_length=30)] = "",
    profession: Annotated[str, Query(max_length=10)] = "",
    departement: Annotated[str, Query(max_length=3)] = "",
    commune: Annotated[str, Query(max_length=120)] = "",
    rayon: Annotated[str, Query(max_length=5)] = "",
    patient: Annotated[PatientId | None, Query()] = None,
    curseur: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """The next free slots I may book, earliest first, each linking to the booking form; « commune »
    and « rayon » (km, 20 by default) keep the agendas within that distance and show it."""
    asked = {
        "categorie": categorie.strip(),
        "profession": profession.strip(),
        "departement": departement.strip().upper(),
        "commune": " ".join(commune.split()),
        "rayon": rayon.strip(),
    }
    error = ""
    items: list[SlotOut] = []
    next_cursor: str | None = None
    try:
        within = float(asked["rayon"].replace(",", ".")) if asked["rayon"] else agenda.DEFAULT_WITHIN_KM
    except ValueError:
        within = -1.0  # refused below, in the service's words
    filters = agenda.SlotFilters(
        category=next((c for c in BOOKABLE if c.value == asked["categorie"]), None),
        profession_code=asked["profession"] if asked["profession"] in PROFESSIONS else None,
        department=asked["departement"] or None,
        near=asked["commune"] or None,
        within_km=within,
    )
    if asked["rayon"] and not asked["commune"]:
        error = "Indiquez la commune autour de laquelle chercher : le rayon se compte depuis elle."
    if not error:
        try:
            page = await agenda.search_slots(
                session=db, actor=actor, filters=filters, limit=20, per_agenda=3, cursor=curseur
            )
            items, next_cursor = page.items, page.next_cursor
        except ServiceError as exc:
            error = exc.message
    more = {k: v for k, v in asked.items() if v} | ({"patient": str(patient)} if patient else {})
    return render(
        request,
        "agenda/search.html",
        {
            "asked": asked,
            "categories": BOOKABLE,
            "professions": PROFESSIONS,
            "default_km": f"{agenda.DEFAULT_WITHIN_KM:.0f}",
            "max_km": f"{agenda.MAX_WITHIN_KM:.0f}",
            "error": error,
            "slots": items,
            "near": bool(asked["commune"]) and not error,
            "next_query": more | {"curseur": next_cursor} if next_cursor else None,
            "patient": str(patient) if patient else "",
        },
    )


# --- one agenda's week ---------------------------------------------------------------------------


@router.get("/agendas/{agenda_id}")
async def agenda_week(
    request: Request,
    agenda_id: AgendaId,
    actor: PageActor,
    db: SessionDep,
    semaine: Annotated[date | None, Query()] = None,
    patient: Annotated[PatientId | None, Query()] = None,
) -> Response:
    """The week as a table: free slots link to the booking form; busy periods are shown."""
    item = await agenda.get_agenda(session=db, actor=actor, agenda_id=agenda_id)
    monday = _monday(semaine)
    start, end = _utc_range(monday, 7)
    slots = await agenda.agenda_slots(
        session=db, actor=actor, agenda_id=agenda_id, start=start, end=end, limit=700
    )
    plan = await agenda.planning(session=db, actor=actor, agenda_ids=[agenda_id], start=start, end=end)
    busy = plan.agendas[0].busy if plan.agendas else []
    days, rows = week_grid(monday, slots.items, busy)
    availabilities = (
        (await agenda.list_availabilities(session=db, actor=actor, agenda_id=agenda_id)).items
        if item.can_manage
        else []
    )
    week_appointments = (
        (
            await agenda.list_appointments(
                session=db,
                actor=actor,
                agenda_id=agenda_id,
                start=start,
                end=end,
                statuses=(AppointmentStatus.PROPOSE, AppointmentStatus.RESERVE),
                limit=200,
            )
        ).items
        if item.can_manage
        else []
    )
    pid = str(patient) if patient else ""
    return render(
        request,
        "agenda/week.html",
        {
            "agenda": item,
            "monday": monday,
            "days": days,
            "day_names": DAYS,
            "rows": rows,
            "patient": pid,
            "previous": _agenda_href(item.id, monday - timedelta(days=7), pid),
            "next": _agenda_href(item.id, monday + timedelta(days=7), pid),
            "availabilities": availabilities,
            "appointments": week_appointments,
            "byday": list(zip(BYDAY, DAYS, strict=True)),
            "bookable_types": [t for t in item.event_types if t.bookable or item.can_manage],
        },
    )


@router.get("/agendas/{agenda_id}/reserver")
async def booking_form(
    request: Request,
    agenda_id: AgendaId,
    actor: PageActor,
    db: SessionDep,
    type: Annotated[uuid.UUID, Query()],
    debut: Annotated[datetime, Query()],
    patient: Annotated[PatientId | None, Query()] = None,
) -> Response:
    """Confirm a slot: the patient (optional) and a note, then book."""
    item = await agenda.get_agenda(session=db, actor=actor, agenda_id=agenda_id)
    event_type = next((t for t in item.event_types if t.id == type), None)
    return render(
        request,
        "agenda/book.html",
        {
            "agenda": item,
            "event_type": event_type,
            "start": debut,
            "patient": str(patient) if patient else "",
            "back": _agenda_href(item.id, _monday(debut.astimezone(PARIS).date()), str(patient or "")),
        },
    )


def _form_patient(form: dict[str, str]) -> str:
    return form.get("patient_id", "").strip()


@router.post("/agendas/{agenda_id}/reserver")
async def book(request: Request, agenda_id: AgendaId, actor: FormActor, db: SessionDep) -> Response:
    """Book the slot (a request when the agenda wants confirmation); back to the patient or week."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    patient = _form_patient(form)
    data: dict[str, Any] = {
        "agenda_id": str(agenda_id),
        "event_type_id": form.get("event_type_id", ""),
        "start": form.get("start", ""),
        "note": form.get("note", ""),
    }
    if patient:
        data["patient_id"] = patient
    week = f"/app/agendas/{agenda_id}"
    try:
        created = await agenda.book(session=db, actor=actor, data=AppointmentCreate.model_validate(data))
    except ValidationError as exc:
        await flash(request, db, f"Rendez-vous non pris — {_details(exc)}.", kind="erreur")
        return RedirectResponse(week, status_code=303)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return RedirectResponse(week, status_code=303)
    when = created.start.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
    if created.status == AppointmentStatus.PROPOSE:
        done = f"Demande de rendez-vous envoyée pour le {when} : le gestionnaire de l'agenda la confirmera."
    else:
        done = f"Rendez-vous pris le {when} ({created.event_type_name}, {created.agenda_name})."
    await flash(request, db, done)
    if created.patient_id is not None:
        return RedirectResponse(f"/app/patients/{created.patient_id}#rendez-vous", status_code=303)
    monday = _monday(created.start.astimezone(PARIS).date())
    return RedirectResponse(_agenda_href(agenda_id, monday, ""), status_code=303)


@router.post("/agendas/{agenda_id}/disponibilites")
async def add_opening_hours(
    request: Request, agenda_id: AgendaId, actor: FormActor, db: SessionDep
) -> Response:
    """Add a weekly opening-hours rule (first day, from, to, weekdays) — managers only."""
    form = await request.form()
    first = str(form.get("premier_jour", ""))
    start, finish = str(form.get("de", "")), str(form.get("a", ""))
    days = [d for d in form.getlist("jours") if isinstance(d, str) and d in BYDAY]
    back = RedirectResponse(f"/app/agendas/{agenda_id}#horaires", status_code=303)
    try:
        begin = datetime.fromisoformat(f"{first}T{start}")
        minutes = int((datetime.fromisoformat(f"{first}T{finish}") - begin).total_seconds() // 60)
    except ValueError:
        await flash(
            request, db, "Horaires non ajoutés — indiquez le premier jour et les heures.", kind="erreur"
        )
        return back
    if not days or minutes <= 0:
        await flash(
            request,
            db,
            "Horaires non ajoutés — cochez au moins un jour ; la fin suit le début.",
            kind="erreur",
        )
        return back
    data: dict[str, Any] = {
        "start_local": begin.strftime("%Y-%m-%dT%H:%M"),
        "duration_minutes": minutes,
        "rrule": "FREQ=WEEKLY;BYDAY=" + ",".join(days),
        "label": str(form.get("libelle", "")),
    }
    if form.get("event_type_id"):
        data["event_type_id"] = str(form.get("event_type_id"))
    try:
        await agenda.add_availability(
            session=db, actor=actor, agenda_id=agenda_id, data=AvailabilityCreate.model_validate(data)
        )
    except ValidationError as exc:
        await flash(request, db, f"Horaires non ajoutés — {_details(exc)}.", kind="erreur")
        return back
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return back
    await flash(request, db, f"Horaires ajoutés : de {start} à {finish}.")
    return back


def _back_to(form: dict[str, str]) -> RedirectResponse:
    """Back to the patient page (``retour``) or the agenda's week (``agenda``, ``semaine``)."""
    try:
        return RedirectResponse(f"/app/patients/{uuid.UUID(form.get('retour', ''))}#rendez-vous", 303)
    except ValueError:
        pass
    try:
        agenda_id = uuid.UUID(form.get("agenda", ""))
    except ValueError:
        return RedirectResponse("/app/agendas", status_code=303)
    try:
        monday = _monday(date.fromisoformat(form.get("semaine", "")))
    except ValueError:
        monday = _monday(None)
    return RedirectResponse(_agenda_href(agenda_id, monday, "") + "#rendez-vous", status_code=303)


async def _set_status(
    request: Request, db: SessionDep, actor: Actor, appointment_id: AppointmentId, status: str, done: str
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    back = _back_to(form)
    try:
        data = AppointmentUpdate.model_validate({"version": form.get("version"), "status": status})
        await agenda.update_appointment(session=db, actor=actor, appointment_id=appointment_id, data=data)
    except ValidationError as exc:
        await flash(request, db, f"Rendez-vous non modifié — {_details(exc)}.", kind="erreur")
        return back
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return back
    await flash(request, db, done)
    return back


@router.post("/rendez-vous/{appointment_id}/annuler")
async def cancel(
    request: Request, appointment_id: AppointmentId, actor: FormActor, db: SessionDep
) -> Response:
    """Cancel an appointment or decline a request (its booker or the agenda's managers)."""
    return await _set_status(request, db, actor, appointment_id, "annule", "Rendez-vous annulé.")


@router.post("/rendez-vous/{appointment_id}/confirmer")
async def confirm(
    request: Request, appointment_id: AppointmentId, actor: FormActor, db: SessionDep
) -> Response:
    """Confirm a requested appointment (the agenda's managers)."""
    return await _set_status(request, db, actor, appointment_id, "reserve", "Rendez-vous confirmé.")


# --- planning ------------------------------------------------------------------------------------


@router.get("/planning")
async def planning(
    request: Request,
    actor: PageActor,
    db: SessionDep,
    agenda_id: Annotated[list[AgendaId] | None, Query(alias="agenda")] = None,
    jour: Annotated[date | None, Query()] = None,
    vue: Annotated[str, Query(max_length=10)] = "semaine",
) -> Response:
    """Several agendas side by side over a day or a week: rows are days, columns agendas."""
    visible = await agenda.list_agendas(session=db, actor=actor, limit=50)
    chosen = list(dict.fromkeys(agenda_id or [a.id for a in visible.items][:5]))[:10]
    view = "jour" if vue == "jour" else "semaine"
    first = (jour or datetime.now(PARIS).date()) if view == "jour" else _monday(jour)
    count = 1 if view == "jour" else 7
    start, end = _utc_range(first, count)
    columns: list[AgendaOut] = []
    grid: list[tuple[date, list[list[tuple[str, str]]]]] = []
    if chosen:
        plan = await agenda.planning(session=db, actor=actor, agenda_ids=chosen, start=start, end=end)
        columns = [p.agenda for p in plan.agendas]
        for i in range(count):
            day = first + timedelta(days=i)
            grid.append((day, [_day_entries(p.openings, p.busy, day) for p in plan.agendas]))
    step = timedelta(days=count)
    return render(
        request,
        "agenda/planning.html",
        {
            "visible": visible.items,
            "chosen": [str(c) for c in chosen],
            "columns": columns,
            "grid": grid,
            "view": view,
            "first": first,
            "previous": (first - step).isoformat(),
            "following": (first + step).isoformat(),
            "day_names": DAYS,
        },
    )


def _day_entries(
    openings: list[tuple[datetime, datetime]], busy: list[BusyOut], day: date
) -> list[tuple[str, str]]:
    """(kind, text) for one agenda on one day, by time: « ouvert 09:00–12:00 », « occupé ... »."""
    entries: list[tuple[datetime, str, str]] = []
    for begin, finish in openings:
        if begin.astimezone(PARIS).date() == day:
            entries.append((begin, "ouvert", f"Ouvert {_hm(begin)}–{_hm(finish)}"))
    for period in busy:
        if period.start.astimezone(PARIS).date() == day:
            if period.kind == "indisponibilite":
                what = "Indisponible"
            else:
                what = period.event_type_name or "Rendez-vous"
                if period.status is not None:
                    what += f" ({period.status.label})"
            entries.append((period.start, "occupe", f"{_hm(period.start)}–{_hm(period.end)} {what}"))
    return [(kind, text) for _at, kind, text in sorted(entries, key=lambda e: (e[0], e[1]))]


def _hm(value: datetime) -> str:
    return value.astimezone(PARIS).strftime("%H:%M")
