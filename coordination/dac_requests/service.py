"""Requests to a DAC: drafting (steps 1-2), sending, taking, answering (step 3), the dashboard.

Who sees what:
- the requester (the professional who created it) sees and, while it is a draft, edits their request;
- the DAC's coordinators, i.e. active professionals with an activity at the DAC's structure
  (``dac_structure_id in actor.structure_ids``), see everything addressed to their DAC once it is
  sent (a draft is still the requester's own), take it and answer it.
Anyone else gets a 404 that does not tell whether the request exists.

Every read and write is recorded in the audit trail (with the patient when there is one); events
"request.received" (to the DAC's coordinators) and "request.answered" (to the requester) are written in
the same transaction as the change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle import service as circle
from coordination.dac_requests import rules
from coordination.dac_requests.models import DacRequest
from coordination.dac_requests.schemas import AnswerIn, RequestCreate, RequestUpdate
from coordination.db import commit_or_conflict, utcnow
from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound
from coordination.ids import PatientId, RequestId, StructureId
from coordination.outbox import service as outbox
from coordination.outbox.events import RequestAnswered, RequestReceived
from coordination.security import Actor

logger = logging.getLogger(__name__)

MAX_PAGE = 200
DAC_ROLE = "coordinateur DAC"


@dataclass(frozen=True, slots=True)
class RequestFilters:
    """Dashboard filters; every one narrows the set the actor may see (requester or coordinator)."""

    dac: StructureId | None = None
    statuses: tuple[str, ...] = ()
    urgencies: tuple[str, ...] = ()
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


def is_coordinator(actor: Actor, req: DacRequest) -> bool:
    """A coordinator of the addressed DAC, for a request it has received (not a draft)."""
    return req.dac_structure_id in actor.structure_ids and req.status != "brouillon"


async def _checked_dac(session: AsyncSession, structure_id: str) -> Structure:
    structure = await session.get(Structure, structure_id)
    if structure is None or not structure.is_dac or not structure.active:
        raise Invalid(
            "La structure choisie n'est pas un DAC (Dispositif d'Appui à la Coordination) actif de "
            "l'annuaire : choisissez un DAC dans la liste des DAC.",
            field="dac_structure_id",
        )
    return structure


def _checked_requester_structure(actor: Actor, structure_id: str | None) -> None:
    if structure_id is not None and structure_id not in actor.structure_ids:
        raise Invalid(
            "Vous n'exercez pas dans cette structure selon l'annuaire : choisissez l'une de vos "
            "structures, ou laissez le champ vide.",
            field="requester_structure_id",
        )


async def coordinator_user_ids(*, session: AsyncSession, dac_structure_id: str) -> list[str]:
    """Matrix IDs of the DAC's coordinators: active, bound professionals working at the DAC."""
    rows = await session.scalars(
        select(AccountBinding.user_id)
        .join(Person, Person.national_id == AccountBinding.national_id)
        .join(Activity, Activity.national_id == Person.national_id)
        .where(Activity.structure_id == dac_structure_id, Person.active.is_(True))
        .distinct()
    )
    return sorted(rows.all())


async def dac_names(*, session: AsyncSession, structure_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(structure_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Structure.structure_id, Structure.name).where(Structure.structure_id.in_(ids))
    )
    return {sid: name for sid, name in rows.all()}


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
    req = await session.get(DacRequest, request_id)
    if req is None or not (is_requester(actor, req) or is_coordinator(actor, req)):
        raise _not_found()
    return req


def _check_version(req: DacRequest, version: int) -> None:
    if req.version != version:
        raise _stale()


# --- requester ----------------------------------------------------------------------------------


async def create_request(*, session: AsyncSession, actor: Actor, data: RequestCreate) -> DacRequest:
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
        status="brouillon",
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
    return req


async def update_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, data: RequestUpdate
) -> DacRequest:
    """Edit steps 1-2: only the requester, only while it is a draft (409 afterwards)."""
    req = await _visible(session, actor, request_id)
    if not is_requester(actor, req):
        raise Forbidden(
            "Seul l'auteur de la demande peut modifier ses étapes 1 et 2.",
            errcode=ErrCode.NOT_REQUESTER,
        )
    if req.status != "brouillon":
        raise Conflict(
            "La demande a déjà été envoyée : elle ne peut plus être modifiée. Contactez le DAC pour "
            "la compléter.",
            errcode=ErrCode.BAD_TRANSITION,
        )
    _check_version(req, data.version)
    if data.dac_structure_id is not None:
        await _checked_dac(session, data.dac_structure_id)
        req.dac_structure_id = data.dac_structure_id
    if data.requester_structure_id is not None:
        _checked_requester_structure(actor, data.requester_structure_id)
        req.requester_structure_id = data.requester_structure_id
    for name in ("reason", "description", "urgency", "contact_phone", "contact_email"):
        value = getattr(data, name)
        if value is not None:
            setattr(req, name, value)
    if data.actions is not None:
        req.actions = list(data.actions)
    if data.alerts is not None:
        req.alerts = list(data.alerts)
    req.updated_at = utcnow()
    await _record(session, actor, "request.updated", req)
    await _commit(session)
    return req


async def send_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, version: int
) -> DacRequest:
    """Send a draft to its DAC (requester only); its coordinators get "request.received"."""
    req = await _visible(session, actor, request_id)
    if not is_requester(actor, req):
        raise Forbidden("Seul l'auteur de la demande peut l'envoyer.", errcode=ErrCode.NOT_REQUESTER)
    new_status = rules.next_status(req.status, "envoyer")
    _check_version(req, version)
    # Every query before the first change, so the row is written (and its version bumped) once.
    await _checked_dac(session, req.dac_structure_id)  # it may have closed since the draft
    recipients = await coordinator_user_ids(session=session, dac_structure_id=req.dac_structure_id)
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
        ),
    )
    await _commit(session)
    logger.info("dac request %s sent to %s", req.id, req.dac_structure_id)
    return req


async def cancel_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, version: int
) -> DacRequest:
    """Cancel (requester only) a draft, or a sent request the DAC has not taken yet."""
    req = await _visible(session, actor, request_id)
    if not is_requester(actor, req):
        raise Forbidden("Seul l'auteur de la demande peut l'annuler.", errcode=ErrCode.NOT_REQUESTER)
    new_status = rules.next_status(req.status, "annuler")
    _check_version(req, version)
    req.status = new_status
    req.cancelled_at = req.updated_at = utcnow()
    await _record(session, actor, "request.cancelled", req)
    await _commit(session)
    return req


# --- DAC coordinators ---------------------------------------------------------------------------


def _require_coordinator(actor: Actor, req: DacRequest) -> None:
    if not is_coordinator(actor, req):
        raise Forbidden(
            "Seuls les coordinateurs du DAC destinataire peuvent prendre en charge une demande et y "
            "répondre.",
            errcode=ErrCode.NOT_DAC_COORDINATOR,
        )


async def take_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, version: int
) -> DacRequest:
    """A coordinator of the DAC takes the request (``envoyée`` -> ``en_cours``)."""
    req = await _visible(session, actor, request_id)
    _require_coordinator(actor, req)
    new_status = rules.next_status(req.status, "prendre_en_charge")
    _check_version(req, version)
    req.status = new_status
    req.taken_at = req.updated_at = utcnow()
    req.taken_by_national_id = actor.national_id
    await _record(session, actor, "request.taken", req)
    await _commit(session)
    return req


async def answer_request(
    *, session: AsyncSession, actor: Actor, request_id: RequestId, data: AnswerIn
) -> DacRequest:
    """Step 3 by a coordinator: the decision closes the request (``refusée`` if refused).

    With ``include_patient`` (decision "acceptée" and a patient only), the DAC's structure joins the
    patient's care circle, habilitée, with the role "coordinateur DAC", so its coordinators reach the
    dossier; this is audited as "request.patient_included". The requester gets "request.answered".
    """
    req = await _visible(session, actor, request_id)
    _require_coordinator(actor, req)
    new_status = rules.next_status(req.status, "répondre", decision=data.decision)
    _check_version(req, data.version)
    if data.include_patient:
        if req.patient_id is None:
            raise Invalid(
                "Cette demande ne concerne aucun patient : il n'y a personne à inclure.",
                field="include_patient",
            )
        if data.decision != "acceptée":
            raise Invalid(
                "Un patient n'est inclus dans le suivi du DAC que si la demande est acceptée : "
                "choisissez la décision « acceptée » ou décochez l'inclusion.",
                field="include_patient",
            )
    included = False
    if data.include_patient and req.patient_id is not None:
        # Before changing the request: its row is then written (and its version bumped) once.
        await circle.add_system_member(
            session=session,
            patient_id=req.patient_id,
            structure_id=req.dac_structure_id,
            role=DAC_ROLE,
            habilite=True,
            reason=f"Inclusion dans le suivi du DAC (demande {req.id})",
        )
        included = True
    now = utcnow()
    req.status = new_status
    req.decision = data.decision
    req.answer_comment = data.comment
    req.answered_by_national_id = actor.national_id
    req.answered_at = req.updated_at = now
    req.patient_included = included
    await _record(session, actor, "request.answered", req)
    if included:
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
    return req


# --- reading ------------------------------------------------------------------------------------


async def get_request(*, session: AsyncSession, actor: Actor, request_id: RequestId) -> DacRequest:
    """One request (requester or coordinator of its DAC); the read is audited."""
    req = await _visible(session, actor, request_id)
    await _record(session, actor, "request.read", req)
    await session.commit()
    return req


def _visibility(actor: Actor, *, mine: bool) -> ColumnElement[bool]:
    own = DacRequest.requester_national_id == actor.national_id
    if mine:
        return own
    received = (
        and_(
            DacRequest.dac_structure_id.in_(sorted(actor.structure_ids)),
            DacRequest.status != "brouillon",
        )
        if actor.structure_ids
        else false()
    )
    return or_(own, received)


async def list_requests(
    *,
    session: AsyncSession,
    actor: Actor,
    filters: RequestFilters,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[DacRequest], int | None]:
    """The dashboard: requests the actor may see matching ``filters``, newest received first.

    Served by ``ix_dac_requests_dac_status`` for a DAC's list and ``ix_dac_requests_requester`` for
    "mine". Returns the page and the offset of the next one (None at the end). Patients appearing in
    the page are recorded in the audit trail.
    """
    limit = max(1, min(limit, MAX_PAGE))
    now = utcnow()
    stmt = select(DacRequest).where(_visibility(actor, mine=filters.mine))
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
    stmt = stmt.order_by(DacRequest.received_at.desc(), DacRequest.id.desc())
    rows = (await session.scalars(stmt.offset(offset).limit(limit + 1))).all()
    next_offset = offset + limit if len(rows) > limit else None
    page = rows[:limit]
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
    return page, next_offset
