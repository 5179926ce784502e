"""Agendas: settings, event types, availability (materialised into openings), free slots, booking,
appointments, planning, the ICS feed.

Access. An agenda is managed by its owner (the professional of a professional agenda) and its
delegates (for a structure or resource agenda, the professional who created it is its first
delegate). Who else sees its free/busy and who may book is set per agenda (``visibility``,
``booking``: everyone in the directory, the professionals of the agenda's structure, nobody; one who
may book also sees free/busy). An agenda the actor may not see answers 404, as if it did not exist.

An appointment is read by the agenda's managers, its booker and its participants; others who see the
agenda's free/busy get a busy block without details. An appointment may name a patient only when the
booker is an authorised member of the patient's circle (``circle_access.require_authorised``, at the
moment of booking); every read or write of an appointment that names a patient is audited, in the
same transaction. Read models (pydantic) only leave this module.

No double booking: see ``models``. A booking locks its agenda (PostgreSQL ``FOR UPDATE``; the
service's SQLite engine begins every transaction ``IMMEDIATE``), checks for an overlap, and inserts;
the partial unique index on (agenda, start) is the guarantee if anything slips through: the loser
answers 409 ``AZ_SLOT_TAKEN`` with the next free slots, never 500.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Select,
    and_,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.exc import StaleDataError

from coordination import patch
from coordination.agenda import geo, rules
from coordination.agenda.models import (
    ACTIVE_STATUSES,
    Agenda,
    AgendaDelegate,
    Appointment,
    Availability,
    EventType,
    FreeSlot,
    Opening,
    Unavailability,
)
from coordination.agenda.schemas import (
    AgendaCreate,
    AgendaOut,
    AgendaPlanningOut,
    AgendaUpdate,
    AppointmentCreate,
    AppointmentOut,
    AppointmentUpdate,
    AvailabilityCreate,
    AvailabilityOut,
    BusyOut,
    EventTypeCreate,
    EventTypeOut,
    PlanningOut,
    SlotOut,
    UnavailabilityCreate,
    UnavailabilityOut,
)
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.db import commit_or_conflict, utcnow
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound
from coordination.ids import (
    AgendaId,
    AppointmentId,
    AvailabilityId,
    EventTypeId,
    NationalId,
    PatientId,
    StructureId,
    UnavailabilityId,
    UserId,
)
from coordination.outbox import service as outbox
from coordination.outbox.events import AppointmentBooked, AppointmentCancelled
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.security import Actor
from coordination.vocab import AgendaAudience, AgendaOwnerKind, AppointmentStatus, EventCategory, parse

logger = logging.getLogger(__name__)

MAX_PAGE = 200
HORIZON_DAYS = 400
"""Openings and free slots are materialised from 31 days ago to this many days ahead at every
availability change, and rolled forward as time passes (``roll_forward``)."""
ROLL_DAYS = 30
"""An agenda whose materialisation ends less than ``HORIZON_DAYS - ROLL_DAYS`` days ahead is
rematerialised (by the next search or planning read, or ``roll_forward``): the openings always reach
at least 370 days ahead, and each agenda is rewritten about once a month, not daily."""
ROLL_BATCH = 5
"""Agendas rolled forward by one read at most (the rest by the next reads)."""
ROLL_CHECK_SECONDS = 600
"""A read looks for agendas to roll forward at most this often per database and process: the
margin is ``ROLL_DAYS``, and the look-up (a transaction of its own) is not on every search."""
_roll_checked: dict[str, datetime] = {}
PAST_DAYS = 31
MAX_RANGE_DAYS = 92
"""A search, a planning or a slot list covers at most this many days (about three months)."""
FIRST_BATCH = 16
"""Free slots read by the search's first statement (or the page's size, if larger); each further one
reads twice as many (up to ``LAST_BATCH``), when the per-agenda cap left the page short."""
LAST_BATCH = 512
MAX_BATCHES = 12
SUGGESTIONS = 5
DEFAULT_WITHIN_KM = 20.0
MAX_WITHIN_KM = 200.0
"""The radius of a search by distance from a commune: 20 km unless asked, at most 200 (a region)."""
FEW_AGENDAS = 16
"""A search by distance that keeps at most this many agendas reads their slots by agenda
(``agenda_id IN``, the primary key: a range per agenda, then a sort); more, it keeps the start-ordered
scan of ``ix_agenda_free_slots_start`` with the bounding box on the joined agenda row, as a city
filter does, and drops the rows of agendas outside the circle. Measured (bench/README.md): with
``IN`` over 100 and 350 agendas SQLite read each one's month of slots and sorted them (p95 65 and 227
ms), against about 1 ms for the start-ordered scan."""

# --- errors --------------------------------------------------------------------------------------


def _unknown_agenda() -> NotFound:
    return NotFound(
        "Agenda introuvable, ou vous n'y avez pas accès : vérifiez le lien, ou demandez à son "
        "propriétaire de vous l'ouvrir.",
        errcode=ErrCode.UNKNOWN_AGENDA,
    )


def _unknown_appointment() -> NotFound:
    return NotFound(
        "Rendez-vous introuvable, ou vous n'y avez pas accès : vérifiez le lien.",
        errcode=ErrCode.UNKNOWN_APPOINTMENT,
    )


def _not_manager() -> Forbidden:
    return Forbidden(
        "Seuls le propriétaire de cet agenda et ses délégués peuvent le modifier : demandez-leur de "
        "vous ajouter comme délégué.",
        errcode=ErrCode.NOT_AGENDA_MANAGER,
    )


def _stale(what: str) -> Conflict:
    return Conflict(
        f"{what} a été modifié entre-temps par quelqu'un d'autre : rechargez-le, puis refaites votre "
        "modification.",
        errcode=ErrCode.STALE_VERSION,
    )


class SlotTaken(Conflict):
    """The slot is no longer free; the router answers 409 with ``next_slots``."""

    errcode = ErrCode.SLOT_TAKEN

    def __init__(self, next_slots: list[SlotOut]) -> None:
        hint = (
            "choisissez l'un des prochains créneaux libres proposés."
            if next_slots
            else "aucun autre créneau libre dans les semaines qui viennent : cherchez dans un autre agenda."
        )
        super().__init__(f"Ce créneau vient d'être réservé par quelqu'un d'autre : {hint}")
        self.next_slots = next_slots


def _window(start: datetime | None, end: datetime | None, *, default_days: int) -> tuple[datetime, datetime]:
    """A UTC search window, checked (end after start, at most ``MAX_RANGE_DAYS``)."""
    begin = rules.aware(start or utcnow()).astimezone(UTC)
    finish = rules.aware(end).astimezone(UTC) if end else begin + timedelta(days=default_days)
    if finish <= begin:
        raise Invalid("La fin de la période doit être après son début.", field="end")
    if finish - begin > timedelta(days=MAX_RANGE_DAYS):
        raise Invalid(
            f"Période trop longue : {MAX_RANGE_DAYS} jours au plus ; découpez votre recherche.", field="end"
        )
    return begin, finish


# --- access --------------------------------------------------------------------------------------


async def _delegates(session: AsyncSession, agenda_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = defaultdict(list)
    if agenda_ids:
        rows = await session.execute(
            select(AgendaDelegate.agenda_id, AgendaDelegate.national_id)
            .where(AgendaDelegate.agenda_id.in_(list(agenda_ids)))
            .order_by(AgendaDelegate.national_id)
        )
        for agenda_id, nid in rows.tuples():
            found[agenda_id].append(nid)
    return found


def _is_manager(agenda: Agenda, delegates: Iterable[str], actor: Actor) -> bool:
    return agenda.owner_national_id == actor.national_id or actor.national_id in set(delegates)


def _access(agenda: Agenda, delegates: Iterable[str], actor: Actor) -> rules.AgendaAccess:
    return rules.access(
        manager=_is_manager(agenda, delegates, actor),
        visibility=parse(AgendaAudience, agenda.visibility),
        booking=parse(AgendaAudience, agenda.booking),
        agenda_structure=agenda.structure_id,
        actor_structures=actor.structure_ids,
    )


def _managed_by(actor: Actor) -> ColumnElement[bool]:
    """SQL: the agenda is managed by ``actor``."""
    return or_(
        Agenda.owner_national_id == actor.national_id,
        Agenda.id.in_(
            select(AgendaDelegate.agenda_id).where(AgendaDelegate.national_id == actor.national_id)
        ),
    )


def _audience(column: InstrumentedAttribute[str], actor: Actor) -> ColumnElement[bool]:
    """SQL: ``actor`` is in the audience stored in ``column`` (visibility or booking)."""
    mine = (
        and_(
            column == AgendaAudience.MES_STRUCTURES.value,
            Agenda.structure_id.in_(sorted(actor.structure_ids)),
        )
        if actor.structure_ids
        else false()
    )
    return or_(column == AgendaAudience.ANNUAIRE.value, mine)


def _bookable_by(actor: Actor) -> ColumnElement[bool]:
    return or_(_audience(Agenda.booking, actor), _managed_by(actor))


def _visible_to(actor: Actor) -> ColumnElement[bool]:
    return or_(_audience(Agenda.visibility, actor), _audience(Agenda.booking, actor), _managed_by(actor))


@dataclass(frozen=True, slots=True)
class _Loaded:
    agenda: Agenda
    delegates: list[str]
    access: rules.AgendaAccess


async def _load_agenda(session: AsyncSession, actor: Actor, agenda_id: uuid.UUID) -> _Loaded:
    """The agenda if the actor may at least see its free/busy; 404 otherwise."""
    agenda = await session.get(Agenda, agenda_id)
    if agenda is None:
        raise _unknown_agenda()
    delegates = (await _delegates(session, [agenda.id]))[agenda.id]
    acc = _access(agenda, delegates, actor)
    if not acc.see_busy:
        raise _unknown_agenda()
    return _Loaded(agenda, delegates, acc)


async def _managed(session: AsyncSession, actor: Actor, agenda_id: uuid.UUID) -> _Loaded:
    loaded = await _load_agenda(session, actor, agenda_id)
    if not loaded.access.manage:
        raise _not_manager()
    return loaded


# --- read models ---------------------------------------------------------------------------------


def _event_type_out(et: EventType) -> EventTypeOut:
    return EventTypeOut(
        id=EventTypeId(et.id),
        agenda_id=AgendaId(et.agenda_id),
        name=et.name,
        category=parse(EventCategory, et.category),
        duration_minutes=et.duration_minutes,
        colour=et.colour,
        bookable=et.bookable,
    )


async def _owner_labels(session: AsyncSession, agendas: Sequence[Agenda]) -> dict[uuid.UUID, str]:
    persons = await directory.display_names(
        session=session, national_ids=[a.owner_national_id for a in agendas if a.owner_national_id]
    )
    structures = await directory.structure_names(
        session=session, structure_ids=[a.structure_id for a in agendas if a.structure_id]
    )
    labels: dict[uuid.UUID, str] = {}
    for a in agendas:
        if a.owner_national_id:
            labels[a.id] = persons.get(a.owner_national_id, a.owner_national_id)
        else:
            labels[a.id] = structures.get(a.structure_id or "", a.structure_id or a.name)
    return labels


async def _agenda_outs(session: AsyncSession, actor: Actor, agendas: Sequence[Agenda]) -> list[AgendaOut]:
    ids = [a.id for a in agendas]
    delegates = await _delegates(session, ids)
    types: dict[uuid.UUID, list[EventTypeOut]] = defaultdict(list)
    if ids:
        for et in await session.scalars(
            select(EventType).where(EventType.agenda_id.in_(ids)).order_by(EventType.name, EventType.id)
        ):
            types[et.agenda_id].append(_event_type_out(et))
    labels = await _owner_labels(session, agendas)
    outs = []
    for a in agendas:
        acc = _access(a, delegates[a.id], actor)
        outs.append(
            AgendaOut(
                id=AgendaId(a.id),
                version=a.version,
                name=a.name,
                owner_kind=parse(AgendaOwnerKind, a.owner_kind),
                owner_national_id=NationalId(a.owner_national_id) if a.owner_national_id else None,
                structure_id=StructureId(a.structure_id) if a.structure_id else None,
                owner_label=labels[a.id],
                visibility=parse(AgendaAudience, a.visibility),
                booking=parse(AgendaAudience, a.booking),
                requires_confirmation=a.requires_confirmation,
                profession_code=a.profession_code,
                specialty=a.specialty,
                city=a.city,
                postal_code=a.postal_code,
                department=a.department,
                delegate_national_ids=[NationalId(n) for n in delegates[a.id]] if acc.manage else [],
                event_types=types[a.id],
                can_manage=acc.manage,
                can_book=acc.book,
                ics_enabled=a.ics_token_hash is not None,
            )
        )
    return outs


async def _agenda_out(session: AsyncSession, actor: Actor, agenda: Agenda) -> AgendaOut:
    return (await _agenda_outs(session, actor, [agenda]))[0]


def _split_participants(keys: Iterable[str]) -> tuple[list[NationalId], list[StructureId]]:
    nids = [NationalId(k[3:]) for k in keys if k.startswith("pp:")]
    sids = [StructureId(k[3:]) for k in keys if k.startswith("st:")]
    return nids, sids


def _appointment_out(appt: Appointment, agenda_name: str, et: EventType) -> AppointmentOut:
    nids, sids = _split_participants(appt.participants)
    return AppointmentOut(
        id=AppointmentId(appt.id),
        version=appt.version,
        agenda_id=AgendaId(appt.agenda_id),
        agenda_name=agenda_name,
        event_type_id=EventTypeId(appt.event_type_id),
        event_type_name=et.name,
        category=parse(EventCategory, et.category),
        start=appt.start_at,
        end=appt.end_at,
        start_local=rules.local_iso(appt.start_at),
        status=parse(AppointmentStatus, appt.status),
        patient_id=PatientId(appt.patient_id) if appt.patient_id else None,
        note=appt.note,
        participant_national_ids=nids,
        participant_structure_ids=sids,
        booked_by_national_id=NationalId(appt.booked_by_national_id),
        booked_by_user_id=UserId(appt.booked_by_user_id),
        created_at=appt.created_at,
    )


async def _appointment_outs(session: AsyncSession, appts: Sequence[Appointment]) -> list[AppointmentOut]:
    agenda_ids = {a.agenda_id for a in appts}
    type_ids = {a.event_type_id for a in appts}
    names: dict[uuid.UUID, str] = {}
    types: dict[uuid.UUID, EventType] = {}
    if appts:
        rows = await session.execute(select(Agenda.id, Agenda.name).where(Agenda.id.in_(agenda_ids)))
        names = {agenda_id: name for agenda_id, name in rows.tuples()}
        types = {
            et.id: et for et in await session.scalars(select(EventType).where(EventType.id.in_(type_ids)))
        }
    return [_appointment_out(a, names[a.agenda_id], types[a.event_type_id]) for a in appts]


# --- agendas -------------------------------------------------------------------------------------


async def _check_delegates(session: AsyncSession, national_ids: Sequence[str]) -> list[str]:
    wanted = sorted(set(national_ids))
    active = await directory.active_national_ids(session=session, national_ids=wanted)
    unknown = [n for n in wanted if n not in active]
    if unknown:
        raise Invalid(
            f"Délégué inconnu ou inactif dans l'annuaire : {', '.join(unknown)}. Vérifiez l'identifiant "
            "national (8 + RPPS).",
            field="delegate_national_ids",
        )
    return wanted


def _position(postal_code: str | None, city: str | None) -> dict[str, float | None]:
    """The point of the commune of a directory place (None, None when it names no known commune)."""
    commune = geo.locate(postal_code, city) if postal_code or city else None
    if commune is None:
        if postal_code or city:
            logger.info("agenda place not located: postal code %r, city %r", postal_code, city)
        return {"latitude": None, "longitude": None}
    return {"latitude": commune.latitude, "longitude": commune.longitude}


async def _place(session: AsyncSession, actor: Actor, data: AgendaCreate) -> dict[str, str | float | None]:
    """Where the agenda is (with its commune's point) and what profession it offers, copied from the
    directory."""
    place = await _directory_place(session, actor, data)
    return {**place, **_position(place["postal_code"], place["city"])}


async def _directory_place(session: AsyncSession, actor: Actor, data: AgendaCreate) -> dict[str, str | None]:
    if data.owner_kind is AgendaOwnerKind.PROFESSIONNEL:
        card = await directory.get_person(session=session, national_id=actor.national_id)
        site = next(
            (s for s in card.sites if data.structure_id and s.structure_id == data.structure_id), None
        )
        site = site or (card.sites[0] if card.sites else None)
        return {
            "profession_code": card.profession_code,
            "specialty": site.specialty if site else None,
            "city": site.city if site else None,
            "postal_code": site.postal_code if site else None,
            "department": site.department if site else None,
        }
    structure = await directory.get_structure(session=session, structure_id=data.structure_id or "")
    return {
        "profession_code": None,
        "specialty": None,
        "city": structure.city,
        "postal_code": structure.postal_code,
        "department": structure.department,
    }


async def create_agenda(*, session: AsyncSession, actor: Actor, data: AgendaCreate) -> AgendaOut:
    """Create an agenda. A professional agenda belongs to the actor (its structure, if given, must be
    one of theirs); a structure or resource agenda needs a structure the actor works at, and the
    actor becomes its first delegate."""
    if data.owner_kind is not AgendaOwnerKind.PROFESSIONNEL and data.structure_id is None:
        raise Invalid(
            "Un agenda de structure ou de ressource doit indiquer sa structure (structure_id).",
            field="structure_id",
        )
    if data.structure_id is not None and data.structure_id not in actor.structure_ids:
        raise Forbidden(
            "Vous ne pouvez créer un agenda que pour une structure où vous exercez : choisissez l'une "
            "de vos structures.",
            errcode=ErrCode.NOT_YOUR_STRUCTURE,
        )
    delegates = await _check_delegates(session, data.delegate_national_ids)
    professional = data.owner_kind is AgendaOwnerKind.PROFESSIONNEL
    if not professional and actor.national_id not in delegates:
        delegates.append(actor.national_id)
    agenda = Agenda(
        id=uuid.uuid4(),
        owner_kind=data.owner_kind.value,
        owner_national_id=actor.national_id if professional else None,
        structure_id=data.structure_id,
        name=data.name,
        visibility=data.visibility.value,
        booking=data.booking.value,
        requires_confirmation=data.requires_confirmation,
        created_by=actor.national_id,
        **await _place(session, actor, data),
    )
    session.add(agenda)
    await session.flush()
    session.add_all(AgendaDelegate(agenda_id=agenda.id, national_id=n) for n in delegates)
    await session.commit()
    logger.info("agenda %s created by %s", agenda.id, actor.national_id)
    return await _agenda_out(session, actor, agenda)


async def get_agenda(*, session: AsyncSession, actor: Actor, agenda_id: AgendaId) -> AgendaOut:
    """One agenda the actor may see (404 otherwise)."""
    loaded = await _load_agenda(session, actor, agenda_id)
    return await _agenda_out(session, actor, loaded.agenda)


async def list_agendas(
    *,
    session: AsyncSession,
    actor: Actor,
    managed_only: bool = False,
    structure_id: StructureId | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AgendaOut]:
    """Agendas the actor may see (or manage, with ``managed_only``), by name."""
    position = decode_cursor(cursor) or {}
    query = select(Agenda).where(_managed_by(actor) if managed_only else _visible_to(actor))
    if structure_id is not None:
        query = query.where(Agenda.structure_id == structure_id)
    if position:
        query = query.where(
            tuple_(Agenda.name, Agenda.id) > (str(position.get("n")), uuid.UUID(str(position.get("i"))))
        )
    rows = list((await session.scalars(query.order_by(Agenda.name, Agenda.id).limit(limit + 1))).all())
    items = await _agenda_outs(session, actor, rows[:limit])
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page[AgendaOut](
        items=items, next_cursor=encode_cursor({"n": last.name, "i": str(last.id)}) if last else None
    )


async def update_agenda(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, data: AgendaUpdate
) -> AgendaOut:
    """Change an agenda's name, audiences, confirmation mode or delegates (managers only)."""
    loaded = await _managed(session, actor, agenda_id)
    agenda = loaded.agenda
    if agenda.version != data.version:
        raise _stale("L'agenda")
    changed = patch.changes(data)
    changed.pop("version", None)
    for null_refused in ("name", "visibility", "booking", "requires_confirmation"):
        if null_refused in changed and changed[null_refused] is None:
            raise Invalid("Ce champ ne peut pas être vide.", field=null_refused)
    delegates = changed.pop("delegate_national_ids", None)
    for key, value in changed.items():
        setattr(agenda, key, value.value if isinstance(value, AgendaAudience) else value)
    if delegates is not None:
        kept = await _check_delegates(session, delegates)
        if agenda.owner_national_id is None and not kept:
            raise Invalid(
                "Un agenda de structure garde au moins un délégué pour le gérer.",
                field="delegate_national_ids",
            )
        await session.execute(delete(AgendaDelegate).where(AgendaDelegate.agenda_id == agenda.id))
        session.add_all(AgendaDelegate(agenda_id=agenda.id, national_id=n) for n in kept)
    if agenda.latitude is None and (agenda.postal_code or agenda.city):
        # Placed before its commune was known (a newer communes file locates it now).
        for key, value in _position(agenda.postal_code, agenda.city).items():
            setattr(agenda, key, value)
    agenda.updated_at = utcnow()
    await commit_or_conflict(session, on_stale=_stale("L'agenda"))
    return await _agenda_out(session, actor, agenda)


async def add_event_type(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, data: EventTypeCreate
) -> EventTypeOut:
    """Add an event type to an agenda (managers only)."""
    await _managed(session, actor, agenda_id)
    await _lock_agenda(session, agenda_id)  # before any insert: see ``_lock_agenda``
    et = EventType(
        id=uuid.uuid4(),
        agenda_id=agenda_id,
        name=data.name,
        category=data.category.value,
        duration_minutes=data.duration_minutes,
        colour=data.colour.lower(),
        bookable=data.bookable and data.category is not EventCategory.INDISPONIBILITE,
    )
    session.add(et)
    if et.bookable:
        await session.flush()
        await _refresh_free_slots(session, agenda_id)
    await session.commit()
    return _event_type_out(et)


# --- availability and openings -------------------------------------------------------------------


def _availability_out(av: Availability) -> AvailabilityOut:
    return AvailabilityOut(
        id=AvailabilityId(av.id),
        agenda_id=AgendaId(av.agenda_id),
        event_type_id=EventTypeId(av.event_type_id) if av.event_type_id else None,
        start_local=av.start_local,
        duration_minutes=av.duration_minutes,
        rrule=av.rrule,
        exdates=list(av.exdates),
        label=av.label,
    )


def _horizon(now: datetime) -> rules.Interval:
    return now - timedelta(days=PAST_DAYS), now + timedelta(days=HORIZON_DAYS)


def _expand(av: Availability, window: rules.Interval) -> list[rules.Interval]:
    return rules.occurrences(
        start_local=rules.parse_local(av.start_local),
        duration=timedelta(minutes=av.duration_minutes),
        rule=av.rrule,
        exdates=[rules.parse_local(x) for x in av.exdates],
        window=window,
    )


def _checked_expansion(av: Availability) -> None:
    """Refuse, in French, an availability whose rule cannot be read or expands without bound."""
    try:
        _expand(av, _horizon(utcnow()))
    except (ValueError, TypeError, OverflowError) as exc:
        raise Invalid(
            "Règle de récurrence illisible ou non prise en charge (RFC 5545 sans DTSTART ; FREQ=DAILY, "
            "WEEKLY ou MONTHLY, avec INTERVAL, BYDAY, BYMONTH, UNTIL ou COUNT) : par exemple "
            "« FREQ=WEEKLY;BYDAY=MO,TH » ou « FREQ=WEEKLY;INTERVAL=2;UNTIL=20261231T235959 ».",
            field="rrule",
        ) from exc


async def rebuild_openings(
    *, session: AsyncSession, agenda_id: uuid.UUID, now: datetime | None = None
) -> int:
    """Recompute the agenda's openings (availability minus unavailability) and its free slots over
    the horizon, in the caller's transaction, under the agenda's lock; returns how many opening
    windows were written."""
    await _lock_agenda(session, agenda_id)
    window = _horizon(now or utcnow())
    availabilities = (
        await session.scalars(select(Availability).where(Availability.agenda_id == agenda_id))
    ).all()
    holes = [
        (u.start_at, u.end_at)
        for u in await session.scalars(
            select(Unavailability).where(
                Unavailability.agenda_id == agenda_id,
                Unavailability.end_at > window[0],
                Unavailability.start_at < window[1],
            )
        )
    ]
    await session.execute(delete(Opening).where(Opening.agenda_id == agenda_id))
    rows = [
        {"agenda_id": agenda_id, "event_type_id": av.event_type_id, "start_at": start, "end_at": end}
        for av in availabilities
        for start, end in rules.subtract(_expand(av, window), holes)
    ]
    if rows:
        await session.execute(insert(Opening), rows)
    await _refresh_free_slots(session, agenda_id)
    # A Core UPDATE: materialising is not an edit of the agenda, so its version (what a PATCH must
    # carry) does not move.
    await session.execute(update(Agenda).where(Agenda.id == agenda_id).values(openings_until=window[1]))
    return len(rows)


async def _refresh_free_slots(
    session: AsyncSession, agenda_id: uuid.UUID, span: rules.Interval | None = None
) -> int:
    """Recompute the agenda's materialised free slots: all of them, or (``span``) those of the
    openings that overlap ``span`` (an appointment that stopped holding its slot). The caller holds
    the agenda's lock (a booking of this agenda waits for our commit, and we see its own) and has
    flushed the change. Returns how many free slots were written."""
    if span is None:
        region: rules.Interval | None = None
        await session.execute(delete(FreeSlot).where(FreeSlot.agenda_id == agenda_id))
        opening_filter: list[ColumnElement[bool]] = []
    else:
        bounds = (
            await session.execute(
                select(func.min(Opening.start_at), func.max(Opening.end_at)).where(
                    Opening.agenda_id == agenda_id, Opening.start_at < span[1], Opening.end_at > span[0]
                )
            )
        ).one()
        if bounds[0] is None:
            return 0
        region = (bounds[0], bounds[1])
        await session.execute(
            delete(FreeSlot).where(
                FreeSlot.agenda_id == agenda_id,
                FreeSlot.start_at >= region[0],
                FreeSlot.start_at < region[1],
            )
        )
        opening_filter = [Opening.start_at < region[1], Opening.end_at > region[0]]
    openings = list(
        (
            await session.execute(
                select(Opening.event_type_id, Opening.start_at, Opening.end_at)
                .where(Opening.agenda_id == agenda_id, *opening_filter)
                .order_by(Opening.start_at)
            )
        ).tuples()
    )
    if not openings:
        return 0
    types = list(
        (
            await session.execute(
                select(EventType.id, EventType.duration_minutes).where(
                    EventType.agenda_id == agenda_id, EventType.bookable.is_(True)
                )
            )
        ).tuples()
    )
    busy_span = (openings[0][1], max(o[2] for o in openings))
    busy = (await _busy(session, [agenda_id], busy_span))[agenda_id]
    slots = rules.materialised_slots(openings=openings, types=types, busy=busy, region=region)
    rows = [
        {"agenda_id": agenda_id, "event_type_id": type_id, "start_at": start, "end_at": end}
        for type_id, start, end in slots
    ]
    for i in range(0, len(rows), 5000):
        await session.execute(insert(FreeSlot), rows[i : i + 5000])
    return len(rows)


async def _take_free_slots(session: AsyncSession, agenda_id: uuid.UUID, slot: rules.Interval) -> None:
    """A booking holds ``slot``: the free slots of every type that overlap it are no longer free."""
    await session.execute(
        delete(FreeSlot).where(
            FreeSlot.agenda_id == agenda_id, FreeSlot.start_at < slot[1], FreeSlot.end_at > slot[0]
        )
    )


async def _roll_forward_now_and_then(session: AsyncSession) -> None:
    """Roll ``ROLL_BATCH`` agendas forward if due, at most every ``ROLL_CHECK_SECONDS`` per database
    (more next time when a batch was full)."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    now = utcnow()
    last = _roll_checked.get(key)
    if last is not None and now - last < timedelta(seconds=ROLL_CHECK_SECONDS):
        return
    if await roll_forward(session=session, now=now, limit=ROLL_BATCH) < ROLL_BATCH:
        _roll_checked[key] = now


async def roll_forward(
    *, session: AsyncSession, now: datetime | None = None, limit: int | None = None
) -> int:
    """Rematerialise the agendas whose openings end too soon (see ``ROLL_DAYS``), one transaction
    each, at most ``limit`` of them (None: all); returns how many were rolled. Called by the slot
    searches and the planning (``ROLL_BATCH`` at a time, see ``_roll_forward_now_and_then``)."""
    moment = now or utcnow()
    threshold = moment + timedelta(days=HORIZON_DAYS - ROLL_DAYS)
    query = select(Agenda.id).where(Agenda.openings_until < threshold).order_by(Agenda.openings_until)
    if limit is not None:
        query = query.limit(limit)
    due = list((await session.scalars(query)).all())
    await session.commit()
    rolled = 0
    for agenda_id in due:
        await _lock_agenda(session, agenda_id)
        # Another read may have rolled it while we waited for the lock.
        still_due = await session.scalar(
            select(Agenda.id).where(Agenda.id == agenda_id, Agenda.openings_until < threshold)
        )
        if still_due is not None:
            await rebuild_openings(session=session, agenda_id=agenda_id, now=moment)
            rolled += 1
        await session.commit()
    if rolled:
        logger.info("openings of %d agendas rolled forward", rolled)
    return rolled


async def _agenda_event_type(
    session: AsyncSession, agenda_id: uuid.UUID, event_type_id: uuid.UUID
) -> EventType:
    et = await session.get(EventType, event_type_id)
    if et is None or et.agenda_id != agenda_id:
        raise Invalid(
            "Type d'événement inconnu dans cet agenda : choisissez l'un de ses types.", field="event_type_id"
        )
    return et


def _checked_local(value: str, field: str) -> str:
    try:
        rules.parse_local(value)
    except ValueError as exc:
        raise Invalid(
            "Date et heure invalides : attendu AAAA-MM-JJTHH:MM (heure de Paris).", field=field
        ) from exc
    return value


async def add_availability(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, data: AvailabilityCreate
) -> AvailabilityOut:
    """Add recurring opening hours (managers only) and recompute the openings."""
    await _managed(session, actor, agenda_id)
    await _lock_agenda(session, agenda_id)  # before any insert: see ``_lock_agenda``
    if data.event_type_id is not None:
        await _agenda_event_type(session, agenda_id, data.event_type_id)
    av = Availability(
        id=uuid.uuid4(),
        agenda_id=agenda_id,
        event_type_id=data.event_type_id,
        start_local=_checked_local(data.start_local, "start_local"),
        duration_minutes=data.duration_minutes,
        rrule=data.rrule,
        exdates=sorted({_checked_local(x, "exdates") for x in data.exdates}),
        label=data.label,
    )
    _checked_expansion(av)
    session.add(av)
    await session.flush()
    await rebuild_openings(session=session, agenda_id=agenda_id)
    await session.commit()
    return _availability_out(av)


async def list_availabilities(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId
) -> Page[AvailabilityOut]:
    """The agenda's recurring opening hours (anyone who sees its free/busy)."""
    await _load_agenda(session, actor, agenda_id)
    rows = await session.scalars(
        select(Availability)
        .where(Availability.agenda_id == agenda_id)
        .order_by(Availability.start_local, Availability.id)
    )
    return Page[AvailabilityOut](items=[_availability_out(a) for a in rows])


async def _availability(
    session: AsyncSession, agenda_id: uuid.UUID, availability_id: uuid.UUID
) -> Availability:
    av = await session.get(Availability, availability_id)
    if av is None or av.agenda_id != agenda_id:
        raise NotFound("Plage d'ouverture inconnue dans cet agenda : rechargez l'agenda.")
    return av


async def add_exceptions(
    *,
    session: AsyncSession,
    actor: Actor,
    agenda_id: AgendaId,
    availability_id: AvailabilityId,
    exdates: Sequence[str],
) -> AvailabilityOut:
    """Cancel occurrences of a recurring availability (EXDATE: a holiday, a cancelled morning)."""
    await _managed(session, actor, agenda_id)
    await _lock_agenda(session, agenda_id)  # before any insert: see ``_lock_agenda``
    av = await _availability(session, agenda_id, availability_id)
    av.exdates = sorted(set(av.exdates) | {_checked_local(x, "exdates") for x in exdates})
    await rebuild_openings(session=session, agenda_id=agenda_id)
    await session.commit()
    return _availability_out(av)


async def delete_availability(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, availability_id: AvailabilityId
) -> None:
    """Remove opening hours (booked appointments stay: cancel them explicitly)."""
    await _managed(session, actor, agenda_id)
    await _lock_agenda(session, agenda_id)  # before any insert: see ``_lock_agenda``
    av = await _availability(session, agenda_id, availability_id)
    await session.delete(av)
    await session.flush()
    await rebuild_openings(session=session, agenda_id=agenda_id)
    await session.commit()


def _unavailability_out(u: Unavailability) -> UnavailabilityOut:
    return UnavailabilityOut(
        id=UnavailabilityId(u.id),
        agenda_id=AgendaId(u.agenda_id),
        start=u.start_at,
        end=u.end_at,
        reason=u.reason,
    )


async def add_unavailability(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, data: UnavailabilityCreate
) -> UnavailabilityOut:
    """Close the agenda over a period (managers only); its openings are recomputed."""
    await _managed(session, actor, agenda_id)
    await _lock_agenda(session, agenda_id)  # before any insert: see ``_lock_agenda``
    if data.start.tzinfo is None or data.end.tzinfo is None:
        raise Invalid("Indiquez le fuseau horaire des dates (par exemple +02:00).", field="start")
    if data.end <= data.start:
        raise Invalid("La fin de l'indisponibilité doit être après son début.", field="end")
    u = Unavailability(
        id=uuid.uuid4(), agenda_id=agenda_id, start_at=data.start, end_at=data.end, reason=data.reason
    )
    session.add(u)
    await session.flush()
    await rebuild_openings(session=session, agenda_id=agenda_id)
    await session.commit()
    return _unavailability_out(u)


async def list_unavailabilities(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId
) -> Page[UnavailabilityOut]:
    """The agenda's closed periods (managers only: the reason may be personal)."""
    await _managed(session, actor, agenda_id)
    rows = await session.scalars(
        select(Unavailability).where(Unavailability.agenda_id == agenda_id).order_by(Unavailability.start_at)
    )
    return Page[UnavailabilityOut](items=[_unavailability_out(u) for u in rows])


async def delete_unavailability(
    *, session: AsyncSession, actor: Actor, agenda_id: AgendaId, unavailability_id: UnavailabilityId
) -> None:
    await _managed(session, actor, agenda_id)
    await _lock_agenda(session, agenda_id)  # before any insert: see ``_lock_agenda``
    u = await session.get(Unavailability, unavailability_id)
    if u is None or u.agenda_id != agenda_id:
        raise NotFound("Indisponibilité inconnue dans cet agenda : rechargez l'agenda.")
    await session.delete(u)
    await session.flush()
    await rebuild_openings(session=session, agenda_id=agenda_id)
    await session.commit()


# --- free slots ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlotFilters:
    """Filters of the region-wide search (all optional; ``category`` or ``event_type_id`` narrows the
    kind of appointment, the others the agendas)."""

    category: EventCategory | None = None
    event_type_id: EventTypeId | None = None
    agenda_ids: tuple[AgendaId, ...] = ()
    profession_code: str | None = None
    specialty: str | None = None
    structure_id: StructureId | None = None
    department: str | None = None
    city: str | None = None
    postal_code: str | None = None
    near: str | None = None
    """A commune (name, postal code or INSEE code, ``geo.find``): only agendas within ``within_km``
    of it, each slot with its distance. Agendas without coordinates are left out."""
    within_km: float = DEFAULT_WITHIN_KM


@dataclass(frozen=True, slots=True)
class _Row:
    """One materialised free slot of the search, with what the answer shows of its agenda and type."""

    agenda_id: uuid.UUID
    event_type_id: uuid.UUID
    start: datetime
    end: datetime
    agenda_name: str
    owner_national_id: str | None
    structure_id: str | None
    city: str | None
    department: str | None
    event_type_name: str
    category: str


SearchSelect = Select[
    uuid.UUID,
    uuid.UUID,
    datetime,
    datetime,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    str,
    str,
]
"""The search's rows: the columns of ``_Row``, in order."""

_SLOT_ORDER = (FreeSlot.start_at, FreeSlot.agenda_id, FreeSlot.event_type_id)
"""The search's order, that of ``ix_agenda_free_slots_start``: the scan stops after the limit, with
no sort of the range."""


Box = tuple[float, float, float, float]
"""(south, north, west, east), degrees: ``geo.bounding_box``."""


def _search_query(
    actor: Actor, filters: SlotFilters, window: rules.Interval, not_before: datetime, box: Box | None = None
) -> SearchSelect:
    """SQL of the free slots the actor may book in ``window`` from ``not_before``, in start order."""
    query = (
        select(
            FreeSlot.agenda_id,
            FreeSlot.event_type_id,
            FreeSlot.start_at,
            FreeSlot.end_at,
            Agenda.name,
            Agenda.owner_national_id,
            Agenda.structure_id,
            Agenda.city,
            Agenda.department,
            EventType.name,
            EventType.category,
        )
        .join(Agenda, Agenda.id == FreeSlot.agenda_id)
        .join(EventType, EventType.id == FreeSlot.event_type_id)
        .where(
            FreeSlot.start_at >= not_before,
            FreeSlot.start_at < window[1],
            FreeSlot.end_at <= window[1],
            _bookable_by(actor),
        )
    )
    conditions: list[ColumnElement[bool]] = []
    if filters.category is not None:
        conditions.append(EventType.category == filters.category.value)
    if filters.event_type_id is not None:
        conditions.append(FreeSlot.event_type_id == filters.event_type_id)
    if filters.agenda_ids:
        conditions.append(FreeSlot.agenda_id.in_(list(filters.agenda_ids)))
    if box is not None:
        # Written into the statement, not bound: with bound values PostgreSQL's generic plan (chosen
        # after five runs of a prepared statement) guessed a box of a few agendas and read their slots
        # by agenda, then sorted (40-90 ms against 1 ms: bench/README.md). Rounded outwards to 4
        # decimals (about 10 m), so the same search is the same statement.
        south, north = math.floor(box[0] * 1e4) / 1e4, math.ceil(box[1] * 1e4) / 1e4
        west, east = math.floor(box[2] * 1e4) / 1e4, math.ceil(box[3] * 1e4) / 1e4
        conditions += [
            Agenda.latitude.between(_inline(south), _inline(north)),
            Agenda.longitude.between(_inline(west), _inline(east)),
        ]
    return query.where(*conditions, *_agenda_conditions(filters))


def _inline(value: float) -> BindParameter[float]:
    """A number rendered into the SQL text when the statement runs (``literal_execute``)."""
    return literal(value, Float, literal_execute=True)


def _agenda_conditions(filters: SlotFilters) -> list[ColumnElement[bool]]:
    """The filters on the agenda row (who offers the slot, where)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.profession_code:
        conditions.append(Agenda.profession_code == filters.profession_code)
    if filters.specialty:
        conditions.append(Agenda.specialty == filters.specialty)
    if filters.structure_id:
        conditions.append(Agenda.structure_id == filters.structure_id)
    if filters.department:
        conditions.append(Agenda.department == filters.department)
    if filters.postal_code:
        conditions.append(Agenda.postal_code == filters.postal_code)
    if filters.city:
        conditions.append(Agenda.city.ilike(filters.city))
    return conditions


def _origin(near: str) -> geo.Commune:
    """The commune of ``near``, or 422 saying what to type."""
    try:
        return geo.find(near)
    except geo.UnknownPlace as exc:
        raise Invalid(exc.message, field="near") from exc


async def _agendas_within(
    session: AsyncSession, actor: Actor, filters: SlotFilters
) -> tuple[dict[uuid.UUID, float], Box]:
    """The agendas the actor may book within ``filters.within_km`` of the commune ``filters.near`` (and
    matching the other agenda filters), with their distance in km: the bounding box on
    ``ix_agendas_position``, then the exact great-circle distance on those rows. And the box."""
    assert filters.near is not None
    km = filters.within_km
    if not 1 <= km <= MAX_WITHIN_KM:
        raise Invalid(
            f"Rayon invalide : entre 1 et {MAX_WITHIN_KM:.0f} km (par défaut {DEFAULT_WITHIN_KM:.0f}).",
            field="within_km",
        )
    origin = _origin(filters.near)
    box = geo.bounding_box(origin.latitude, origin.longitude, km)
    south, north, west, east = box
    rows = await session.execute(
        select(Agenda.id, Agenda.latitude, Agenda.longitude).where(
            Agenda.latitude.between(south, north),
            Agenda.longitude.between(west, east),
            _bookable_by(actor),
            *_agenda_conditions(filters),
        )
    )
    found: dict[uuid.UUID, float] = {}
    for agenda_id, lat, lon in rows.tuples():
        if lat is None or lon is None:  # pragma: no cover (BETWEEN is false on NULL)
            continue
        d = geo.distance_km(origin.latitude, origin.longitude, lat, lon)
        if d <= km:
            found[agenda_id] = round(d, 1)
    return found, box


async def _busy(
    session: AsyncSession, agenda_ids: Iterable[uuid.UUID], window: rules.Interval
) -> dict[uuid.UUID, list[rules.Interval]]:
    """Active appointments of these agendas overlapping ``window``, by agenda."""
    found: dict[uuid.UUID, list[rules.Interval]] = defaultdict(list)
    ids = sorted(set(agenda_ids))
    if not ids:
        return found
    rows = await session.execute(
        select(Appointment.agenda_id, Appointment.start_at, Appointment.end_at).where(
            Appointment.agenda_id.in_(ids),
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.start_at < window[1],
            Appointment.end_at > window[0],
        )
    )
    for agenda_id, start, end in rows.tuples():
        found[agenda_id].append((start, end))
    return found


async def _owner_names(session: AsyncSession, rows: Sequence[_Row]) -> dict[str, str]:
    names = await directory.display_names(
        session=session, national_ids={r.owner_national_id for r in rows if r.owner_national_id}
    )
    names.update(
        await directory.structure_names(
            session=session,
            structure_ids={r.structure_id for r in rows if r.structure_id and not r.owner_national_id},
        )
    )
    return names


def _slot_out(row: _Row, names: dict[str, str], distances: Mapping[uuid.UUID, float] | None) -> SlotOut:
    owner = row.owner_national_id or row.structure_id or ""
    return SlotOut(
        agenda_id=AgendaId(row.agenda_id),
        agenda_name=row.agenda_name,
        owner_label=names.get(owner, row.agenda_name),
        city=row.city,
        department=row.department,
        event_type_id=EventTypeId(row.event_type_id),
        event_type_name=row.event_type_name,
        category=parse(EventCategory, row.category),
        start=row.start,
        end=row.end,
        start_local=rules.local_iso(row.start),
        distance_km=distances.get(row.agenda_id) if distances is not None else None,
    )


async def _find_slots(
    session: AsyncSession,
    actor: Actor,
    filters: SlotFilters,
    window: rules.Interval,
    *,
    limit: int,
    per_agenda: int,
    after: tuple[datetime, uuid.UUID, uuid.UUID] | None = None,
    distances: Mapping[uuid.UUID, float] | None = None,
    box: Box | None = None,
) -> list[SlotOut]:
    """The first ``limit`` free slots in ``window``, by start then agenda then type (keyset ``after``
    on the three), at most ``per_agenda`` of each agenda so one agenda does not fill the page.

    The materialised free slots come in that order, a batch at a time: the first batch usually
    holds the page; a batch is only read again when the per-agenda cap dropped rows. ``box``: only
    agendas in it, and of those only the ``distances`` keys (in the circle).
    """
    query = _search_query(actor, filters, window, max(window[0], utcnow()), box)
    if after is not None:
        query = query.where(tuple_(*_SLOT_ORDER) > after)
    kept: list[_Row] = []
    counts: dict[uuid.UUID, int] = defaultdict(int)
    position: tuple[datetime, uuid.UUID, uuid.UUID] | None = None
    size = max(FIRST_BATCH, limit)
    for _ in range(MAX_BATCHES):
        batch_query = query if position is None else query.where(tuple_(*_SLOT_ORDER) > position)
        batch = [
            _Row(*r) for r in (await session.execute(batch_query.order_by(*_SLOT_ORDER).limit(size))).tuples()
        ]
        for row in batch:
            if box is not None and distances is not None and row.agenda_id not in distances:
                continue  # in the box, outside the circle
            if counts[row.agenda_id] < per_agenda:
                counts[row.agenda_id] += 1
                kept.append(row)
                if len(kept) >= limit:
                    break
        if len(kept) >= limit or len(batch) < size:
            break
        last = batch[-1]
        position = (last.start, last.agenda_id, last.event_type_id)
        size = min(2 * size, LAST_BATCH)
    names = await _owner_names(session, kept)
    return [_slot_out(row, names, distances) for row in kept]


async def search_slots(
    *,
    session: AsyncSession,
    actor: Actor,
    filters: SlotFilters,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 10,
    per_agenda: int = 3,
    cursor: str | None = None,
) -> Page[SlotOut]:
    """Next free slots across the agendas the actor may book, earliest first (then by agenda).

    Free = materialised openings (availability minus unavailability) cut on each bookable type's
    duration grid, minus appointments that hold their slot: read as materialised (``FreeSlot``).

    ``filters.near``: the agendas within ``filters.within_km`` of that commune are found first (rows
    of ``agendas``), then the search is the same one restricted to them (``FEW_AGENDAS``), each slot
    with its ``distance_km``; still earliest first.
    """
    window = _window(start, end, default_days=31)
    distances: dict[uuid.UUID, float] | None = None
    box: Box | None = None
    if filters.near is not None:
        distances, box = await _agendas_within(session, actor, filters)
        if filters.agenda_ids:
            asked = set(filters.agenda_ids)
            distances = {a: d for a, d in distances.items() if a in asked}
        if not distances:
            return Page[SlotOut](items=[])
        if len(distances) <= FEW_AGENDAS:
            filters = replace(filters, agenda_ids=tuple(AgendaId(a) for a in sorted(distances)))
            box = None
    position = decode_cursor(cursor)
    after = None
    if position is not None:
        try:
            after = (
                datetime.fromisoformat(str(position["s"])),
                uuid.UUID(str(position["a"])),
                uuid.UUID(str(position["t"])),
            )
        except (KeyError, ValueError) as exc:
            raise Invalid(
                "Curseur de page illisible : renvoyez `next_cursor` tel quel.", field="cursor"
            ) from exc
    await _roll_forward_now_and_then(session)
    slots = await _find_slots(
        session,
        actor,
        filters,
        window,
        limit=limit + 1,
        per_agenda=per_agenda,
        after=after,
        distances=distances,
        box=box,
    )
    more = len(slots) > limit
    items = slots[:limit]
    next_cursor = (
        encode_cursor(
            {
                "s": items[-1].start.isoformat(),
                "a": str(items[-1].agenda_id),
                "t": str(items[-1].event_type_id),
            }
        )
        if more and items
        else None
    )
    return Page[SlotOut](items=items, next_cursor=next_cursor)


async def agenda_slots(
    *,
    session: AsyncSession,
    actor: Actor,
    agenda_id: AgendaId,
    event_type_id: EventTypeId | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> Page[SlotOut]:
    """Free slots of one agenda the actor may see (managers also get non-bookable types they ask for)."""
    await _load_agenda(session, actor, agenda_id)
    window = _window(start, end, default_days=14)
    await _roll_forward_now_and_then(session)
    filters = SlotFilters(agenda_ids=(agenda_id,), event_type_id=event_type_id)
    slots = await _find_slots(session, actor, filters, window, limit=limit, per_agenda=limit)
    return Page[SlotOut](items=slots)


# --- booking -------------------------------------------------------------------------------------


async def _lock_agenda(session: AsyncSession, agenda_id: uuid.UUID) -> None:
    """Serialise the writes of one agenda (bookings, cancellations, availability changes, all of which
    rewrite its free slots): a row lock on PostgreSQL (SQLite transactions of the service already
    begin IMMEDIATE, one writer at a time). Taken before the transaction inserts a row that refers to
    the agenda: the foreign key's share lock first, then this one, in two transactions, deadlocks."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Agenda.id).where(Agenda.id == agenda_id).with_for_update())


async def _overlapping(session: AsyncSession, agenda_id: uuid.UUID, slot: rules.Interval) -> bool:
    found = await session.scalar(
        select(Appointment.id)
        .where(
            Appointment.agenda_id == agenda_id,
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.start_at < slot[1],
            Appointment.end_at > slot[0],
        )
        .limit(1)
    )
    return found is not None


async def _openings(
    session: AsyncSession, agenda_id: uuid.UUID, et: EventType, slot: rules.Interval
) -> list[rules.Interval]:
    rows = await session.execute(
        select(Opening.start_at, Opening.end_at).where(
            Opening.agenda_id == agenda_id,
            or_(Opening.event_type_id.is_(None), Opening.event_type_id == et.id),
            Opening.start_at <= slot[0],
            Opening.end_at >= slot[1],
        )
    )
    return list(rows.tuples())


async def _suggestions(
    session: AsyncSession, actor: Actor, agenda_id: uuid.UUID, et_id: uuid.UUID, after: datetime
) -> list[SlotOut]:
    begin = max(after, utcnow())
    filters = SlotFilters(agenda_ids=(AgendaId(agenda_id),), event_type_id=EventTypeId(et_id))
    return await _find_slots(
        session,
        actor,
        filters,
        (begin, begin + timedelta(days=MAX_RANGE_DAYS)),
        limit=SUGGESTIONS,
        per_agenda=SUGGESTIONS,
    )


async def _participant_keys(session: AsyncSession, data: AppointmentCreate) -> list[str]:
    nids = sorted(set(data.participant_national_ids))
    sids = sorted(set(data.participant_structure_ids))
    ok_n = await directory.active_national_ids(session=session, national_ids=nids)
    ok_s = await directory.active_structure_ids(session=session, structure_ids=sids)
    bad = [n for n in nids if n not in ok_n] + [s for s in sids if s not in ok_s]
    if bad:
        raise Invalid(
            f"Participant inconnu ou inactif dans l'annuaire : {', '.join(bad)}. Vérifiez l'identifiant.",
            field="participants",
        )
    return [f"pp:{n}" for n in nids] + [f"st:{s}" for s in sids]


async def _recipients(session: AsyncSession, agenda: Agenda, appt: Appointment, actor: Actor) -> list[str]:
    """Who is told about an appointment: the agenda's managers, the booker and the participants."""
    delegates = (await _delegates(session, [agenda.id]))[agenda.id]
    nids, sids = _split_participants(appt.participants)
    people = set(delegates) | set(nids) | {appt.booked_by_national_id}
    if agenda.owner_national_id:
        people.add(agenda.owner_national_id)
    users = await directory.bound_active_user_ids(session=session, national_ids=people, structure_ids=sids)
    return [u for u in users if u != actor.user_id]


async def _record(session: AsyncSession, actor: Actor, action: str, appt: Appointment) -> None:
    if appt.patient_id is not None:
        await audit.record(
            session=session,
            actor=actor,
            action=action,
            object_type="appointment",
            object_id=appt.id,
            patient_id=appt.patient_id,
        )


async def book(*, session: AsyncSession, actor: Actor, data: AppointmentCreate) -> AppointmentOut:
    """Book a slot (or ask for it, when the agenda wants confirmation or ``data.request``).

    Others than the agenda's managers book on an open slot of a bookable type, in the future; a patient
    may be named only by an authorised member of their circle (checked now, audited). Concurrent
    bookings of one slot: one wins, the others get ``SlotTaken`` with the next free slots.
    """
    loaded = await _load_agenda(session, actor, data.agenda_id)
    agenda, acc = loaded.agenda, loaded.access
    if not acc.book:
        raise Forbidden(
            "Cet agenda ne prend pas de réservation de votre part : demandez à son propriétaire, ou "
            "cherchez un créneau dans un autre agenda.",
            errcode=ErrCode.BOOKING_REFUSED,
        )
    et = await _agenda_event_type(session, agenda.id, data.event_type_id)
    if not et.bookable and not acc.manage:
        raise Invalid(
            "Ce type d'événement ne se réserve pas : choisissez un type réservable.", field="event_type_id"
        )
    if data.start.tzinfo is None:
        raise Invalid("Indiquez le fuseau horaire du début (par exemple +02:00).", field="start")
    if data.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=data.patient_id)
    participants = await _participant_keys(session, data)
    start = data.start.astimezone(UTC)
    slot = (start, start + timedelta(minutes=et.duration_minutes))
    if not acc.manage:
        if start < utcnow():
            raise Invalid("Ce créneau est passé : choisissez un créneau à venir.", field="start")
        if not rules.slot_fits(slot, await _openings(session, agenda.id, et, slot), slot[1] - slot[0]):
            raise Invalid(
                "Ce créneau n'est pas ouvert à la réservation pour ce type : choisissez l'un des créneaux "
                "libres de l'agenda.",
                field="start",
                errcode=ErrCode.SLOT_NOT_OPEN,
            )
    # Plain values: a rollback expires the ORM objects, and the suggestions are read after one.
    agenda_id, et_id, agenda_name = agenda.id, et.id, agenda.name
    await _lock_agenda(session, agenda_id)
    if await _overlapping(session, agenda_id, slot):
        await session.rollback()
        raise SlotTaken(await _suggestions(session, actor, agenda_id, et_id, start))
    status = (
        AppointmentStatus.PROPOSE
        if (data.request or agenda.requires_confirmation) and not acc.manage
        else AppointmentStatus.RESERVE
    )
    appt = Appointment(
        id=uuid.uuid4(),
        agenda_id=agenda.id,
        event_type_id=et.id,
        start_at=slot[0],
        end_at=slot[1],
        status=status.value,
        patient_id=data.patient_id,
        note=data.note,
        participants=participants,
        booked_by_national_id=actor.national_id,
        booked_by_user_id=actor.user_id,
    )
    session.add(appt)
    await _record(session, actor, "appointment.book", appt)
    await outbox.emit(
        session=session,
        recipients=await _recipients(session, agenda, appt, actor),
        event=AppointmentBooked(
            appointment_id=AppointmentId(appt.id),
            agenda_id=AgendaId(agenda.id),
            patient_id=PatientId(appt.patient_id) if appt.patient_id else None,
            category=parse(EventCategory, et.category),
            status=status,
            start=slot[0],
            booked_by=actor.user_id,
        ),
    )
    try:
        await _take_free_slots(session, agenda_id, slot)
        await session.commit()
    except IntegrityError:
        # The partial unique index caught a concurrent booking of the same start.
        await session.rollback()
        raise SlotTaken(await _suggestions(session, actor, agenda_id, et_id, start)) from None
    logger.info("appointment %s booked in agenda %s by %s", appt.id, agenda_id, actor.national_id)
    return _appointment_out(appt, agenda_name, et)


# --- appointments --------------------------------------------------------------------------------


async def _visible_appointment(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID
) -> tuple[Appointment, Agenda, bool]:
    """The appointment, its agenda, and whether the actor manages the agenda; 404 when the actor is
    neither a manager, nor its booker, nor a participant."""
    appt = await session.get(Appointment, appointment_id)
    if appt is None:
        raise _unknown_appointment()
    agenda = await session.get(Agenda, appt.agenda_id)
    if agenda is None:
        raise _unknown_appointment()
    manager = _is_manager(agenda, (await _delegates(session, [agenda.id]))[agenda.id], actor)
    mine = {f"pp:{actor.national_id}"} | {f"st:{s}" for s in actor.structure_ids}
    if not (manager or appt.booked_by_national_id == actor.national_id or mine & set(appt.participants)):
        raise _unknown_appointment()
    return appt, agenda, manager


async def get_appointment(
    *, session: AsyncSession, actor: Actor, appointment_id: AppointmentId
) -> AppointmentOut:
    """One appointment (managers, booker, participants); a read naming a patient is audited."""
    appt, _agenda, _manager = await _visible_appointment(session, actor, appointment_id)
    await _record(session, actor, "appointment.read", appt)
    await session.commit()
    return (await _appointment_outs(session, [appt]))[0]


async def update_appointment(
    *, session: AsyncSession, actor: Actor, appointment_id: AppointmentId, data: AppointmentUpdate
) -> AppointmentOut:
    """Confirm or decline a request, cancel, mark done or no-show, or change the note
    (``rules.transition_allowed``); a booker who is not a manager must still be an authorised member
    of the named patient's circle."""
    appt, agenda, manager = await _visible_appointment(session, actor, appointment_id)
    booker = appt.booked_by_national_id == actor.national_id
    if appt.patient_id is not None and not manager:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=appt.patient_id)
    if appt.version != data.version:
        raise _stale("Le rendez-vous")
    current = parse(AppointmentStatus, appt.status)
    new = data.status or current
    if not rules.transition_allowed(current, new, manager=manager, booker=booker):
        raise Conflict(
            f"Passage de « {current.label} » à « {new.label} » impossible pour vous : un rendez-vous "
            "annulé, effectué ou non honoré est clos ; seul le gestionnaire de l'agenda confirme une "
            "demande ou marque un rendez-vous effectué.",
            errcode=ErrCode.BAD_TRANSITION,
        )
    if data.note is not None:
        appt.note = data.note
    appt.status = new.value
    appt.updated_at = utcnow()
    if rules.holds_slot(current) and not rules.holds_slot(new):
        # The slot is free again: its openings' free slots are recomputed, under the agenda's lock.
        await _lock_agenda(session, agenda.id)
        try:
            await session.flush()
        except StaleDataError:
            await session.rollback()
            raise _stale("Le rendez-vous") from None
        await _refresh_free_slots(session, agenda.id, (appt.start_at, appt.end_at))
    await _record(
        session, actor, f"appointment.{new.value}" if new != current else "appointment.update", appt
    )
    et = await session.get(EventType, appt.event_type_id)
    assert et is not None  # a foreign key
    if new != current and new in (AppointmentStatus.ANNULE, AppointmentStatus.RESERVE):
        recipients = await _recipients(session, agenda, appt, actor)
        common = {
            "appointment_id": AppointmentId(appt.id),
            "agenda_id": AgendaId(agenda.id),
            "patient_id": PatientId(appt.patient_id) if appt.patient_id else None,
            "category": parse(EventCategory, et.category),
            "start": appt.start_at,
        }
        event: AppointmentBooked | AppointmentCancelled = (
            AppointmentCancelled(cancelled_by=actor.user_id, **common)
            if new is AppointmentStatus.ANNULE
            else AppointmentBooked(status=new, booked_by=UserId(appt.booked_by_user_id), **common)
        )
        await outbox.emit(session=session, recipients=recipients, event=event)
    await commit_or_conflict(session, on_stale=_stale("Le rendez-vous"))
    return _appointment_out(appt, agenda.name, et)


def _keyset(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        return datetime.fromisoformat(str(position["s"])), uuid.UUID(str(position["i"]))
    except (KeyError, ValueError) as exc:
        raise Invalid("Curseur de page illisible : renvoyez `next_cursor` tel quel.", field="cursor") from exc


async def _page(
    session: AsyncSession,
    actor: Actor,
    query: Select[Appointment],
    limit: int,
    cursor: str | None,
    action: str,
) -> Page[AppointmentOut]:
    after = _keyset(cursor)
    if after is not None:
        query = query.where(tuple_(Appointment.start_at, Appointment.id) > after)
    rows = list(
        (await session.scalars(query.order_by(Appointment.start_at, Appointment.id).limit(limit + 1))).all()
    )
    page = rows[:limit]
    patients = sorted({a.patient_id for a in page if a.patient_id is not None})
    if patients:
        await audit.record_many(
            session=session, actor=actor, action=action, object_type="appointment", patient_ids=patients
        )
        await session.commit()
    last = page[-1] if len(rows) > limit else None
    return Page[AppointmentOut](
        items=await _appointment_outs(session, page),
        next_cursor=encode_cursor({"s": last.start_at.isoformat(), "i": str(last.id)}) if last else None,
    )


async def list_appointments(
    *,
    session: AsyncSession,
    actor: Actor,
    agenda_id: AgendaId | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: Sequence[AppointmentStatus] = (),
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AppointmentOut]:
    """Appointments by start: of one agenda (managers), or the actor's own (booked by them or in an
    agenda they manage). Rows naming a patient are audited."""
    query = select(Appointment)
    if agenda_id is not None:
        await _managed(session, actor, agenda_id)
        query = query.where(Appointment.agenda_id == agenda_id)
    else:
        managed = select(Agenda.id).where(_managed_by(actor))
        query = query.where(
            or_(Appointment.booked_by_national_id == actor.national_id, Appointment.agenda_id.in_(managed))
        )
    if start is not None:
        query = query.where(Appointment.end_at > rules.aware(start))
    if end is not None:
        query = query.where(Appointment.start_at < rules.aware(end))
    if statuses:
        query = query.where(Appointment.status.in_([s.value for s in statuses]))
    return await _page(session, actor, query, limit, cursor, "appointment.list")


async def patient_appointments(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, limit: int = 50, cursor: str | None = None
) -> Page[AppointmentOut]:
    """A patient's appointments (authorised circle members only; audited), for the patient page and
    the synthesis."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    query = select(Appointment).where(Appointment.patient_id == patient_id)
    await audit.record(
        session=session,
        actor=actor,
        action="appointment.list",
        object_type="appointment",
        patient_id=patient_id,
    )
    await session.commit()
    return await _page(session, actor, query, limit, cursor, "appointment.list")


# --- planning ------------------------------------------------------------------------------------


async def planning(
    *,
    session: AsyncSession,
    actor: Actor,
    agenda_ids: Sequence[AgendaId],
    start: datetime,
    end: datetime,
) -> PlanningOut:
    """Openings and busy periods of several agendas over a range (day, week, month), for
    coordinators; appointment details only where the actor manages the agenda or booked it."""
    window = _window(start, end, default_days=7)
    if not agenda_ids or len(agenda_ids) > 50:
        raise Invalid("Choisissez de 1 à 50 agendas.", field="agenda_id")
    await _roll_forward_now_and_then(session)
    loaded = [await _load_agenda(session, actor, a) for a in dict.fromkeys(agenda_ids)]
    outs = await _agenda_outs(session, actor, [x.agenda for x in loaded])
    result = []
    for item, out in zip(loaded, outs, strict=True):
        result.append(await _agenda_planning(session, actor, item, out, window))
    return PlanningOut(start=window[0], end=window[1], agendas=result)


async def _agenda_planning(
    session: AsyncSession, actor: Actor, item: _Loaded, out: AgendaOut, window: rules.Interval
) -> AgendaPlanningOut:
    agenda_id = item.agenda.id
    openings = list(
        (
            await session.execute(
                select(Opening.start_at, Opening.end_at)
                .where(
                    Opening.agenda_id == agenda_id, Opening.end_at > window[0], Opening.start_at < window[1]
                )
                .order_by(Opening.start_at)
            )
        ).tuples()
    )
    appts = (
        await session.scalars(
            select(Appointment)
            .where(
                Appointment.agenda_id == agenda_id,
                Appointment.status.in_(ACTIVE_STATUSES),
                Appointment.end_at > window[0],
                Appointment.start_at < window[1],
            )
            .order_by(Appointment.start_at)
        )
    ).all()
    types = {
        et.id: et for et in await session.scalars(select(EventType).where(EventType.agenda_id == agenda_id))
    }
    busy: list[BusyOut] = []
    detailed: list[Appointment] = []
    for a in appts:
        if item.access.manage or a.booked_by_national_id == actor.national_id:
            detailed.append(a)
            busy.append(
                BusyOut(
                    start=a.start_at,
                    end=a.end_at,
                    kind="rendez_vous",
                    appointment_id=AppointmentId(a.id),
                    status=parse(AppointmentStatus, a.status),
                    event_type_name=types[a.event_type_id].name,
                )
            )
        else:
            busy.append(BusyOut(start=a.start_at, end=a.end_at, kind="rendez_vous"))
    for u in await session.scalars(
        select(Unavailability).where(
            Unavailability.agenda_id == agenda_id,
            Unavailability.end_at > window[0],
            Unavailability.start_at < window[1],
        )
    ):
        busy.append(BusyOut(start=u.start_at, end=u.end_at, kind="indisponibilite"))
    patients = sorted({a.patient_id for a in detailed if a.patient_id is not None})
    if patients:
        await audit.record_many(
            session=session,
            actor=actor,
            action="appointment.planning",
            object_type="appointment",
            patient_ids=patients,
        )
        await session.commit()
    busy.sort(key=lambda b: b.start)
    return AgendaPlanningOut(agenda=out, openings=openings, busy=busy)


# --- ICS feed ------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def new_ics_token(*, session: AsyncSession, actor: Actor, agenda_id: AgendaId) -> str:
    """A new secret for the agenda's ICS feed (managers only); the previous one stops working."""
    loaded = await _managed(session, actor, agenda_id)
    token = secrets.token_urlsafe(32)
    loaded.agenda.ics_token_hash = _token_hash(token)
    await commit_or_conflict(session, on_stale=_stale("L'agenda"))
    return token


async def revoke_ics_token(*, session: AsyncSession, actor: Actor, agenda_id: AgendaId) -> None:
    """Turn the agenda's ICS feed off (managers only)."""
    loaded = await _managed(session, actor, agenda_id)
    loaded.agenda.ics_token_hash = None
    await commit_or_conflict(session, on_stale=_stale("L'agenda"))


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of the ICS feed: no patient, no note (a calendar app is outside our access rules)."""

    uid: str
    start: datetime
    end: datetime
    summary: str
    confirmed: bool
    created: datetime


@dataclass(frozen=True, slots=True)
class Feed:
    agenda_id: AgendaId
    name: str
    events: list[FeedEvent]


async def ics_feed(*, session: AsyncSession, token: str) -> Feed:
    """The feed behind a secret (404 for an unknown or revoked one): the agenda's active appointments
    from a month ago to a year ahead, with their type only."""
    agenda = (
        await session.scalars(select(Agenda).where(Agenda.ics_token_hash == _token_hash(token)))
    ).first()
    if agenda is None:
        raise NotFound(
            "Flux d'agenda inconnu ou révoqué : demandez une nouvelle adresse au gestionnaire de l'agenda."
        )
    now = utcnow()
    rows = await session.execute(
        select(Appointment, EventType)
        .join(EventType, EventType.id == Appointment.event_type_id)
        .where(
            Appointment.agenda_id == agenda.id,
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.start_at >= now - timedelta(days=PAST_DAYS),
            Appointment.start_at < now + timedelta(days=HORIZON_DAYS),
        )
        .order_by(Appointment.start_at)
    )
    events = [
        FeedEvent(
            uid=f"{a.id}@azurezo",
            start=a.start_at,
            end=a.end_at,
            summary=et.name if a.status == AppointmentStatus.RESERVE else f"{et.name} (à confirmer)",
            confirmed=a.status == AppointmentStatus.RESERVE,
            created=a.created_at,
        )
        for a, et in rows.tuples()
    ]
    return Feed(agenda_id=AgendaId(agenda.id), name=agenda.name, events=events)
