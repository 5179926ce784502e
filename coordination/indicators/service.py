"""A DAC's activity in figures: requests received, delays, inclusions, open tasks (issue 10), complex
situations followed (issue 14).

Who sees them: the DAC's coordinators only (``dac_requests.require_dac_coordinator``: an active DAC
of the directory where the actor works), 403 in French for anyone else. The figures name no patient
and no professional; each consultation is still recorded in the audit trail ("indicators.read").

Every figure is one SQL aggregate (SQLAlchemy core) over the DAC's rows, the same on SQLite and
PostgreSQL, except the median, computed by each database: ``percentile_cont(0.5)`` on PostgreSQL, and
on SQLite (which has no percentile function) the mean of the middle row(s) numbered by
``row_number()`` over the sorted delays. What counts is explained on ``IndicatorsOut``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Select, and_, case, cast, distinct, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.dac_requests import service as dac_requests
from coordination.dac_requests.models import DacRequest
from coordination.db import utcnow
from coordination.directory import service as directory
from coordination.errors import ErrCode, Forbidden, Invalid
from coordination.ids import StructureId
from coordination.indicators import rules
from coordination.indicators.schemas import CountOut, DacOut, DelayOut, IndicatorsOut
from coordination.plans.models import CarePlan
from coordination.security import Actor
from coordination.tasks import rules as task_rules
from coordination.tasks.models import Task, TaskAssignee
from coordination.timeline.models import ComplexSituation
from coordination.vocab import Decision, RequestStatus, TaskStatus, Urgency

logger = logging.getLogger(__name__)

_OPEN_TASK = (TaskStatus.A_FAIRE.value, TaskStatus.EN_COURS.value)


async def my_dacs(*, session: AsyncSession, actor: Actor) -> list[DacOut]:
    """The active DACs the actor coordinates, by name (the dashboard's choice of DAC)."""
    names = await dac_requests.coordinated_dacs(session=session, actor=actor)
    return [
        DacOut(structure_id=StructureId(sid), name=name)
        for sid, name in sorted(names.items(), key=lambda item: (item[1], item[0]))
    ]


async def _chosen_dac(session: AsyncSession, actor: Actor, dac_id: StructureId | None) -> StructureId:
    """The DAC asked for; without one, the actor's only DAC (422 when they coordinate several)."""
    if dac_id is not None:
        return dac_id
    dacs = await my_dacs(session=session, actor=actor)
    if len(dacs) == 1:
        return dacs[0].structure_id
    if not dacs:
        raise Forbidden(
            "Vous n'êtes coordinateur d'aucun DAC actif de l'annuaire : les indicateurs sont réservés aux "
            "coordinateurs d'un DAC.",
            errcode=ErrCode.NOT_DAC_COORDINATOR,
        )
    raise Invalid(
        f"Vous êtes coordinateur de {len(dacs)} DAC : choisissez celui dont vous voulez les indicateurs "
        "(paramètre dac_id).",
        field="dac_id",
    )


async def dac_indicators(
    *, session: AsyncSession, actor: Actor, dac_id: StructureId | None, period: rules.Period
) -> IndicatorsOut:
    """The DAC's figures over ``period`` (see ``IndicatorsOut`` for what each counts).

    Only a coordinator of the DAC (403 ``AZ_NOT_DAC_COORDINATOR`` otherwise). The figures are reads:
    the one write is the consultation's audit entry, committed at the end."""
    dac = await _chosen_dac(session, actor, dac_id)
    await dac_requests.require_dac_coordinator(session=session, actor=actor, dac_structure_id=dac)
    now = utcnow()
    received = _received(dac, period)
    urgencies = await _grouped(session, select(DacRequest.urgency, func.count()).where(received))
    total = sum(urgencies.values())
    urgency_labels = {u.value: u.label for u in Urgency}
    tasks_by_age = await _open_tasks_by_age(session, dac, now)
    complex_by_review = await _complex_situations(session, dac, now)
    result = IndicatorsOut(
        dac_structure_id=dac,
        dac_name=(await directory.structure_names(session=session, structure_ids=[dac])).get(dac, dac),
        period_from=period.start,
        period_to=period.end,
        generated_at=now,
        requests_received=total,
        by_profession=await _by_profession(session, received),
        by_origin=await _by_origin(session, received),
        by_urgency=[
            CountOut(code=code, label=urgency_labels.get(code, code), count=n)
            for code, n in rules.counts_in_order(urgencies, [u.value for u in Urgency])
        ],
        by_outcome=await _by_outcome(session, received),
        take_delay=await _median_delay(session, DacRequest.taken_at, received),
        answer_delay=await _median_delay(session, DacRequest.answered_at, received),
        patients_included=await _patients_included(session, dac, period),
        open_tasks=sum(b.count for b in tasks_by_age),
        open_tasks_by_age=tasks_by_age,
        complex_situations=sum(c.count for c in complex_by_review),
        complex_situations_by_review=complex_by_review,
    )
    await audit.record(
        session=session, actor=actor, action="indicators.read", object_type="dac", object_id=dac
    )
    await session.commit()
    logger.info("indicators of %s read by %s", dac, actor.national_id)
    return result


# --- the aggregates ------------------------------------------------------------------------------------


# Every status a request can have once sent (a cancelled draft is "annulee" too: ``sent_at`` tells).
_SENT = tuple(s.value for s in RequestStatus if s is not RequestStatus.BROUILLON)


def _received(dac: str, period: rules.Period) -> ColumnElement[bool]:
    """Requests sent to the DAC within the period (a draft has no ``sent_at``: it never counts).

    Written on ``received_at``, which ``send_request`` sets to the sending time with ``sent_at``, and on
    the sent statuses, so that ``ix_dac_requests_dac_status`` (DAC, status, received_at) reads only the
    period's entries of the DAC (``bench/bench_indicators.py``: half the time of a filter on ``sent_at``,
    which the index does not hold)."""
    return and_(
        DacRequest.dac_structure_id == dac,
        DacRequest.status.in_(_SENT),
        DacRequest.received_at >= period.start_utc,
        DacRequest.received_at < period.end_utc,
        DacRequest.sent_at.is_not(None),
    )


async def _grouped(session: AsyncSession, stmt: Select[Any, int]) -> dict[str, int]:
    """``{code: count}`` of a ``SELECT code, count(*)`` grouped by its first column."""
    first = stmt.selected_columns[0]
    rows = await session.execute(stmt.group_by(first))
    return {str(code) if code is not None else "": int(n) for code, n in rows.tuples()}


async def _by_profession(session: AsyncSession, received: ColumnElement[bool]) -> list[CountOut]:
    rows = select(directory.profession_of(DacRequest.requester_national_id).label("profession")).where(
        received
    )
    inner = rows.subquery()
    found = await _grouped(session, select(inner.c.profession, func.count()))
    ordered = sorted(found.items(), key=lambda item: (-item[1], item[0] == "", item[0]))
    return [
        CountOut(code=code or "non_renseignee", label=code or rules.UNKNOWN_PROFESSION, count=n)
        for code, n in ordered
    ]


async def _by_origin(session: AsyncSession, received: ColumnElement[bool]) -> list[CountOut]:
    inner = (
        select(
            (DacRequest.requester_structure_id.is_not(None)).label("has_structure"),
            directory.is_dac_of(DacRequest.requester_structure_id).label("is_dac"),
            directory.exercise_mode_of(
                national_id=DacRequest.requester_national_id, structure_id=DacRequest.requester_structure_id
            ).label("mode"),
        )
        .where(received)
        .subquery()
    )
    rows = await session.execute(
        select(inner.c.has_structure, inner.c.is_dac, inner.c.mode, func.count()).group_by(
            inner.c.has_structure, inner.c.is_dac, inner.c.mode
        )
    )
    found: dict[str, int] = {}
    for has_structure, is_dac, mode, n in rows.tuples():
        code = rules.origin(has_structure=bool(has_structure), structure_is_dac=bool(is_dac), mode=mode)
        found[code] = found.get(code, 0) + int(n)
    return [
        CountOut(code=code, label=rules.ORIGIN_LABELS.get(code, code), count=n)
        for code, n in rules.counts_in_order(found, rules.ORIGIN_ORDER)
    ]


async def _by_outcome(session: AsyncSession, received: ColumnElement[bool]) -> list[CountOut]:
    rows = await session.execute(
        select(DacRequest.status, DacRequest.decision, func.count())
        .where(received)
        .group_by(DacRequest.status, DacRequest.decision)
    )
    found: dict[str, int] = {}
    for status, decision, n in rows.tuples():
        code = rules.outcome(status=status, decision=decision)
        found[code] = found.get(code, 0) + int(n)
    order = [d.value for d in Decision] + [
        rules.OUTCOME_TAKEN,
        rules.OUTCOME_WAITING,
        rules.OUTCOME_CANCELLED,
    ]
    labels = {d.value: d.label for d in Decision} | rules.OUTCOME_LABELS
    return [
        CountOut(code=code, label=labels.get(code, code), count=n)
        for code, n in rules.counts_in_order(found, order)
    ]


def _seconds_between(
    session: AsyncSession,
    later: InstrumentedAttribute[datetime | None],
    earlier: InstrumentedAttribute[datetime | None],
) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as the database computes it."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    # SQLite stores UTC text; julianday() reads it as days (about 50 µs of precision today).
    return (func.julianday(later) - func.julianday(earlier)) * literal(86400.0)


async def _median_delay(
    session: AsyncSession, until: InstrumentedAttribute[datetime | None], received: ColumnElement[bool]
) -> DelayOut:
    """The median of ``until - sent_at`` over the received requests that have ``until``."""
    seconds = _seconds_between(session, until, DacRequest.sent_at)
    measured = and_(received, until.is_not(None))
    if session.get_bind().dialect.name == "postgresql":
        stmt = select(func.percentile_cont(0.5).within_group(seconds), func.count()).where(measured)
    else:
        ranked = (
            select(
                seconds.label("s"),
                func.row_number().over(order_by=seconds).label("rn"),
                func.count().over().label("n"),
            )
            .where(measured)
            .subquery()
        )
        # The middle row (odd count) or the mean of the two middle rows (even count).
        stmt = select(func.avg(ranked.c.s), func.max(ranked.c.n)).where(
            ranked.c.rn.between((ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2)
        )
    median, count = (await session.execute(stmt)).tuples().one()
    value = round(float(median)) if median is not None else None
    return DelayOut(median_seconds=value, median_label=rules.duration_label(value), measured=int(count or 0))


async def _patients_included(session: AsyncSession, dac: str, period: rules.Period) -> int:
    """Distinct patients the DAC included by answers given in the period."""
    stmt = select(func.count(distinct(DacRequest.patient_id))).where(
        DacRequest.dac_structure_id == dac,
        # Only an accepted answer includes, and it closes the request: narrows the index scan.
        DacRequest.status == RequestStatus.CLOTUREE,
        DacRequest.patient_included.is_(True),
        DacRequest.answered_at >= period.start_utc,
        DacRequest.answered_at < period.end_utc,
    )
    return int(await session.scalar(stmt) or 0)


async def _open_tasks_by_age(session: AsyncSession, dac: str, now: datetime) -> list[CountOut]:
    """Open tasks of the DAC now (assigned to its structure, or about a patient it follows) by age."""
    assigned = select(TaskAssignee.task_id).where(
        TaskAssignee.key == task_rules.structure_key(dac), TaskAssignee.status.in_(_OPEN_TASK)
    )
    followed = circle_access.structure_patients_subquery(dac)
    ages = await _grouped(
        session,
        _bucketed(
            select(Task.created_at).where(
                Task.status.in_(_OPEN_TASK), or_(Task.id.in_(assigned), Task.patient_id.in_(followed))
            ),
            rules.age_thresholds(now),
        ),
    )
    labels = {code: label for code, label, _ in rules.AGE_BUCKETS}
    return [
        CountOut(code=code, label=labels[code], count=n)
        for code, n in rules.counts_in_order(ages, [code for code, _, _ in rules.AGE_BUCKETS])
    ]


async def _complex_situations(session: AsyncSession, dac: str, now: datetime) -> list[CountOut]:
    """Patients flagged complex now whose circle has the DAC (habilitée), by their plan's review date:
    past (before today in Paris), planned (today or later), none. Bucketed in a subquery, as
    ``_bucketed`` says why."""
    today = now.astimezone(rules.DAC_TZ).date()
    review = CarePlan.next_review_date
    inner = (
        select(
            case(
                (review.is_(None), literal(rules.REVIEW_NONE)),
                (review < today, literal(rules.REVIEW_LATE)),
                else_=literal(rules.REVIEW_PLANNED),
            ).label("bucket")
        )
        .select_from(ComplexSituation)
        .outerjoin(CarePlan, CarePlan.patient_id == ComplexSituation.patient_id)
        .where(
            ComplexSituation.flagged.is_(True),
            ComplexSituation.patient_id.in_(circle_access.structure_patients_subquery(dac)),
        )
        .subquery()
    )
    found = await _grouped(session, select(inner.c.bucket, func.count()))
    return [
        CountOut(code=code, label=rules.REVIEW_LABELS.get(code, code), count=n)
        for code, n in rules.counts_in_order(found, rules.REVIEW_ORDER)
    ]


def _bucketed(
    created: Select[datetime], thresholds: Sequence[tuple[str, datetime | None]]
) -> Select[str, int]:
    """``SELECT bucket, count(*)`` of the rows of ``created`` (a one-column select of creation times):
    the first bucket whose threshold the creation is after. Bucketed in a subquery, so the GROUP BY
    is on a plain column (PostgreSQL does not match a CASE with bound parameters in both places)."""
    inner = created.subquery()
    column = inner.c[0]
    whens = [(column > bound, literal(code)) for code, bound in thresholds if bound is not None]
    last = next(code for code, bound in thresholds if bound is None)
    labelled = select(case(*whens, else_=literal(last)).label("bucket")).select_from(inner).subquery()
    return select(labelled.c.bucket, func.count())
