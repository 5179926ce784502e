"""The patient's situation over time.

The timeline merges sources, each a function that reads one kind of thing newest first
(``SOURCES``): signed evaluations, plan versions, requests to a DAC (sent, answered), entered events
(hospitalisations, discharges...), tasks done, documents added, the complex-situation flag and the
appointments naming the patient (planned, then cancelled, done or missed). A new source is one more
function in the list. Each source reads at most
``limit + 1`` items before the cursor from its own index; the merge keeps the newest ``limit``.

Rules: only authorised members read the timeline or enter events (``circle_access``), audited; a
restricted document appears only to its author (its audience reads it in the documents list). The
appointments naming the patient appear to every authorised member, as in the patient's appointments list
(``agenda.service.patient_appointments``): when, what, which agenda and where it stands, not the note. The
complex-situation flag is set or cleared by a coordinator of a DAC (an active professional working at a
structure marked DAC) who is an authorised member of the circle; the board lists the flagged patients the
coordinator may read, with the plan's next review date.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.agenda import rules as agenda_rules
from coordination.agenda.models import Agenda, Appointment, EventType
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.dac_requests.models import DacRequest
from coordination.db import utcnow
from coordination.directory import service as directory
from coordination.documents.models import Document
from coordination.errors import ErrCode, Forbidden, Invalid
from coordination.evaluations.models import Evaluation
from coordination.ids import NationalId, PatientEventId, PatientId
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.patients.models import Patient
from coordination.plans import rules as plan_rules
from coordination.plans.models import CarePlan, CarePlanVersion
from coordination.security import Actor
from coordination.tasks.models import Task
from coordination.timeline.models import ComplexSituation, PatientEvent
from coordination.timeline.schemas import (
    BoardEntryOut,
    ComplexSituationIn,
    ComplexSituationOut,
    PatientEventIn,
    PatientEventOut,
    TimelineItemOut,
)
from coordination.vocab import (
    AppointmentStatus,
    Decision,
    DocumentCategory,
    DocumentVisibility,
    EvaluationStatus,
    PatientEventKind,
    TaskStatus,
    TimelineKind,
    parse,
)

logger = logging.getLogger(__name__)

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Window:
    """What a source reads: items of the patient at or before ``before`` (newest first), within the
    dates asked, at most ``limit`` + 1."""

    patient_id: PatientId
    actor: Actor
    before: datetime | None
    since: datetime | None
    until: datetime | None
    limit: int

    def bounds(self, column: Any) -> list[ColumnElement[bool]]:
        """The window's conditions on a time column (``column`` is a mapped datetime attribute)."""
        found: list[ColumnElement[bool]] = []
        if self.before is not None:
            found.append(column <= self.before)
        if self.since is not None:
            found.append(column >= self.since)
        if self.until is not None:
            found.append(column < self.until)
        return found


Source = Callable[[AsyncSession, Window], Awaitable[list[TimelineItemOut]]]


def _item(
    at: datetime,
    kind: TimelineKind,
    title: str,
    object_type: str,
    object_id: object,
    *,
    detail: str | None = None,
    suffix: str = "",
) -> TimelineItemOut:
    """One item; ``key`` (kind, id and ``suffix`` for a second item of one object) orders ties."""
    return TimelineItemOut(
        at=at,
        kind=kind,
        title=title,
        detail=detail,
        object_type=object_type,
        object_id=str(object_id),
        key=f"{kind.value}:{object_id}{suffix}",
    )


async def _evaluations(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    rows = await session.scalars(
        select(Evaluation)
        .where(
            Evaluation.patient_id == w.patient_id,
            Evaluation.status == EvaluationStatus.SIGNEE.value,
            *w.bounds(Evaluation.signed_at),
        )
        .order_by(Evaluation.signed_at.desc())
        .limit(w.limit + 1)
    )
    return [
        _item(
            r.signed_at,
            TimelineKind.EVALUATION,
            f"Évaluation signée : {r.form_title}",
            "evaluation",
            r.id,
            detail=r.score_label,
        )
        for r in rows
        if r.signed_at is not None
    ]


async def _plan_versions(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    rows = await session.scalars(
        select(CarePlanVersion)
        .where(CarePlanVersion.patient_id == w.patient_id, *w.bounds(CarePlanVersion.saved_at))
        .order_by(CarePlanVersion.saved_at.desc())
        .limit(w.limit + 1)
    )
    return [
        _item(
            r.saved_at,
            TimelineKind.PLAN,
            f"Plan personnalisé (PPCS) : version {r.version}",
            "care_plan",
            r.version,
            detail=f"{len(plan_rules.open_actions(r.content))} action(s) en cours",
        )
        for r in rows
    ]


async def _requests(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    items = []
    for column, suffix in ((DacRequest.sent_at, ":envoi"), (DacRequest.answered_at, ":reponse")):
        rows = await session.scalars(
            select(DacRequest)
            .where(DacRequest.patient_id == w.patient_id, column.is_not(None), *w.bounds(column))
            .order_by(column.desc())
            .limit(w.limit + 1)
        )
        for r in rows:
            if suffix == ":envoi" and r.sent_at is not None:
                items.append(
                    _item(
                        r.sent_at,
                        TimelineKind.DEMANDE,
                        f"Demande au DAC envoyée : {r.reason}",
                        "request",
                        r.id,
                        suffix=suffix,
                    )
                )
            elif r.answered_at is not None:
                decision = parse(Decision, r.decision).label if r.decision else "réponse"
                items.append(
                    _item(
                        r.answered_at,
                        TimelineKind.DEMANDE,
                        f"Réponse du DAC : {decision}",
                        "request",
                        r.id,
                        suffix=suffix,
                    )
                )
    return items


def _noon(day: date) -> datetime:
    """An entered event has a day, not a time: placed at noon UTC so it sorts within its day."""
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


async def _events(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    stmt = select(PatientEvent).where(PatientEvent.patient_id == w.patient_id)
    if w.before is not None:
        stmt = stmt.where(PatientEvent.occurred_on <= w.before.date())
    if w.since is not None:
        stmt = stmt.where(PatientEvent.occurred_on >= w.since.date())
    if w.until is not None:
        stmt = stmt.where(PatientEvent.occurred_on < w.until.date())
    rows = await session.scalars(stmt.order_by(PatientEvent.occurred_on.desc()).limit(w.limit + 1))
    return [
        _item(
            _noon(r.occurred_on),
            TimelineKind.EVENEMENT,
            f"{parse(PatientEventKind, r.kind).label} : {r.title}",
            "event",
            r.id,
            detail=r.note or None,
        )
        for r in rows
    ]


async def _tasks_done(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    rows = await session.scalars(
        select(Task)
        .where(
            Task.patient_id == w.patient_id,
            Task.status == TaskStatus.TERMINEE.value,
            Task.completed_at.is_not(None),
            *w.bounds(Task.completed_at),
        )
        .order_by(Task.completed_at.desc())
        .limit(w.limit + 1)
    )
    return [
        _item(r.completed_at, TimelineKind.TACHE, f"Tâche n° {r.number} réalisée : {r.title}", "task", r.id)
        for r in rows
        if r.completed_at is not None
    ]


async def _documents(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    visible = or_(
        Document.visibility == DocumentVisibility.CERCLE.value,
        Document.uploader_national_id == w.actor.national_id,
    )
    rows = await session.scalars(
        select(Document)
        .where(
            Document.patient_id == w.patient_id,
            Document.deleted_at.is_(None),
            visible,
            *w.bounds(Document.created_at),
        )
        .order_by(Document.created_at.desc())
        .limit(w.limit + 1)
    )
    return [
        _item(
            r.created_at,
            TimelineKind.DOCUMENT,
            f"Document ajouté : {r.title}",
            "document",
            r.id,
            detail=parse(DocumentCategory, r.category).label,
        )
        for r in rows
    ]


async def _situation(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    row = await session.get(ComplexSituation, w.patient_id)
    if row is None or not all(_within(w, row.flagged_at)):
        return []
    title = "Situation complexe signalée" if row.flagged else "Situation complexe levée"
    return [
        _item(row.flagged_at, TimelineKind.SITUATION, title, "situation", w.patient_id, detail=row.reason)
    ]


def _appointment_label(appt: Appointment, agenda_name: str, type_name: str) -> str:
    """« Consultation le 12/03/2026 à 09:30 (Consultations Dr Martin) », in Paris time."""
    local = agenda_rules.to_local(appt.start_at)
    return f"{type_name} le {local:%d/%m/%Y} à {local:%H:%M} ({agenda_name})"


async def _appointments(session: AsyncSession, w: Window) -> list[TimelineItemOut]:
    """Each appointment naming the patient is planned when it was booked; then cancelled (when it
    was), or done or missed (at its start)."""
    base = (
        select(Appointment, Agenda.name, EventType.name)
        .join(Agenda, Agenda.id == Appointment.agenda_id)
        .join(EventType, EventType.id == Appointment.event_type_id)
        .where(Appointment.patient_id == w.patient_id)
    )
    closed = (AppointmentStatus.EFFECTUE.value, AppointmentStatus.ABSENT.value)
    reads = (
        (Appointment.created_at, None, ":planifie"),
        (Appointment.updated_at, (AppointmentStatus.ANNULE.value,), ":annule"),
        (Appointment.start_at, closed, ":clos"),
    )
    items = []
    for column, statuses, suffix in reads:
        stmt = base.where(*w.bounds(column))
        if statuses is not None:
            stmt = stmt.where(Appointment.status.in_(statuses))
        rows = (await session.execute(stmt.order_by(column.desc()).limit(w.limit + 1))).tuples()
        for appt, agenda_name, type_name in rows:
            label = _appointment_label(appt, agenda_name, type_name)
            status = parse(AppointmentStatus, appt.status)
            if suffix == ":planifie":
                at, title, detail = (
                    appt.created_at,
                    f"Rendez-vous planifié : {label}",
                    f"Statut : {status.label}",
                )
            elif suffix == ":annule":
                at, title, detail = appt.updated_at, f"Rendez-vous annulé : {label}", None
            else:
                verb = "effectué" if status is AppointmentStatus.EFFECTUE else "non honoré (patient non venu)"
                at, title, detail = appt.start_at, f"Rendez-vous {verb} : {label}", None
            items.append(
                _item(
                    at, TimelineKind.RENDEZ_VOUS, title, "appointment", appt.id, detail=detail, suffix=suffix
                )
            )
    return items


def _within(w: Window, at: datetime) -> list[bool]:
    return [
        w.before is None or at <= w.before,
        w.since is None or at >= w.since,
        w.until is None or at < w.until,
    ]


SOURCES: dict[TimelineKind, Source] = {
    TimelineKind.EVALUATION: _evaluations,
    TimelineKind.PLAN: _plan_versions,
    TimelineKind.DEMANDE: _requests,
    TimelineKind.EVENEMENT: _events,
    TimelineKind.TACHE: _tasks_done,
    TimelineKind.DOCUMENT: _documents,
    TimelineKind.SITUATION: _situation,
    TimelineKind.RENDEZ_VOUS: _appointments,
}
"""Every source of the timeline, by kind (a new kind of thing: one more source here)."""


def _cursor(cursor: str | None) -> tuple[datetime, str] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        at, key = datetime.fromisoformat(str(position["t"])), str(position["k"])
    except (KeyError, ValueError) as exc:
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor") from exc
    if at.tzinfo is None:  # every cursor we give carries its zone (UTC)
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor")
    return at, key


def _day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(0, 0), tzinfo=UTC) if day else None


async def timeline(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    kinds: Sequence[TimelineKind] = (),
    since: date | None = None,
    until: date | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[TimelineItemOut]:
    """The patient's timeline, newest first, filtered by kind and dates (``until`` included). Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    after = _cursor(cursor)
    window = Window(
        patient_id=patient_id,
        actor=actor,
        before=after[0] if after else None,
        since=_day_start(since),
        until=_day_start(until + date.resolution) if until and until < date.max else None,
        limit=limit,
    )
    items: list[TimelineItemOut] = []
    for kind, source in SOURCES.items():
        if not kinds or kind in kinds:
            items.extend(await source(session, window))
    items.sort(key=lambda i: (i.at, i.key), reverse=True)
    if after is not None:
        items = [i for i in items if (i.at, i.key) < after]
    page = items[:limit]
    await audit.record(
        session=session, actor=actor, action="timeline.read", object_type="timeline", patient_id=patient_id
    )
    await session.commit()
    last = page[-1] if len(items) > limit else None
    return Page(
        items=page, next_cursor=encode_cursor({"t": last.at.isoformat(), "k": last.key}) if last else None
    )


# --- entered events -----------------------------------------------------------------------------


async def add_event(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, data: PatientEventIn
) -> PatientEventOut:
    """Enter an event (hospitalisation, discharge...) on the patient's timeline. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    row = PatientEvent(
        id=uuid.uuid4(),
        patient_id=patient_id,
        kind=data.kind.value,
        occurred_on=data.occurred_on,
        title=data.title,
        note=data.note or "",
        created_by=actor.national_id,
        created_at=utcnow(),
    )
    session.add(row)
    await audit.record(
        session=session,
        actor=actor,
        action="timeline.event",
        object_type="patient_event",
        object_id=row.id,
        patient_id=patient_id,
    )
    await session.commit()
    return PatientEventOut(
        id=PatientEventId(row.id),
        patient_id=patient_id,
        kind=data.kind,
        occurred_on=row.occurred_on,
        title=row.title,
        note=row.note,
        created_by=NationalId(row.created_by),
        created_at=row.created_at,
    )


# --- complex situation --------------------------------------------------------------------------


async def _require_dac_coordinator(session: AsyncSession, actor: Actor) -> set[str]:
    dacs = await directory.active_dac_ids(session=session, structure_ids=actor.structure_ids)
    if not dacs:
        raise Forbidden(
            "Seul un coordinateur d'un DAC (dispositif d'appui à la coordination) signale une situation "
            "complexe ou consulte le tableau : demandez au DAC du territoire.",
            errcode=ErrCode.NOT_DAC_COORDINATOR,
        )
    return dacs


async def _situation_out(
    session: AsyncSession, patient_id: PatientId, row: ComplexSituation | None
) -> ComplexSituationOut:
    if row is None:
        return ComplexSituationOut(
            patient_id=patient_id,
            flagged=False,
            reason=None,
            flagged_by=None,
            flagged_by_name=None,
            flagged_at=None,
        )
    names = await directory.display_names(session=session, national_ids=[row.flagged_by])
    return ComplexSituationOut(
        patient_id=patient_id,
        flagged=row.flagged,
        reason=row.reason,
        flagged_by=NationalId(row.flagged_by),
        flagged_by_name=names.get(row.flagged_by),
        flagged_at=row.flagged_at,
    )


async def get_complex_situation(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId
) -> ComplexSituationOut:
    """Whether the patient's situation is flagged complex, why, by whom. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    row = await session.get(ComplexSituation, patient_id)
    await audit.record(
        session=session,
        actor=actor,
        action="situation.read",
        object_type="situation",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    return await _situation_out(session, patient_id, row)


async def set_complex_situation(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, data: ComplexSituationIn
) -> ComplexSituationOut:
    """Flag or clear the complex situation, with the reason (a DAC coordinator in the circle). Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    await _require_dac_coordinator(session, actor)
    row = await session.get(ComplexSituation, patient_id)
    if row is None:
        row = ComplexSituation(patient_id=patient_id)
        session.add(row)
    row.flagged = data.flagged
    row.reason = data.reason
    row.flagged_by = actor.national_id
    row.flagged_at = utcnow()
    await audit.record(
        session=session,
        actor=actor,
        action="situation.flag" if data.flagged else "situation.clear",
        object_type="situation",
        object_id=patient_id,
        patient_id=patient_id,
    )
    await session.commit()
    return await _situation_out(session, patient_id, row)


def _display_name(p: Patient) -> str:
    """« NOM Prénom », the used name and first name when known (as the dashboard shows a patient)."""
    return f"{(p.used_name or p.birth_name).upper()} {p.used_first_name or p.first_birth_first_name}"


async def _board_scope(session: AsyncSession, actor: Actor, dac: str | None) -> list[ColumnElement[bool]]:
    """Flagged patients the actor may read (authorised member of the circle); with ``dac`` (one of the
    actor's DACs, else 403), only those whose circle has that DAC as a habilitée structure."""
    dacs = await _require_dac_coordinator(session, actor)
    scope: list[ColumnElement[bool]] = [
        ComplexSituation.flagged.is_(True),
        ComplexSituation.patient_id.in_(circle_access.authorised_patients_subquery(actor)),
    ]
    if dac is not None:
        if dac not in dacs:
            raise Forbidden(
                "Vous n'êtes pas coordinateur de ce DAC : choisissez l'un des DAC où vous exercez.",
                errcode=ErrCode.NOT_DAC_COORDINATOR,
            )
        scope.append(ComplexSituation.patient_id.in_(circle_access.structure_patients_subquery(dac)))
    return scope


async def complex_board(
    *,
    session: AsyncSession,
    actor: Actor,
    limit: int = 100,
    cursor: str | None = None,
    dac: str | None = None,
) -> Page[BoardEntryOut]:
    """The flagged patients a DAC coordinator may read (of one of their DACs with ``dac``), the next
    plan review first (undated last), with the number of open actions. Each listed patient is audited
    (``situation.board``)."""
    scope = await _board_scope(session, actor, dac)
    position = decode_cursor(cursor)
    offset = position.get("o", 0) if position else 0
    if not isinstance(offset, int) or offset < 0:
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor")
    review = func.coalesce(CarePlan.next_review_date, date(9999, 12, 31))
    stmt = (
        select(ComplexSituation, Patient, CarePlan)
        .join(Patient, Patient.id == ComplexSituation.patient_id)
        .outerjoin(CarePlan, CarePlan.patient_id == ComplexSituation.patient_id)
        .where(and_(*scope))
        .order_by(review, ComplexSituation.flagged_at, ComplexSituation.patient_id)
        .offset(offset)
        .limit(limit + 1)
    )
    rows = (await session.execute(stmt)).tuples().all()
    page = rows[:limit]
    entries = [
        BoardEntryOut(
            patient_id=PatientId(p.id),
            display_name=_display_name(p),
            birth_date=p.birth_date,
            reason=s.reason,
            flagged_at=s.flagged_at,
            next_review_date=plan.next_review_date if plan else None,
            open_actions=len(plan_rules.open_actions(plan.content)) if plan else 0,
        )
        for s, p, plan in page
    ]
    await audit.record_many(
        session=session,
        actor=actor,
        action="situation.board",
        object_type="situation",
        patient_ids=[e.patient_id for e in entries],
    )
    await session.commit()
    return Page(
        items=entries, next_cursor=encode_cursor({"o": offset + limit}) if len(rows) > limit else None
    )


async def count_complex_situations(*, session: AsyncSession, actor: Actor, dac: str | None = None) -> int:
    """Indicator: how many flagged patients the DAC coordinator may read (of one of their DACs with
    ``dac``)."""
    scope = await _board_scope(session, actor, dac)
    count = await session.scalar(select(func.count()).select_from(ComplexSituation).where(*scope))
    return int(count or 0)


async def flagged_among(
    *, session: AsyncSession, actor: Actor, patient_ids: Sequence[uuid.UUID]
) -> set[PatientId]:
    """Which of ``patient_ids`` are flagged complex and readable by the actor (authorised member of
    their circle), for a list to mark them. Each one found is audited (``situation.read``)."""
    wanted = sorted(set(patient_ids))
    if not wanted:
        return set()
    found = {
        PatientId(pid)
        for pid in await session.scalars(
            select(ComplexSituation.patient_id).where(
                ComplexSituation.patient_id.in_(wanted),
                ComplexSituation.flagged.is_(True),
                ComplexSituation.patient_id.in_(circle_access.authorised_patients_subquery(actor)),
            )
        )
    }
    if found:
        await audit.record_many(
            session=session,
            actor=actor,
            action="situation.read",
            object_type="situation",
            patient_ids=sorted(found),
        )
        await session.commit()
    return found
