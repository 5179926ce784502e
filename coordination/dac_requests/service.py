"""Requests to a DAC: drafting (steps 1-2), sending, taking, answering (step 3), the dashboard.

Who sees what:
- the requester (the professional who created it) sees and, while it is a draft, edits their request;
  when it names a patient, only while they are an authorised member of that patient's circle;
- the DAC's coordinators, i.e. active professionals with an activity at the DAC's structure
  (``dac_structure_id in actor.structure_ids``), see everything addressed to their DAC once it is
  sent (a draft is still the requester's own), take it and answer it, unless they created it.
Anyone else gets a 404 that does not tell whether the request exists. Access is decided again at
every step (see ``coordination.dac_requests.rules`` and docs/ARCHITECTURE.md).

Every read and write is recorded in the audit trail (with the patient when there is one); events
"request.received" (to the DAC's coordinators) and "request.answered" (to the requester) are written in
the same transaction as the change. Services return ``RequestOut`` read models, never ORM rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, false, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coordination import patch
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle import service as circle
from coordination.dac_requests.models import DacRequest, DacRoom
from coordination.dac_requests.rules import Step, next_status
from coordination.dac_requests.schemas import AnswerIn, DacRoomOut, RequestCreate, RequestOut, RequestUpdate
from coordination.db import commit_or_conflict, utcnow
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound
from coordination.ids import NationalId, PatientId, RequestId, RoomId, StructureId, UserId
from coordination.outbox import service as outbox
from coordination.outbox.events import RequestAnswered, RequestReceived, RequestTaken
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.rooms.models import PatientRoom, ThemeRoom
from coordination.security import Actor, actor_for_user
from coordination.vocab import Decision, RequestStatus, Urgency, parse

logger = logging.getLogger(__name__)

MAX_PAGE = 200
DAC_ROLE = "coordinateur DAC"


@dataclass(frozen=True, slots=True)
class RequestFilters:
    """Dashboard filters; every one narrows the set the actor may see (requester or coordinator)."""

    dac: StructureId | None = None
    statuses: tuple[RequestStatus, ...] = ()
    urgencies: tuple[Urgency, ...] = ()
    min_age_days: int | None = None
    max_age_days: int | None = None
    patient_id: PatientId | None = None
    mine: bool = False


def _not_found() -> NotFound:
    return NotFound(
        "Demande introuvable, ou vous n'y avez pas accès : seuls son auteur et les coordinateurs du "
        "DAC destinataire la voient.",
        errcode=ErrCode.UNKNOWN_REQUEST,
    )


def _stale() -> Conflict:
    return Conflict(
        "La demande a été modifiée entre-temps : rechargez-la, puis refaites votre action.",
        errcode=ErrCode.STALE_VERSION,
    )


def is_requester(actor: Actor, req: DacRequest) -> bool:
    return req.requester_national_id == actor.national_id


def coordinates(actor: Actor, dac_structure_id: str) -> bool:
    """The actor works at the DAC's structure (directory activity): they are one of its coordinators."""
    return dac_structure_id in actor.structure_ids


def is_coordinator(actor: Actor, req: DacRequest) -> bool:
    """A coordinator of the addressed DAC, for a request it has received (not a draft)."""
    return coordinates(actor, req.dac_structure_id) and req.status != RequestStatus.BROUILLON


async def require_dac_coordinator(*, session: AsyncSession, actor: Actor, dac_structure_id: str) -> None:
    """403 in French unless the actor coordinates ``dac_structure_id`` now: an active DAC of the directory
    at which they work (the same rule as for taking and answering its requests)."""
    if not coordinates(actor, dac_structure_id) or not await directory.active_dac_ids(
        session=session, structure_ids=[dac_structure_id]
    ):
        raise Forbidden(
            "Seuls les coordinateurs de ce DAC (professionnels qui y exercent selon l'annuaire) voient "
            "son activité : choisissez un DAC où vous exercez.",
            errcode=ErrCode.NOT_DAC_COORDINATOR,
        )


async def coordinated_dacs(*, session: AsyncSession, actor: Actor) -> dict[str, str]:
    """``{structure_id: name}`` of the active DACs the actor coordinates (works at)."""
    dacs = await directory.active_dac_ids(session=session, structure_ids=actor.structure_ids)
    return await directory.structure_names(session=session, structure_ids=dacs)


async def _checked_dac(session: AsyncSession, structure_id: str) -> None:
    if not await directory.active_dac_ids(session=session, structure_ids=[structure_id]):
        raise Invalid(
            "La structure choisie n'est pas un DAC (Dispositif d'Appui à la Coordination) actif de "
            "l'annuaire : choisissez un DAC dans la liste des DAC.",
            field="dac_structure_id",
        )


def _checked_requester_structure(actor: Actor, structure_id: str | None) -> None:
    if structure_id is not None and structure_id not in actor.structure_ids:
        raise Invalid(
            "Vous n'exercez pas dans cette structure selon l'annuaire : choisissez l'une de vos "
            "structures, ou laissez le champ vide.",
            field="requester_structure_id",
        )


async def coordinator_user_ids(*, session: AsyncSession, dac_structure_id: str) -> list[str]:
    """Matrix IDs of the DAC's coordinators: active, bound professionals working at the DAC."""
    return await directory.bound_active_user_ids(session=session, structure_ids=[dac_structure_id])


def _out(req: DacRequest, names: dict[str, str]) -> RequestOut:
    status = parse(RequestStatus, req.status)
    urgency = parse(Urgency, req.urgency)
    decision = parse(Decision, req.decision) if req.decision else None
    return RequestOut(
        id=RequestId(req.id),
        version=req.version,
        patient_id=PatientId(req.patient_id) if req.patient_id else None,
        dac_structure_id=StructureId(req.dac_structure_id),
        dac_name=names.get(req.dac_structure_id, req.dac_structure_id),
        status=status,
        status_label=status.label,
        urgency=urgency,
        urgency_label=urgency.label,
        reason=req.reason,
        description=req.description,
        requester_user_id=UserId(req.requester_user_id),
        requester_national_id=NationalId(req.requester_national_id),
        requester_structure_id=StructureId(req.requester_structure_id)
        if req.requester_structure_id
        else None,
        contact_phone=req.contact_phone,
        contact_email=req.contact_email,
        actions=list(req.actions),
        alerts=list(req.alerts),
        decision=decision,
        decision_label=decision.label if decision else None,
        answer_comment=req.answer_comment,
        patient_included=req.patient_included,
        taken_by_national_id=NationalId(req.taken_by_national_id) if req.taken_by_national_id else None,
        answered_by_national_id=(
            NationalId(req.answered_by_national_id) if req.answered_by_national_id else None
        ),
        created_at=req.created_at,
        updated_at=req.updated_at,
        received_at=req.received_at,
        sent_at=req.sent_at,
        taken_at=req.taken_at,
        answered_at=req.answered_at,
        cancelled_at=req.cancelled_at,
        age_days=max(0, (utcnow() - req.received_at).days),
    )


async def _read_models(session: AsyncSession, rows: Iterable[DacRequest]) -> list[RequestOut]:
    rows = list(rows)
    names = await directory.structure_names(session=session, structure_ids=[r.dac_structure_id for r in rows])
    return [_out(r, names) for r in rows]


async def _one(session: AsyncSession, req: DacRequest) -> RequestOut:
    return (await _read_models(session, [req]))[0]


async def _record(session: AsyncSession, actor: Actor, action: str, req: DacRequest) -> None:
    await audit.record(
        session=session,
        actor=actor,
        action=action,
        object_type="dac_request",
        object_id=req.id,
        patient_id=req.patient_id,
    )


async def _commit(session: AsyncSession) -> None:
    await commit_or_conflict(session, on_stale=_stale())


async def _visible(session: AsyncSession, actor: Actor, request_id: uuid.UUID) -> DacRequest:
    """The request if the actor may see it now: a coordinator of its DAC (once sent), or its author
    while still authorised on its patient (403 ``AZ_NOT_IN_CIRCLE`` once removed from the circle)."""
    req = await session.get(DacRequest, request_id)
    if req is None:
        raise _not_found()
    if is_coordinator(actor, req):
        return req
    if not is_requester(actor, req):
        raise _not_found()
    await _require_patient_access(session, actor, req)
    return req


async def _require_patient_access(session: AsyncSession, actor: Actor, req: DacRequest) -> None:
    """The actor is authorised on the request's patient now (nothing to check without a patient)."""
    if req.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=req.patient_id)


async def _as_requester(session: AsyncSession, actor: Actor, request_id: uuid.UUID, verb: str) -> DacRequest:
    """A requester's step (update, send, cancel): the author, still authorised on the patient."""
    req = await _visible(session, actor, request_id)
    if not is_requester(actor, req):
        raise Forbidden(f"Seul l'auteur de la demande peut {verb}.", errcode=ErrCode.NOT_REQUESTER)
    await _require_patient_access(session, actor, req)
    return req


def _check_version(req: DacRequest, version: int) -> None:
    if req.version != version:
        raise _stale()


# --- requester ----------------------------------------------------------------------------------


async def create_request(*, session: AsyncSession, actor: Actor, data: RequestCreate) -> RequestOut:
    """Create a draft addressed to a DAC. With a patient, the actor must be an authorised member of
    its care circle; the addressee must be an active directory structure marked DAC (else 422)."""
    if data.patient_id is not None:
        await circle_access.require_authorised(session=session, actor=actor, patient_id=data.patient_id)
    await _checked_dac(session, data.dac_structure_id)
    _checked_requester_structure(actor, data.requester_structure_id)
    now = utcnow()
    req = DacRequest(
        id=uuid.uuid4(),
        patient_id=data.patient_id,
        dac_structure_id=data.dac_structure_id,
        status=RequestStatus.BROUILLON,
        reason=data.reason,
        description=data.description,
        urgency=data.urgency,
        requester_user_id=actor.user_id,
        requester_national_id=actor.national_id,
        requester_structure_id=data.requester_structure_id,
        contact_phone=data.contact_phone,
        contact_email=data.contact_email,
        actions=list(data.actions),
        alerts=list(data.alerts),
        created_at=now,
        updated_at=now,
        received_at=now,
    )
    session.add(req)
    await _record(session, actor, "request.created", req)
    await session.commit()
    logger.info("dac request %s drafted by %s", req.id, actor.national_id)
    return await _one(session, req)


# Fields of steps 1-2 that a draft always has: null does not clear them.
_NOT_CLEARABLE = ("dac_structure_id", "reason", "urgency")
# Fields that null resets to their empty value.
_EMPTY_VALUES: dict[str, Any] = {"description": "", "actions": [], "alerts": []}


def _draft_changes(data: RequestUpdate) -> dict[str, Any]:
    changed = patch.changes(data)
    for name in _NOT_CLEARABLE:
        if name in changed and changed[name] is None:
            raise Invalid(
                "Ce champ ne peut pas être vidé : donnez une valeur ou ne l'envoyez pas.", field=name
            )
    for name, empty in _EMPTY_VALUES.items():
        if name in changed and changed[name] is None:
            changed[name] = empty
    return changed


async def update_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, data: RequestUpdate
) -> RequestOut:
    """Edit steps 1-2 (``coordination.patch`` convention): only the requester, still authorised on the
    patient, only while it is a draft (409 afterwards)."""
    req = await _as_requester(session, actor, request_id, "modifier ses étapes 1 et 2")
    if req.status != RequestStatus.BROUILLON:
        raise Conflict(
            "La demande a déjà été envoyée : elle ne peut plus être modifiée. Contactez le DAC pour "
            "la compléter.",
            errcode=ErrCode.BAD_TRANSITION,
        )
    _check_version(req, data.version)
    changed = _draft_changes(data)
    if "dac_structure_id" in changed:
        await _checked_dac(session, changed["dac_structure_id"])
    if "requester_structure_id" in changed:
        _checked_requester_structure(actor, changed["requester_structure_id"])
    if patch.apply(req, changed):
        req.updated_at = utcnow()
        await _record(session, actor, "request.updated", req)
        await _commit(session)
    return await _one(session, req)


async def send_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, version: int
) -> RequestOut:
    """Send a draft to its DAC (requester only, authorised on the patient now); its coordinators get
    "request.received"."""
    req = await _as_requester(session, actor, request_id, "l'envoyer")
    new_status = next_status(req.status, Step.SEND)
    _check_version(req, version)
    # Every query before the first change, so the row is written (and its version bumped) once.
    await _checked_dac(session, req.dac_structure_id)  # it may have closed since the draft
    recipients = await coordinator_user_ids(session=session, dac_structure_id=req.dac_structure_id)
    dac_room = await session.scalar(
        select(DacRoom.room_id).where(DacRoom.structure_id == req.dac_structure_id)
    )
    now = utcnow()
    req.status = new_status
    req.sent_at = now
    req.received_at = now
    req.updated_at = now
    await _record(session, actor, "request.sent", req)
    await outbox.emit(
        session=session,
        recipients=[u for u in recipients if u != actor.user_id],
        event=RequestReceived(
            request_id=RequestId(req.id),
            dac_structure_id=StructureId(req.dac_structure_id),
            urgency=req.urgency,
            patient_id=PatientId(req.patient_id) if req.patient_id else None,
            dac_room_id=RoomId(dac_room) if dac_room else None,
        ),
    )
    await _commit(session)
    logger.info("dac request %s sent to %s", req.id, req.dac_structure_id)
    return await _one(session, req)


async def cancel_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, version: int
) -> RequestOut:
    """Cancel (requester only, authorised on the patient now) a draft, or a sent request the DAC has
    not taken yet."""
    req = await _as_requester(session, actor, request_id, "l'annuler")
    new_status = next_status(req.status, Step.CANCEL)
    _check_version(req, version)
    req.status = new_status
    req.cancelled_at = req.updated_at = utcnow()
    await _record(session, actor, "request.cancelled", req)
    await _commit(session)
    return await _one(session, req)


# --- DAC coordinators ---------------------------------------------------------------------------


def _require_coordinator(actor: Actor, req: DacRequest) -> None:
    """A coordinator of the addressed DAC now, who did not create the request."""
    if not is_coordinator(actor, req):
        raise Forbidden(
            "Seuls les coordinateurs du DAC destinataire peuvent prendre en charge une demande et y "
            "répondre.",
            errcode=ErrCode.NOT_DAC_COORDINATOR,
        )
    if is_requester(actor, req):
        raise Forbidden(
            "Vous avez créé cette demande : un autre coordinateur du DAC doit la prendre en charge et y "
            "répondre.",
            errcode=ErrCode.OWN_REQUEST,
        )


async def take_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, version: int
) -> RequestOut:
    """A coordinator of the DAC takes the request (``envoyee`` -> ``en_cours``)."""
    req = await _visible(session, actor, request_id)
    _require_coordinator(actor, req)
    new_status = next_status(req.status, Step.TAKE)
    _check_version(req, version)
    req.status = new_status
    req.taken_at = req.updated_at = utcnow()
    req.taken_by_national_id = actor.national_id
    await _record(session, actor, "request.taken", req)
    await outbox.emit(
        session=session,
        recipients=[req.requester_user_id],
        event=RequestTaken(
            request_id=RequestId(req.id),
            dac_structure_id=StructureId(req.dac_structure_id),
            patient_id=PatientId(req.patient_id) if req.patient_id else None,
        ),
    )
    await _commit(session)
    return await _one(session, req)


async def _requester_still_authorised(session: AsyncSession, req: DacRequest, patient_id: uuid.UUID) -> bool:
    """Whether the request's author is, at this moment, an active directory professional authorised on
    the patient (the same rule as for any caller: ``security.actor_for_user`` + ``circle.access``)."""
    try:
        requester = await actor_for_user(session=session, user_id=UserId(req.requester_user_id))
    except Forbidden:  # delisted or unbound since
        return False
    return await circle_access.is_authorised(session=session, actor=requester, patient_id=patient_id)


async def _check_inclusion(session: AsyncSession, req: DacRequest, data: AnswerIn) -> PatientId | None:
    """The patient to include, or None; 422 when inclusion makes no sense, 403 when the request's
    author is no longer authorised on the patient (a removed member must not get back in this way)."""
    if not data.include_patient:
        return None
    if req.patient_id is None:
        raise Invalid(
            "Cette demande ne concerne aucun patient : il n'y a personne à inclure.",
            field="include_patient",
        )
    if data.decision is not Decision.ACCEPTEE:
        raise Invalid(
            "Un patient n'est inclus dans le suivi du DAC que si la demande est acceptée : "
            "choisissez la décision « Acceptée » ou décochez l'inclusion.",
            field="include_patient",
        )
    if not await _requester_still_authorised(session, req, req.patient_id):
        raise Forbidden(
            "L'auteur de la demande n'est plus membre habilité du cercle de soins de ce patient : le DAC "
            "ne peut pas être inclus par cette demande. Répondez sans inclusion, ou demandez à un membre "
            "habilité du cercle d'ajouter le DAC.",
            errcode=ErrCode.NOT_IN_CIRCLE,
        )
    return PatientId(req.patient_id)


async def answer_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, data: AnswerIn
) -> RequestOut:
    """Step 3 by a coordinator: the decision closes the request (``refusee`` if refused).

    With ``include_patient`` (decision "acceptee" and a patient only, and the request's author still
    authorised on the patient), the DAC's structure joins the patient's care circle, habilitée, with the
    role "coordinateur DAC", so its coordinators reach the dossier; this is audited as
    "request.patient_included". The requester gets "request.answered".
    """
    req = await _visible(session, actor, request_id)
    _require_coordinator(actor, req)
    new_status = next_status(req.status, Step.ANSWER, decision=data.decision)
    _check_version(req, data.version)
    patient_id = await _check_inclusion(session, req, data)
    if patient_id is not None:
        # Before changing the request: its row is then written (and its version bumped) once.
        await circle.add_system_member(
            session=session,
            patient_id=patient_id,
            structure_id=req.dac_structure_id,
            role=DAC_ROLE,
            habilite=True,
            reason=f"Inclusion dans le suivi du DAC (demande {req.id})",
        )
    now = utcnow()
    req.status = new_status
    req.decision = data.decision
    req.answer_comment = data.comment
    req.answered_by_national_id = actor.national_id
    req.answered_at = req.updated_at = now
    req.patient_included = patient_id is not None
    await _record(session, actor, "request.answered", req)
    if patient_id is not None:
        await _record(session, actor, "request.patient_included", req)
    await outbox.emit(
        session=session,
        recipients=[req.requester_user_id],
        event=RequestAnswered(
            request_id=RequestId(req.id),
            dac_structure_id=StructureId(req.dac_structure_id),
            decision=req.decision,
            patient_included=bool(req.patient_included),
            patient_id=PatientId(req.patient_id) if req.patient_id else None,
        ),
    )
    await _commit(session)
    logger.info("dac request %s answered (%s)", req.id, req.decision)
    return await _one(session, req)


# --- reading ------------------------------------------------------------------------------------


async def get_request(*, session: AsyncSession, actor: Actor, request_id: RequestId) -> RequestOut:
    """One request (its author while authorised on its patient, or a coordinator of its DAC); the read
    is audited."""
    req = await _visible(session, actor, request_id)
    await _record(session, actor, "request.read", req)
    await session.commit()
    return await _one(session, req)


def _visibility(actor: Actor, *, mine: bool) -> ColumnElement[bool]:
    """My requests (those naming a patient only while I am authorised on it), and, unless ``mine``,
    those my DACs received."""
    own = and_(
        DacRequest.requester_national_id == actor.national_id,
        or_(
            DacRequest.patient_id.is_(None),
            DacRequest.patient_id.in_(circle_access.authorised_patients_subquery(actor)),
        ),
    )
    if mine:
        return own
    received = (
        and_(
            DacRequest.dac_structure_id.in_(sorted(actor.structure_ids)),
            DacRequest.status != RequestStatus.BROUILLON,
        )
        if actor.structure_ids
        else false()
    )
    return or_(own, received)


def _filtered(stmt: Select[DacRequest], filters: RequestFilters) -> Select[DacRequest]:
    now = utcnow()
    if filters.dac is not None:
        stmt = stmt.where(DacRequest.dac_structure_id == filters.dac)
    if filters.statuses:
        stmt = stmt.where(DacRequest.status.in_(filters.statuses))
    if filters.urgencies:
        stmt = stmt.where(DacRequest.urgency.in_(filters.urgencies))
    if filters.patient_id is not None:
        stmt = stmt.where(DacRequest.patient_id == filters.patient_id)
    if filters.min_age_days is not None:
        stmt = stmt.where(DacRequest.received_at <= now - timedelta(days=filters.min_age_days))
    if filters.max_age_days is not None:
        stmt = stmt.where(DacRequest.received_at >= now - timedelta(days=filters.max_age_days))
    return stmt


def _after(cursor: str | None) -> ColumnElement[bool] | None:
    """The keyset condition of the page after ``cursor`` (newest received first, then id)."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        received_at = datetime.fromisoformat(str(position["r"]))
        last_id = uuid.UUID(str(position["i"]))
    except (KeyError, ValueError) as exc:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente.",
            field="cursor",
        ) from exc
    return or_(
        DacRequest.received_at < received_at,
        and_(DacRequest.received_at == received_at, DacRequest.id < last_id),
    )


async def list_requests(
    *,
    session: AsyncSession,
    actor: Actor,
    filters: RequestFilters,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[RequestOut]:
    """The dashboard: requests the actor may see matching ``filters``, newest received first.

    Served by ``ix_dac_requests_dac_status`` for a DAC's list and ``ix_dac_requests_requester`` for
    "mine"; pages by keyset (received_at, id). Patients appearing in the page are recorded in the
    audit trail.
    """
    limit = max(1, min(limit, MAX_PAGE))
    stmt = _filtered(select(DacRequest).where(_visibility(actor, mine=filters.mine)), filters)
    after = _after(cursor)
    if after is not None:
        stmt = stmt.where(after)
    stmt = stmt.order_by(DacRequest.received_at.desc(), DacRequest.id.desc())
    rows = (await session.scalars(stmt.limit(limit + 1))).all()
    page = rows[:limit]
    next_cursor = (
        encode_cursor({"r": page[-1].received_at.isoformat(), "i": str(page[-1].id)})
        if len(rows) > limit
        else None
    )
    patient_ids = sorted({r.patient_id for r in page if r.patient_id is not None})
    if patient_ids:
        await audit.record_many(
            session=session,
            actor=actor,
            action="request.list",
            object_type="dac_request",
            patient_ids=patient_ids,
        )
        await session.commit()
    return Page[RequestOut](items=await _read_models(session, page), next_cursor=next_cursor)


# --- the DAC's own room --------------------------------------------------------------------------
DAC_ROOM_TAKEN = (
    "Ce salon est déjà rattaché {what} : le salon d'un DAC ne sert qu'à ses coordinateurs. Choisissez "
    "ou créez un autre salon."
)


async def _dac_room_out(session: AsyncSession, structure_id: str, row: DacRoom | None) -> DacRoomOut:
    names = await directory.structure_names(session=session, structure_ids=[structure_id])
    return DacRoomOut(
        structure_id=StructureId(structure_id),
        dac_name=names.get(structure_id),
        room_id=RoomId(row.room_id) if row is not None else None,
        set_by_national_id=NationalId(row.set_by) if row is not None else None,
        set_at=row.set_at if row is not None else None,
    )


async def get_dac_room(*, session: AsyncSession, actor: Actor, dac_structure_id: StructureId) -> DacRoomOut:
    """Where the DAC's coordinators hear of new requests (its coordinators only)."""
    await require_dac_coordinator(session=session, actor=actor, dac_structure_id=dac_structure_id)
    return await _dac_room_out(session, dac_structure_id, await session.get(DacRoom, dac_structure_id))


async def set_dac_room(
    *, session: AsyncSession, actor: Actor, dac_structure_id: StructureId, room_id: RoomId
) -> DacRoomOut:
    """A coordinator of the DAC makes ``room_id`` its own room: new requests are announced there, once,
    mentioning the coordinators (instead of a direct message each). A room linked to a patient or a
    theme, or already another DAC's, is refused (409): its members are not the DAC's coordinators."""
    await require_dac_coordinator(session=session, actor=actor, dac_structure_id=dac_structure_id)
    if await session.get(PatientRoom, room_id) is not None:
        raise Conflict(DAC_ROOM_TAKEN.format(what="à un dossier patient"), errcode=ErrCode.ROOM_TAKEN)
    if await session.scalar(select(ThemeRoom.id).where(ThemeRoom.room_id == room_id)) is not None:
        raise Conflict(DAC_ROOM_TAKEN.format(what="à un thème"), errcode=ErrCode.ROOM_TAKEN)
    other = await session.scalar(
        select(DacRoom.structure_id).where(
            DacRoom.room_id == room_id, DacRoom.structure_id != dac_structure_id
        )
    )
    if other is not None:
        raise Conflict(DAC_ROOM_TAKEN.format(what="à un autre DAC"), errcode=ErrCode.ROOM_TAKEN)
    row = await session.get(DacRoom, dac_structure_id)
    if row is None:
        row = DacRoom(
            structure_id=dac_structure_id, room_id=room_id, set_by=actor.national_id, set_at=utcnow()
        )
        session.add(row)
    elif row.room_id != room_id:
        row.room_id, row.set_by, row.set_at = room_id, actor.national_id, utcnow()
    try:
        await session.commit()
    except IntegrityError as exc:  # the same room given to two DACs at the same moment
        await session.rollback()
        raise Conflict(DAC_ROOM_TAKEN.format(what="à un autre DAC"), errcode=ErrCode.ROOM_TAKEN) from exc
    logger.info("dac %s: own room set", dac_structure_id)
    return await _dac_room_out(session, dac_structure_id, row)


async def clear_dac_room(*, session: AsyncSession, actor: Actor, dac_structure_id: StructureId) -> DacRoomOut:
    """Back to a direct message to each coordinator (idempotent)."""
    await require_dac_coordinator(session=session, actor=actor, dac_structure_id=dac_structure_id)
    await session.execute(delete(DacRoom).where(DacRoom.structure_id == dac_structure_id))
    await session.commit()
    logger.info("dac %s: own room cleared", dac_structure_id)
    return await _dac_room_out(session, dac_structure_id, None)
