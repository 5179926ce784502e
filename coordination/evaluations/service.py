"""Evaluations of a patient: fill a form (draft, autosaved), sign it, read the history and the scores.

Rules:
- only authorised members of the circle read or write a patient's evaluations (``circle_access``),
  every read and write is audited in the same transaction;
- each answer is typed by its question (``rules.check_answers``) and the score is computed here at
  every save (``rules.compute_score``), never sent by the client;
- a draft changes with the ``version`` read (409 ``AZ_STALE_VERSION`` otherwise); signing records who
  and when, needs every required question and a score when the form has one, and freezes the
  evaluation (409 ``AZ_ALREADY_SIGNED`` afterwards: a new evaluation is filled instead);
- the export is a FHIR R4B ``QuestionnaireResponse`` built with ``fhir.resources`` (validated as built).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswer,
)
from fhir.resources.R4B.reference import Reference
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.db import commit_or_conflict, utcnow
from coordination.directory import service as directory
from coordination.errors import Conflict, ErrCode, Invalid, NotFound
from coordination.evaluations import forms as form_files
from coordination.evaluations import rules
from coordination.evaluations.forms import FormDef
from coordination.evaluations.models import Evaluation
from coordination.evaluations.schemas import (
    EvaluationCreate,
    EvaluationOut,
    EvaluationUpdate,
    FormOut,
    FormSummaryOut,
    ItemOut,
    OptionOut,
    ScorePointOut,
)
from coordination.ids import EvaluationId, NationalId, PatientId
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.security import Actor
from coordination.vocab import EvaluationStatus, parse

logger = logging.getLogger(__name__)

MAX_PAGE = 100
IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
SCORE_URL = "https://azurezo.fr/fhir/StructureDefinition/questionnaireresponse-score"


def _unknown_form(form_id: str) -> NotFound:
    return NotFound(
        f"Formulaire d'évaluation « {form_id} » inconnu : choisissez-en un dans la liste des formulaires.",
        errcode=ErrCode.UNKNOWN_FORM,
    )


def _not_found() -> NotFound:
    return NotFound("Évaluation introuvable pour ce patient : vérifiez le lien ou rechargez la liste.")


def _stale() -> Conflict:
    return Conflict(
        "L'évaluation a été modifiée entre-temps (autre onglet ou autre membre) : rechargez-la, puis "
        "refaites votre modification.",
        errcode=ErrCode.STALE_VERSION,
    )


# --- forms --------------------------------------------------------------------------------------


def _forms(forms_dir: Path | None) -> dict[str, FormDef]:
    return form_files.load_forms(form_files.form_directories(forms_dir))


def _summary(form: FormDef) -> FormSummaryOut:
    return FormSummaryOut(
        id=form.id, version=form.version, title=form.title, description=form.description, scoring=form.scoring
    )


def list_forms(*, forms_dir: Path | None) -> Page[FormSummaryOut]:
    """Every active form, built-in and dropped in ``forms_dir``, by title (no patient data: any
    authenticated professional may read them)."""
    forms = sorted(_forms(forms_dir).values(), key=lambda f: f.title)
    return Page(items=[_summary(f) for f in forms], next_cursor=None)


def get_form(*, forms_dir: Path | None, form_id: str) -> FormOut:
    """One form with its questions and its FHIR Questionnaire (404 ``AZ_UNKNOWN_FORM``)."""
    form = _forms(forms_dir).get(form_id)
    if form is None:
        raise _unknown_form(form_id)
    items = [
        ItemOut(
            link_id=i.link_id,
            text=i.text,
            type=i.type,
            required=i.required,
            section=i.section,
            section_text=i.section_text,
            options=[OptionOut(code=o.code, display=o.display, ordinal=o.ordinal) for o in i.options],
        )
        for i in form.items
    ]
    return FormOut(**_summary(form).model_dump(), items=items, questionnaire=form.questionnaire)


# --- read models --------------------------------------------------------------------------------


async def _outs(session: AsyncSession, rows: Sequence[Evaluation]) -> list[EvaluationOut]:
    names = await directory.display_names(
        session=session, national_ids=[r.signed_by for r in rows if r.signed_by]
    )
    return [
        EvaluationOut(
            id=EvaluationId(r.id),
            version=r.version,
            patient_id=PatientId(r.patient_id),
            form_id=r.form_id,
            form_version=r.form_version,
            form_title=r.form_title,
            status=parse(EvaluationStatus, r.status),
            answers=dict(r.answers),
            score=r.score,
            score_label=r.score_label,
            score_details=r.score_details,
            created_by=NationalId(r.created_by),
            created_at=r.created_at,
            updated_by=NationalId(r.updated_by),
            updated_at=r.updated_at,
            signed_by=NationalId(r.signed_by) if r.signed_by else None,
            signed_by_name=names.get(r.signed_by) if r.signed_by else None,
            signed_at=r.signed_at,
        )
        for r in rows
    ]


async def _record(session: AsyncSession, actor: Actor, action: str, row: Evaluation) -> None:
    await audit.record(
        session=session,
        actor=actor,
        action=action,
        object_type="evaluation",
        object_id=row.id,
        patient_id=row.patient_id,
    )


# --- writing ------------------------------------------------------------------------------------


def _apply(row: Evaluation, form: FormDef, answers: Mapping[str, Any], *, sign: bool, actor: Actor) -> None:
    """Type the answers, recompute the score, and sign when asked (French 422 when incomplete)."""
    score = rules.compute_score(form, answers)
    if sign:
        missing = rules.missing_required(form, answers)
        if missing:
            raise Invalid(
                "Signature impossible : répondez d'abord à "
                + ", ".join(f"« {i.text} »" for i in missing[:5]),
                field=f"answers.{missing[0].link_id}",
            )
        if form.scoring != "none" and score is None:
            raise Invalid("Signature impossible : le score ne peut pas être calculé avec ces réponses.")
    row.answers = dict(answers)
    row.score = score.value if score else None
    row.score_label = score.label if score else None
    row.score_details = score.details if score else None
    now = utcnow()
    row.updated_by = actor.national_id
    row.updated_at = now
    if sign:
        row.status = EvaluationStatus.SIGNEE.value
        row.signed_by = actor.national_id
        row.signed_at = now


async def create_evaluation(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    data: EvaluationCreate,
    forms_dir: Path | None,
) -> EvaluationOut:
    """Start an evaluation of ``patient_id`` with ``data.form_id`` (a draft, or signed at once)."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    forms = _forms(forms_dir)
    form = forms.get(data.form_id)
    if form is None:
        raise _unknown_form(data.form_id)
    answers = rules.check_answers(form, data.answers)
    now = utcnow()
    row = Evaluation(
        id=uuid.uuid4(),
        patient_id=patient_id,
        form_id=form.id,
        form_version=form.version,
        form_title=form.title,
        status=EvaluationStatus.BROUILLON.value,
        created_by=actor.national_id,
        created_at=now,
    )
    _apply(row, form, answers, sign=data.sign, actor=actor)
    session.add(row)
    await _record(session, actor, "evaluation.signed" if data.sign else "evaluation.created", row)
    await session.commit()
    logger.info("evaluation %s (%s) created by %s", row.id, form.id, actor.national_id)
    return (await _outs(session, [row]))[0]


async def _load(session: AsyncSession, patient_id: PatientId, evaluation_id: EvaluationId) -> Evaluation:
    row = await session.get(Evaluation, evaluation_id)
    if row is None or row.patient_id != patient_id:
        raise _not_found()
    return row


async def update_evaluation(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    evaluation_id: EvaluationId,
    data: EvaluationUpdate,
    forms_dir: Path | None,
) -> EvaluationOut:
    """Save answers into a draft (autosave) and optionally sign it; a signed one is frozen (409)."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    row = await _load(session, patient_id, evaluation_id)
    if row.version != data.version:
        raise _stale()
    if row.status == EvaluationStatus.SIGNEE:
        raise Conflict(
            "Cette évaluation est signée et ne peut plus changer : remplissez une nouvelle évaluation.",
            errcode=ErrCode.ALREADY_SIGNED,
        )
    forms = _forms(forms_dir)
    form = forms.get(row.form_id)
    if form is None:
        raise _unknown_form(row.form_id)
    merged: dict[str, Any] = dict(row.answers)
    for link_id in data.answers:
        merged.pop(link_id, None)
    merged.update(rules.check_answers(form, data.answers))
    _apply(row, form, merged, sign=data.sign, actor=actor)
    await _record(session, actor, "evaluation.signed" if data.sign else "evaluation.updated", row)
    await commit_or_conflict(session, on_stale=_stale())
    return (await _outs(session, [row]))[0]


# --- reading ------------------------------------------------------------------------------------


async def get_evaluation(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    evaluation_id: EvaluationId,
) -> EvaluationOut:
    """One evaluation of the patient. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    row = await _load(session, patient_id, evaluation_id)
    await _record(session, actor, "evaluation.read", row)
    await session.commit()
    return (await _outs(session, [row]))[0]


def _position(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        at, last = datetime.fromisoformat(str(position["t"])), uuid.UUID(str(position["i"]))
    except (KeyError, ValueError) as exc:
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor") from exc
    if at.tzinfo is None:  # every cursor we give carries its zone (UTC)
        raise Invalid("Curseur de page illisible : reprenez la première page.", field="cursor")
    return at, last


async def list_evaluations(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    form_id: str | None = None,
    status: EvaluationStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[EvaluationOut]:
    """The patient's evaluations, newest first (keyset on creation time and id). Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    stmt = select(Evaluation).where(Evaluation.patient_id == patient_id)
    if form_id is not None:
        stmt = stmt.where(Evaluation.form_id == form_id)
    if status is not None:
        stmt = stmt.where(Evaluation.status == status.value)
    after = _position(cursor)
    if after is not None:
        stmt = stmt.where(tuple_(Evaluation.created_at, Evaluation.id) < tuple_(after[0], after[1]))
    rows = (
        await session.scalars(
            stmt.order_by(Evaluation.created_at.desc(), Evaluation.id.desc()).limit(limit + 1)
        )
    ).all()
    page = list(rows[:limit])
    await audit.record(
        session=session,
        actor=actor,
        action="evaluation.list",
        object_type="evaluation",
        patient_id=patient_id,
    )
    await session.commit()
    last = page[-1] if len(rows) > limit else None
    next_cursor = encode_cursor({"t": last.created_at.isoformat(), "i": str(last.id)}) if last else None
    return Page(items=await _outs(session, page), next_cursor=next_cursor)


async def score_history(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    form_id: str | None = None,
) -> Page[ScorePointOut]:
    """Every signed, scored evaluation of the patient, oldest first, with the change since the previous
    one of the same form: how the situation evolves. Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    stmt = select(Evaluation).where(
        Evaluation.patient_id == patient_id,
        Evaluation.status == EvaluationStatus.SIGNEE.value,
        Evaluation.score.is_not(None),
    )
    if form_id is not None:
        stmt = stmt.where(Evaluation.form_id == form_id)
    rows = (await session.scalars(stmt.order_by(Evaluation.signed_at, Evaluation.id))).all()
    await audit.record(
        session=session,
        actor=actor,
        action="evaluation.scores",
        object_type="evaluation",
        patient_id=patient_id,
    )
    await session.commit()
    previous: dict[str, float] = {}
    points = []
    for r in rows:
        if r.score is None or r.signed_at is None or r.score_label is None:
            continue
        before = previous.get(r.form_id)
        points.append(
            ScorePointOut(
                evaluation_id=EvaluationId(r.id),
                form_id=r.form_id,
                form_title=r.form_title,
                signed_at=r.signed_at,
                score=r.score,
                score_label=r.score_label,
                change=None if before is None else r.score - before,
            )
        )
        previous[r.form_id] = r.score
    return Page(items=points, next_cursor=None)


# --- FHIR ---------------------------------------------------------------------------------------


def _answer(value: Any, item: form_files.ItemDef) -> QuestionnaireResponseItemAnswer:
    if item.type == "boolean":
        return QuestionnaireResponseItemAnswer(valueBoolean=value)
    if item.type == "integer":
        return QuestionnaireResponseItemAnswer(valueInteger=value)
    if item.type == "decimal":
        return QuestionnaireResponseItemAnswer(valueDecimal=value)
    if item.type == "date":
        return QuestionnaireResponseItemAnswer(valueDate=value)
    if item.type == "choice":
        option = next(o for o in item.options if o.code == value)
        return QuestionnaireResponseItemAnswer(
            valueCoding=Coding(system=option.system, code=option.code, display=option.display)
        )
    return QuestionnaireResponseItemAnswer(valueString=value)


def _response_items(form: FormDef, answers: Mapping[str, Any]) -> list[QuestionnaireResponseItem]:
    """The answers nested as the Questionnaire's groups are (one level)."""
    order: list[str | QuestionnaireResponseItem] = []  # a top-level answer, or a section's linkId
    sections: dict[str, list[QuestionnaireResponseItem]] = {}
    texts: dict[str, str | None] = {}
    for item in form.items:
        if item.link_id not in answers:
            continue
        node = QuestionnaireResponseItem(
            linkId=item.link_id, text=item.text, answer=[_answer(answers[item.link_id], item)]
        )
        if item.section is None:
            order.append(node)
            continue
        if item.section not in sections:
            sections[item.section] = []
            texts[item.section] = item.section_text
            order.append(item.section)
        sections[item.section].append(node)
    return [
        QuestionnaireResponseItem(linkId=entry, text=texts[entry], item=sections[entry])
        if isinstance(entry, str)
        else entry
        for entry in order
    ]


async def export_response(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    evaluation_id: EvaluationId,
    forms_dir: Path | None,
) -> dict[str, Any]:
    """The evaluation as a FHIR R4B QuestionnaireResponse (``completed`` once signed). Audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    row = await _load(session, patient_id, evaluation_id)
    form = _forms(forms_dir).get(row.form_id)
    if form is None:
        raise _unknown_form(row.form_id)
    author = row.signed_by or row.updated_by
    extensions = []
    if row.score is not None:
        extensions.append(
            Extension(
                url=SCORE_URL,
                extension=[
                    Extension(url="value", valueDecimal=row.score),
                    Extension(url="label", valueString=row.score_label),
                ],
            )
        )
    response = QuestionnaireResponse(
        id=str(row.id),
        questionnaire=f"{form.url}|{row.form_version}" if form.url else None,
        status="completed" if row.status == EvaluationStatus.SIGNEE else "in-progress",
        subject=Reference(reference=f"Patient/{row.patient_id}"),
        authored=row.signed_at or row.updated_at,
        author=Reference(identifier=Identifier(system=IDNATPS_SYSTEM, value=author)),
        item=_response_items(form, row.answers) or None,
        extension=extensions or None,
    )
    await _record(session, actor, "evaluation.export", row)
    await session.commit()
    return response.model_dump(mode="json", exclude_none=True)
