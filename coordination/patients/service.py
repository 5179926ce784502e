"""Patient dossiers: creation with duplicate warnings, search, reading, updates, sortie.

Every read and write of patient data is recorded in the audit trail in the same transaction.
Access to a dossier is decided by ``coordination.circle.service`` (authorised circle members only);
the search answers only the minimal identity, so anyone may check a patient is already included.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from coordination import patch
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle import service as circle
from coordination.db import utcnow
from coordination.errors import Conflict, ErrCode, Invalid
from coordination.ids import PatientId
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.patients import rules
from coordination.patients.models import Patient
from coordination.patients.schemas import (
    ConsentIn,
    ConsentOut,
    DischargeIn,
    DischargeOut,
    DuplicateCandidate,
    IdentityAttributes,
    IdentityDocumentIn,
    IdentityDocumentOut,
    InsiRetrievalIn,
    InsiRetrievalOut,
    PatientCreate,
    PatientOut,
    PatientSummary,
    PatientUpdate,
    ReactivateIn,
)
from coordination.security import Actor
from coordination.vocab import ConsentMode, DischargeReason, IdentityDocumentType, IdentityStatus, parse

logger = logging.getLogger(__name__)

OLDEST_BIRTH_DATE = date(1890, 1, 1)
# A check recorded "now" by a client whose clock is a little ahead must not be refused.
CLOCK_SKEW = timedelta(minutes=5)
# The fields a PATCH copies as they are (API field names are the column names).
STRICT_TRAITS = ("birth_name", "birth_first_names", "birth_date", "sex", "birth_place_code")
PLAIN_FIELDS = (*STRICT_TRAITS, "used_name", "used_first_name", "address", "phone", "email")


class DuplicateSuspected(Conflict):
    """Likely duplicates of a patient being created; the router answers 409 with the candidates."""

    errcode = ErrCode.DUPLICATE_SUSPECTED

    def __init__(self, message: str, *, candidates: list[DuplicateCandidate]) -> None:
        super().__init__(message)
        self.candidates = candidates


def _stale(read: int, current: int) -> Conflict:
    return Conflict(
        f"Le dossier a été modifié par quelqu'un d'autre depuis votre lecture (version {current}, "
        f"vous aviez la version {read}) : rechargez-le puis refaites votre modification.",
        errcode=ErrCode.STALE_VERSION,
    )


# --- validation ----------------------------------------------------------------------------------


def _check_birth_date(value: date, *, field: str = "birth_date") -> None:
    if value > rules.today():
        raise Invalid("La date de naissance est dans le futur : corrigez-la.", field=field)
    if value < OLDEST_BIRTH_DATE:
        raise Invalid(
            f"Date de naissance invraisemblable (avant le {OLDEST_BIRTH_DATE:%d/%m/%Y}) : corrigez-la.",
            field=field,
        )


def _check_moment(value: datetime | None, *, field: str) -> datetime:
    now = utcnow()
    if value is None:
        return now
    if value > now + CLOCK_SKEW:
        raise Invalid("Cette date est dans le futur : indiquez quand cela a eu lieu.", field=field)
    if value.year < 2000:
        raise Invalid("Cette date est invraisemblable : indiquez quand cela a eu lieu.", field=field)
    return value.astimezone(UTC)


def _checked_ins(value: str | None, *, sex: str) -> str | None:
    if value is None:
        return None
    number = rules.normalise_ins(value)
    problem = rules.ins_problem(number, sex=sex)
    if problem is not None:
        raise Invalid(f"Matricule INS invalide : {problem}.", field="ins_number")
    return number


# --- mapping -------------------------------------------------------------------------------------


def _refresh_derived(patient: Patient) -> None:
    """Recompute what the client never sends: search keys and the identity status."""
    patient.first_birth_first_name = patient.birth_first_names[0]
    patient.search_birth_name = rules.search_key(patient.birth_name)
    patient.search_used_name = rules.search_key(patient.used_name) if patient.used_name else None
    patient.search_first_given_name = rules.search_key(patient.first_birth_first_name)
    status, _forced = rules.identity_status(
        insi_retrieved=patient.insi_retrieved_at is not None,
        document_checked=patient.identity_document_checked_at is not None,
        homonyme=patient.homonyme,
        douteuse=patient.douteuse,
        fictive=patient.fictive,
    )
    patient.identity_status = status


def to_out(patient: Patient) -> PatientOut:
    """The full dossier view of a patient row."""
    status, forced = rules.identity_status(
        insi_retrieved=patient.insi_retrieved_at is not None,
        document_checked=patient.identity_document_checked_at is not None,
        homonyme=patient.homonyme,
        douteuse=patient.douteuse,
        fictive=patient.fictive,
    )
    consent = None
    if patient.consent_given is not None and patient.consent_recorded_at is not None:
        consent = ConsentOut(
            given=patient.consent_given,
            mode=parse(ConsentMode, patient.consent_mode or ConsentMode.ORAL),
            recorded_by=patient.consent_recorded_by or "",
            recorded_at=patient.consent_recorded_at,
        )
    document = None
    if patient.identity_document_checked_at is not None:
        document = IdentityDocumentOut(
            document_type=parse(
                IdentityDocumentType, patient.identity_document_type or IdentityDocumentType.CNI
            ),
            checked_by=patient.identity_document_checked_by or "",
            checked_at=patient.identity_document_checked_at,
        )
    insi = None
    if patient.insi_retrieved_at is not None:
        insi = InsiRetrievalOut(
            retrieved_by=patient.insi_retrieved_by or "", retrieved_at=patient.insi_retrieved_at
        )
    discharge = None
    if patient.status == "sortie" and patient.discharge_date and patient.discharge_reason:
        discharge = DischargeOut(
            reason=parse(DischargeReason, patient.discharge_reason),
            date=patient.discharge_date,
            note=patient.discharge_note,
        )
    ins_kind = None
    if patient.ins_number:
        ins_kind = "NIA" if rules.is_nia(patient.ins_number) else "NIR"
    return PatientOut(
        id=PatientId(patient.id),
        version=patient.version,
        birth_name=patient.birth_name,
        birth_first_names=list(patient.birth_first_names),
        first_birth_first_name=patient.first_birth_first_name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        birth_place_code=patient.birth_place_code,
        used_name=patient.used_name,
        used_first_name=patient.used_first_name,
        address=patient.address,
        phone=patient.phone,
        email=patient.email,
        ins_number=patient.ins_number,
        ins_kind=ins_kind,
        identity_status=status,
        identity_status_forced_by=forced,
        attributes=IdentityAttributes(
            homonyme=patient.homonyme, douteuse=patient.douteuse, fictive=patient.fictive
        ),
        consent=consent,
        identity_document=document,
        insi=insi,
        status=patient.status,
        discharge=discharge,
        created_at=patient.created_at,
        created_by=patient.created_by,
        updated_at=patient.updated_at,
    )


def _summary(patient: Patient, *, is_member: bool) -> PatientSummary:
    return PatientSummary(
        id=PatientId(patient.id),
        birth_name=patient.birth_name,
        first_birth_first_name=patient.first_birth_first_name,
        used_name=patient.used_name,
        used_first_name=patient.used_first_name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        identity_status=parse(IdentityStatus, patient.identity_status),
        status=patient.status,
        is_member=is_member,
    )


def _apply_consent(patient: Patient, consent: ConsentIn | None, actor: Actor) -> None:
    if consent is None:
        patient.consent_given = patient.consent_mode = None
        patient.consent_recorded_by = patient.consent_recorded_at = None
        return
    patient.consent_given = consent.given
    patient.consent_mode = consent.mode
    patient.consent_recorded_by = actor.national_id
    patient.consent_recorded_at = _check_moment(consent.recorded_at, field="consent.recorded_at")


def _apply_document(patient: Patient, document: IdentityDocumentIn | None, actor: Actor) -> None:
    if document is None:
        patient.identity_document_type = patient.identity_document_checked_by = None
        patient.identity_document_checked_at = None
        return
    patient.identity_document_type = document.document_type
    patient.identity_document_checked_by = actor.national_id
    patient.identity_document_checked_at = _check_moment(
        document.checked_at, field="identity_document.checked_at"
    )


def _apply_insi(patient: Patient, insi: InsiRetrievalIn | None, actor: Actor) -> None:
    if insi is None:
        patient.insi_retrieved_by = None
        patient.insi_retrieved_at = None
        return
    patient.insi_retrieved_by = actor.national_id
    patient.insi_retrieved_at = _check_moment(insi.retrieved_at, field="insi.retrieved_at")


# --- duplicates ----------------------------------------------------------------------------------


async def _duplicate_candidates(
    session: AsyncSession,
    *,
    birth_name: str,
    first_given_name: str,
    birth_date: date,
    sex: str,
    birth_place_code: str,
    ins_number: str | None,
    excluding: uuid.UUID | None = None,
) -> list[tuple[Patient, str]]:
    """Patients that may be the same person: same INS, same strict traits, or homonyms."""
    same_traits = and_(
        Patient.search_birth_name == rules.search_key(birth_name),
        Patient.birth_date == birth_date,
        Patient.search_first_given_name == rules.search_key(first_given_name),
    )
    condition = or_(same_traits, Patient.ins_number == ins_number) if ins_number else same_traits
    stmt = select(Patient).where(condition).limit(20)
    if excluding is not None:
        stmt = stmt.where(Patient.id != excluding)
    found: list[tuple[Patient, str]] = []
    for p in await session.scalars(stmt):
        if ins_number and p.ins_number == ins_number:
            match = "meme_ins"
        elif p.sex == sex and p.birth_place_code == birth_place_code:
            match = "identique"
        else:
            match = "homonyme"
        found.append((p, match))
    return found


async def _candidates_out(
    session: AsyncSession, actor: Actor, found: Sequence[tuple[Patient, str]]
) -> list[DuplicateCandidate]:
    members = await circle_access.authorised_patient_ids(
        session=session, actor=actor, patient_ids=[p.id for p, _ in found]
    )
    return [
        DuplicateCandidate(
            **_summary(p, is_member=p.id in members).model_dump(),
            match=match,
        )
        for p, match in found
    ]


# --- creating ------------------------------------------------------------------------------------


# How many times a creation that collided with a concurrent one is checked again (each retry sees the
# rows the others committed, so the second attempt normally answers 409 with them as candidates).
CREATE_ATTEMPTS = 5


async def create_patient(*, session: AsyncSession, actor: Actor, data: PatientCreate) -> PatientOut:
    """Create a dossier; the creator becomes its first authorised circle member.

    Likely duplicates (same INS; same five strict traits; or homonyms: same birth name, first birth
    first name and birth date) raise ``DuplicateSuspected`` (409 with the candidates' minimal
    identity) unless ``confirm_duplicate`` is set; a confirmed creation gets the ``homonyme``
    attribute and the next ``homonym_rank``, and the existing candidates get the attribute too. The
    same INS number is never confirmable: an INS identifies one person.

    Concurrency (issue 6, item 3): the check is not trusted alone. The database refuses a second row
    with the same identity key and rank (``uq_patients_identity``) or INS number, so of concurrent
    creations that all saw no candidate, one commits and the others fail to insert; those roll back
    and check again, and now get their 409 with the committed dossier as candidate. Never a 500.
    """
    _check_birth_date(data.birth_date)
    ins_number = _checked_ins(data.ins_number, sex=data.sex)
    key = (rules.search_key(data.birth_name), rules.search_key(data.birth_first_names[0]), data.birth_date)
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            async with _identity_serialised(session, key):
                return await _create_once(session, actor, data, ins_number)
        except (IntegrityError, StaleDataError):
            await session.rollback()
            logger.info(
                "patient creation by %s raced a concurrent one (attempt %d)", actor.national_id, attempt
            )
    raise Conflict(
        "Trop de créations simultanées de dossiers pour cette identité : patientez quelques secondes "
        "puis réessayez (une recherche montrera peut-être le dossier déjà créé).",
        errcode=ErrCode.CONFLICT,
    )


async def _refuse_duplicates(
    session: AsyncSession, actor: Actor, found: list[tuple[Patient, str]], *, confirmed: bool
) -> None:
    """Raise ``DuplicateSuspected`` (after auditing who saw which candidates) unless the creation may go
    on: no candidate, or confirmed homonyms without the same INS."""
    same_ins = [f for f in found if f[1] == "meme_ins"]
    if not found or (confirmed and not same_ins):
        return
    candidates = await _candidates_out(session, actor, same_ins or found)
    await audit.record_many(
        session=session,
        actor=actor,
        action="patient.duplicate_candidate",
        object_type="patient",
        patient_ids=[c.id for c in candidates],
    )
    await session.commit()
    if same_ins:
        raise DuplicateSuspected(
            "Un patient porte déjà ce matricule INS : ouvrez son dossier (demandez à un membre "
            "de son cercle de vous y ajouter) au lieu d'en créer un second.",
            candidates=candidates,
        )
    raise DuplicateSuspected(
        "Des patients aux traits d'identité proches existent déjà : vérifiez qu'il ne s'agit "
        "pas de la même personne. S'il s'agit bien d'une autre personne, renvoyez la demande "
        "avec « confirm_duplicate » à vrai ; le dossier portera l'attribut « homonyme ».",
        candidates=candidates,
    )


def _identity_key(patient: Patient) -> tuple[str, str, date]:
    """What ``uq_patients_identity`` compares (with the rank): normalised birth name, normalised first
    birth first name, birth date."""
    return (patient.search_birth_name, patient.search_first_given_name, patient.birth_date)


# SQLite: creations of one identity key wait for each other inside this process (a SQLite database is
# served by one service process); the counts let the locks of finished keys go.
_IDENTITY_LOCKS: dict[tuple[str, str, date], asyncio.Lock] = {}
_IDENTITY_WAITERS: dict[tuple[str, str, date], int] = {}


@asynccontextmanager
async def _identity_serialised(session: AsyncSession, key: tuple[str, str, date]) -> AsyncIterator[None]:
    """Queue creations of one identity key behind each other, so confirmed homonyms get their ranks
    without a storm of retries: a transaction-scoped advisory lock on PostgreSQL (every process), a
    per-key lock in this process on SQLite. ``uq_patients_identity`` stays the guarantee on both."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"patient-identity:{key[0]}|{key[1]}|{key[2].isoformat()}"},
        )
        yield
        return
    lock = _IDENTITY_LOCKS.setdefault(key, asyncio.Lock())
    _IDENTITY_WAITERS[key] = _IDENTITY_WAITERS.get(key, 0) + 1
    try:
        async with lock:
            yield
    finally:
        _IDENTITY_WAITERS[key] -= 1
        if _IDENTITY_WAITERS[key] == 0:
            del _IDENTITY_WAITERS[key], _IDENTITY_LOCKS[key]


async def _next_homonym_rank(session: AsyncSession, patient: Patient) -> int:
    """0 when no other dossier has the patient's identity key, else one more than the highest rank."""
    highest = await session.scalar(
        select(func.max(Patient.homonym_rank)).where(
            Patient.search_birth_name == patient.search_birth_name,
            Patient.search_first_given_name == patient.search_first_given_name,
            Patient.birth_date == patient.birth_date,
            Patient.id != patient.id,
        )
    )
    return 0 if highest is None else highest + 1


async def _flag_homonyms(
    session: AsyncSession, actor: Actor, found: list[tuple[Patient, str]], now: datetime
) -> None:
    """Identity vigilance: a homonymy concerns both identities, so the existing dossiers get the
    attribute too (which keeps them "provisoire" until someone resolves it), each change traced."""
    for existing, _match in found:
        if not existing.homonyme:
            existing.homonyme = True
            existing.updated_at = now
            _refresh_derived(existing)
            await audit.record(
                session=session,
                actor=actor,
                action="patient.homonym_flagged",
                object_type="patient",
                object_id=existing.id,
                patient_id=existing.id,
            )


async def _create_once(
    session: AsyncSession, actor: Actor, data: PatientCreate, ins_number: str | None
) -> PatientOut:
    """One attempt of ``create_patient``; ``IntegrityError`` when a concurrent creation won."""
    found = await _duplicate_candidates(
        session,
        birth_name=data.birth_name,
        first_given_name=data.birth_first_names[0],
        birth_date=data.birth_date,
        sex=data.sex,
        birth_place_code=data.birth_place_code,
        ins_number=ins_number,
    )
    await _refuse_duplicates(session, actor, found, confirmed=data.confirm_duplicate)
    now = utcnow()
    patient = Patient(
        id=uuid.uuid4(),
        birth_name=data.birth_name,
        birth_first_names=list(data.birth_first_names),
        birth_date=data.birth_date,
        sex=data.sex,
        birth_place_code=data.birth_place_code,
        used_name=data.used_name,
        used_first_name=data.used_first_name,
        address=data.address,
        phone=data.phone,
        email=data.email,
        ins_number=ins_number,
        homonyme=data.attributes.homonyme or bool(found),
        douteuse=data.attributes.douteuse,
        fictive=data.attributes.fictive,
        status="active",
        created_at=now,
        created_by=actor.national_id,
        updated_at=now,
    )
    _apply_consent(patient, data.consent, actor)
    _apply_document(patient, data.identity_document, actor)
    _apply_insi(patient, data.insi, actor)
    _refresh_derived(patient)
    patient.homonym_rank = await _next_homonym_rank(session, patient) if found else 0
    session.add(patient)
    await session.flush()  # the unique constraints speak here when a concurrent creation won
    await _flag_homonyms(session, actor, found, now)
    circle.add_creator(session=session, actor=actor, patient_id=PatientId(patient.id))
    await audit.record(
        session=session,
        actor=actor,
        action="patient.created",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    await session.commit()
    logger.info("patient %s created by %s", patient.id, actor.national_id)
    return to_out(patient)


async def _commit(session: AsyncSession) -> None:
    """Commit; a concurrent write of the same INS number or row turns into a French 409."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if "ins_number" in str(exc.orig):
            raise Conflict(
                "Un patient porte déjà ce matricule INS : recherchez son dossier au lieu d'en créer "
                "ou d'en modifier un autre.",
                errcode=ErrCode.INS_EXISTS,
            ) from exc
        raise Conflict(
            "Un autre dossier a pris les mêmes traits d'identité au même moment : rechargez le dossier "
            "puis refaites votre modification.",
            errcode=ErrCode.STALE_VERSION,
        ) from exc
    except StaleDataError as exc:
        await session.rollback()
        raise Conflict(
            "Le dossier a été modifié par quelqu'un d'autre au même moment : rechargez-le puis "
            "refaites votre modification.",
            errcode=ErrCode.STALE_VERSION,
        ) from exc


# --- reading -------------------------------------------------------------------------------------


async def get_patient(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> PatientOut:
    """The full dossier (authorised members only); the read is audited."""
    patient = await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    await audit.record(
        session=session,
        actor=actor,
        action="patient.read",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    out = to_out(patient)
    await session.commit()
    return out


SEARCH_MIN_LETTERS = 3


SEARCH_MAX_OFFSET = 200  # the search finds one patient: past this, type more letters or the birth date


async def _search_hits(
    session: AsyncSession, *, key: str, birth_date: date | None, count: int
) -> list[tuple[str, Patient]]:
    """The first ``count`` patients whose birth or used name key starts with ``key``, in order.

    One ordered range scan per indexed name column, each stopping after ``count`` rows; the two are
    merged here. (An OR of both ranges would sort every match before the LIMIT, and a LIKE would skip
    the index on SQLite and on PostgreSQL outside the "C" collation.)"""
    upper = rules.prefix_upper_bound(key)
    found: dict[uuid.UUID, tuple[str, Patient]] = {}
    for column in (Patient.search_birth_name, Patient.search_used_name):
        stmt = select(Patient).where(column >= key, column < upper)
        if birth_date is not None:
            stmt = stmt.where(Patient.birth_date == birth_date)
        stmt = stmt.order_by(column, Patient.birth_date, Patient.id).limit(count)
        for p in await session.scalars(stmt):
            matched = getattr(p, column.key) or ""
            if p.id not in found or matched < found[p.id][0]:
                found[p.id] = (matched, p)
    return sorted(found.values(), key=lambda hit: (hit[0], hit[1].birth_date, hit[1].id))


def _offset(cursor: str | None) -> int:
    position = decode_cursor(cursor) or {}
    offset = position.get("o", 0)
    if not isinstance(offset, int) or not 0 <= offset <= SEARCH_MAX_OFFSET:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente.",
            field="cursor",
        )
    return offset


async def search_patients(
    *,
    session: AsyncSession,
    actor: Actor,
    q: str,
    birth_date: date | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page[PatientSummary]:
    """Patients whose birth or used name starts with ``q`` (case, accents, separators ignored).

    Answers only the minimal identity plus whether the caller is an authorised member, so any
    professional can check a patient is already included; every hit is audited. Pages go up to
    ``SEARCH_MAX_OFFSET`` results: past that, ``next_cursor`` is null and more letters are needed.
    """
    key = rules.search_key(q)
    if len(key) < SEARCH_MIN_LETTERS:
        raise Invalid(
            f"Tapez au moins {SEARCH_MIN_LETTERS} lettres du nom de naissance ou du nom utilisé.",
            field="q",
        )
    offset = _offset(cursor)
    ordered = await _search_hits(session, key=key, birth_date=birth_date, count=offset + limit + 1)
    rows = [p for _, p in ordered[offset : offset + limit]]
    more = len(ordered) > offset + limit and offset + limit <= SEARCH_MAX_OFFSET
    members = await circle_access.authorised_patient_ids(
        session=session, actor=actor, patient_ids=[p.id for p in rows]
    )
    await audit.record_many(
        session=session,
        actor=actor,
        action="patient.search_hit",
        object_type="patient",
        patient_ids=[p.id for p in rows],
    )
    await session.commit()
    return Page[PatientSummary](
        items=[_summary(p, is_member=p.id in members) for p in rows],
        next_cursor=encode_cursor({"o": offset + limit}) if more else None,
    )


def _after_name(cursor: str | None) -> ColumnElement[bool] | None:
    """Keyset condition of "my patients" after ``cursor`` (ordered by birth-name key, then id)."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        name, last = str(position["n"]), uuid.UUID(str(position["i"]))
    except (KeyError, ValueError) as exc:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente.",
            field="cursor",
        ) from exc
    return or_(Patient.search_birth_name > name, and_(Patient.search_birth_name == name, Patient.id > last))


async def my_patients(
    *,
    session: AsyncSession,
    actor: Actor,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[PatientSummary]:
    """Patients whose circle authorises the caller (directly or through their structure), by name."""
    stmt = select(Patient).where(Patient.id.in_(circle_access.authorised_patients_subquery(actor)))
    if status is not None:
        stmt = stmt.where(Patient.status == status)
    after = _after_name(cursor)
    if after is not None:
        stmt = stmt.where(after)
    stmt = stmt.order_by(Patient.search_birth_name, Patient.id).limit(limit + 1)
    rows = list(await session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    await audit.record_many(
        session=session,
        actor=actor,
        action="patient.listed",
        object_type="patient",
        patient_ids=[p.id for p in rows],
    )
    await session.commit()
    return Page[PatientSummary](
        items=[_summary(p, is_member=True) for p in rows],
        next_cursor=(
            encode_cursor({"n": rows[-1].search_birth_name, "i": str(rows[-1].id)}) if more and rows else None
        ),
    )


# --- changing ------------------------------------------------------------------------------------


async def _for_update(session: AsyncSession, actor: Actor, patient_id: uuid.UUID, version: int) -> Patient:
    patient = await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    if patient.version != version:
        raise _stale(version, patient.version)
    return patient


def _apply_fields(patient: Patient, changed: dict[str, Any], actor: Actor) -> None:
    """Copy the plain fields sent; a changed strict trait withdraws the document check and the INSi
    retrieval (the new traits have not been checked, RNIV)."""
    for name in STRICT_TRAITS:
        if name in changed and changed[name] is None:
            raise Invalid("Ce trait strict d'identité ne peut pas être effacé.", field=name)
    traits_changed = any(
        name in changed and changed[name] != getattr(patient, name) for name in STRICT_TRAITS
    )
    patch.apply(patient, {name: changed[name] for name in PLAIN_FIELDS if name in changed})
    if "birth_date" in changed:
        _check_birth_date(patient.birth_date)
    if traits_changed:
        _apply_document(patient, None, actor)
        _apply_insi(patient, None, actor)


async def _apply_identity(
    session: AsyncSession, patient: Patient, change: PatientUpdate, actor: Actor
) -> None:
    """INS number, consent, checks and attributes sent in ``change`` (checks sent are kept even when
    a trait changed in the same request)."""
    sent = patch.changes(change).keys()
    if "ins_number" in sent or "sex" in sent:
        raw = change.ins_number if "ins_number" in sent else patient.ins_number
        patient.ins_number = _checked_ins(raw, sex=patient.sex)
    if "consent" in sent:
        _apply_consent(patient, change.consent, actor)
    if "identity_document" in sent:
        _apply_document(patient, change.identity_document, actor)
    if "insi" in sent:
        _apply_insi(patient, change.insi, actor)
    if "attributes" in sent:
        attributes = change.attributes or IdentityAttributes()
        patient.homonyme = attributes.homonyme
        patient.douteuse = attributes.douteuse
        patient.fictive = attributes.fictive
    if (
        "ins_number" in sent
        and patient.ins_number
        and await session.scalar(
            select(Patient.id).where(Patient.ins_number == patient.ins_number, Patient.id != patient.id)
        )
    ):
        raise Conflict(
            "Un autre patient porte déjà ce matricule INS : vérifiez le numéro, ou signalez le "
            "doublon à la cellule d'identitovigilance.",
            errcode=ErrCode.INS_EXISTS,
        )


async def update_patient(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, change: PatientUpdate
) -> PatientOut:
    """Apply a partial change (``coordination.patch``: only the fields sent; ``null`` clears an
    optional one); authorised members only, audited, optimistic concurrency.

    A changed strict trait withdraws the ID-document check and the INSi retrieval: the new traits
    have not been checked (RNIV). Checks sent in the same request are kept. New traits that are those
    of another dossier take the next homonym rank and the ``homonyme`` attribute.
    """
    patient = await _for_update(session, actor, patient_id, change.version)
    key_before = _identity_key(patient)
    _apply_fields(patient, patch.changes(change), actor)
    await _apply_identity(session, patient, change, actor)
    _refresh_derived(patient)
    if _identity_key(patient) != key_before:
        patient.homonym_rank = await _next_homonym_rank(session, patient)
        if patient.homonym_rank > 0:  # the new traits are those of another dossier: identity vigilance
            patient.homonyme = True
            _refresh_derived(patient)
    patient.updated_at = utcnow()
    await audit.record(
        session=session,
        actor=actor,
        action="patient.updated",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    await _commit(session)
    return to_out(patient)


async def discharge_patient(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, data: DischargeIn
) -> PatientOut:
    """Record the patient's "sortie" (reason, date); the dossier stays readable by its circle."""
    patient = await _for_update(session, actor, patient_id, data.version)
    if patient.status == "sortie":
        raise Conflict(
            "Ce patient est déjà sorti du dispositif : réactivez-le d'abord si besoin.",
            errcode=ErrCode.ALREADY_DISCHARGED,
        )
    when = data.date or rules.today()
    if when > rules.today():
        raise Invalid("La date de sortie est dans le futur : indiquez la date effective.", field="date")
    if when < patient.birth_date:
        raise Invalid("La date de sortie précède la naissance : corrigez-la.", field="date")
    if data.reason == "autre" and not data.note:
        raise Invalid("Précisez le motif de sortie « autre » dans la note.", field="note")
    patient.status = "sortie"
    patient.discharge_reason = data.reason
    patient.discharge_date = when
    patient.discharge_note = data.note
    patient.updated_at = utcnow()
    await audit.record(
        session=session,
        actor=actor,
        action="patient.discharged",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    await _commit(session)
    return to_out(patient)


async def reactivate_patient(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, data: ReactivateIn
) -> PatientOut:
    """Bring a patient back into coordination after a "sortie"."""
    patient = await _for_update(session, actor, patient_id, data.version)
    if patient.status == "active":
        raise Conflict("Ce patient est déjà actif : rien à réactiver.", errcode=ErrCode.ALREADY_ACTIVE)
    patient.status = "active"
    patient.discharge_reason = None
    patient.discharge_date = None
    patient.discharge_note = None
    patient.updated_at = utcnow()
    await audit.record(
        session=session,
        actor=actor,
        action="patient.reactivated",
        object_type="patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    await _commit(session)
    return to_out(patient)
