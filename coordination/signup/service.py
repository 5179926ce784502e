"""Sign-up requests: submitted on ``/inscription``, decided by administrators (or the auto-approval
rule), activated by a single-use e-mailed link that sets the password (issue 13).

Steps and their guarantees:
- **submit** (anonymous): stored only if the typed name and national id are an active directory
  professional without an account; every mismatch gets the same French sentence (``rules.MISMATCH``),
  so the form tells nothing about who is in the directory. A second request while one is pending
  answers the pending one (no new e-mail, no new row).
- **approve** (administrator, or ``auto``): reserves the Matrix ID and binds it to the professional
  (``directory.reserve_account``), creates a link valid 72 h (only its SHA-256 is stored), e-mails it
  when SMTP is configured, otherwise returns it for the administrator to pass on.
- **refuse** (administrator): with a reason.
- **activate** (the link): the professional must still be active in the directory; the password is
  checked (zxcvbn); Synapse registers the account with it; the link is spent. A crash between the
  registration and the commit leaves the link usable: the next try finds the account registered
  (``M_USER_IN_USE``) and finishes.
Every step is written to the audit trail (identifiers only).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination import vocab
from coordination.audit import service as audit
from coordination.db import utcnow
from coordination.directory import service as directory
from coordination.directory.models import Activity, Person, Structure
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound, Unavailable
from coordination.ids import NationalId, UserId
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.security import Actor
from coordination.settings import Settings
from coordination.signup import mail, rules
from coordination.signup.models import ActivationLink, Administrator, SignupRequest
from coordination.signup.schemas import Activated, Decision, SignupIn, SignupOut
from coordination.synapse_registration import register_with_shared_secret
from coordination.vocab import SignupStatus

logger = logging.getLogger(__name__)

APPLICANT = UserId("inscription")  # the audit's actor before an account exists
AUTO = "auto"
ACTIVATION_PATH = "/activation/"


def _applicant(national_id: str) -> Actor:
    return Actor(
        user_id=APPLICANT, national_id=NationalId(national_id), display_name="", profession_code=None
    )


# --- administrators -------------------------------------------------------------------------------


async def is_administrator(*, session: AsyncSession, actor: Actor) -> bool:
    return await session.get(Administrator, actor.national_id) is not None


async def require_administrator(*, session: AsyncSession, actor: Actor) -> None:
    if not await is_administrator(session=session, actor=actor):
        raise Forbidden(
            "Seuls les administrateurs de la plateforme valident les inscriptions : demandez à "
            "l'exploitant de vous ajouter (azurezo admin add).",
            errcode=ErrCode.FORBIDDEN,
        )


async def add_administrator(*, session: AsyncSession, national_id: str) -> bool:
    """Make an active professional an administrator; False if already one. Commits."""
    national_id = national_id.strip().upper()
    person = await session.get(Person, national_id)
    if person is None or not person.active:
        raise NotFound(
            f"« {national_id} » n'est pas un professionnel actif de l'annuaire : importez l'annuaire "
            "ou vérifiez le numéro.",
            errcode=ErrCode.NOT_IN_DIRECTORY,
        )
    if await session.get(Administrator, national_id) is not None:
        return False
    session.add(Administrator(national_id=national_id))
    await session.commit()
    return True


async def remove_administrator(*, session: AsyncSession, national_id: str) -> bool:
    row = await session.get(Administrator, national_id.strip().upper())
    if row is None:
        return False
    await session.delete(row)
    await session.commit()
    return True


async def list_administrators(*, session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(Administrator.national_id).order_by(Administrator.national_id)))


# --- submit ---------------------------------------------------------------------------------------


async def submit(*, session: AsyncSession, settings: Settings, form: SignupIn) -> SignupOut:
    """Record a request for an account (see the module doc); auto-approve it when the rule says so."""
    national_id = form.national_id.replace(" ", "").upper()
    person = await session.get(Person, national_id)
    if (
        person is None
        or not person.active
        or not rules.names_match(
            typed_family=form.family_name,
            typed_given=form.given_name,
            family_name=person.family_name,
            given_name=person.given_name,
        )
    ):
        logger.info("sign-up refused: no matching active professional")
        raise Invalid(rules.MISMATCH, errcode=ErrCode.SIGNUP_MISMATCH)
    if await directory.bound_user_ids(session=session, national_ids=[national_id]):
        raise Conflict(
            "Vous avez déjà un compte AZUREZO : connectez-vous depuis Element ou le tableau de bord. "
            "Mot de passe perdu : écrivez à l'administrateur.",
            errcode=ErrCode.ALREADY_BOUND,
        )
    structures = await _structures_of(session, national_id)
    if form.structure_id is not None and form.structure_id not in structures:
        raise Invalid(
            "Cette structure n'est pas l'une de vos structures d'exercice dans l'annuaire : choisissez "
            "dans la liste proposée, ou laissez le champ vide.",
            errcode=ErrCode.INVALID,
        )
    pending = (
        await session.scalars(
            select(SignupRequest).where(
                SignupRequest.national_id == national_id,
                SignupRequest.status.in_([SignupStatus.EN_ATTENTE, SignupStatus.VALIDEE]),
            )
        )
    ).first()
    if pending is not None:
        return await _out(session, pending)
    request = SignupRequest(
        national_id=national_id,
        email=str(form.email),
        structure_id=form.structure_id,
        status=SignupStatus.EN_ATTENTE,
    )
    session.add(request)
    await session.flush()
    await audit.record(
        session=session,
        actor=_applicant(national_id),
        action="signup.submitted",
        object_type="signup",
        object_id=request.id,
    )
    await session.commit()
    if rules.auto_approvable(
        email=request.email,
        trusted_domains=settings.signup_trusted_domains,
        structure_emails=_structure_emails(structures, request.structure_id)
        if settings.signup_auto_approve_structure_domain
        else [],
    ):
        decision = await _approve(
            session=session, settings=settings, request=request, decided_by=AUTO, actor=None
        )
        return decision.request
    return await _out(session, request)


async def _structures_of(session: AsyncSession, national_id: str) -> dict[str, tuple[str | None, str | None]]:
    """The person's structures: ``{structure_id: (structure e-mail, activity e-mail)}``."""
    rows = await session.execute(
        select(Activity.structure_id, Structure.email, Activity.email)
        .join(Structure, Structure.structure_id == Activity.structure_id, isouter=True)
        .where(Activity.national_id == national_id, Activity.structure_id.is_not(None))
    )
    return {str(sid): (s_email, a_email) for sid, s_email, a_email in rows}


def _structure_emails(
    structures: dict[str, tuple[str | None, str | None]], chosen: str | None
) -> list[str | None]:
    if chosen is None:
        return []
    return list(structures.get(chosen, (None, None)))


# --- administrators' decisions --------------------------------------------------------------------


async def list_requests(
    *, session: AsyncSession, actor: Actor, status: SignupStatus | None, limit: int, cursor: str | None
) -> Page[SignupOut]:
    """Requests by creation date (oldest pending first), for administrators."""
    await require_administrator(session=session, actor=actor)
    query = select(SignupRequest).order_by(SignupRequest.created_at, SignupRequest.id)
    if status is not None:
        query = query.where(SignupRequest.status == status)
    offset = int((decode_cursor(cursor) or {}).get("o", 0))
    rows = list(await session.scalars(query.offset(offset).limit(limit + 1)))
    items = [await _out(session, row) for row in rows[:limit]]
    await audit.record(session=session, actor=actor, action="signup.listed", object_type="signup")
    await session.commit()
    next_cursor = encode_cursor({"o": offset + limit}) if len(rows) > limit else None
    return Page[SignupOut](items=items, next_cursor=next_cursor)


async def approve(
    *, session: AsyncSession, settings: Settings, actor: Actor, request_id: uuid.UUID
) -> Decision:
    """Approve a pending request (see the module doc); answers the link when it was not e-mailed."""
    await require_administrator(session=session, actor=actor)
    request = await _pending(session, request_id)
    return await _approve(
        session=session, settings=settings, request=request, decided_by=actor.user_id, actor=actor
    )


async def resend(
    *, session: AsyncSession, settings: Settings, actor: Actor, request_id: uuid.UUID
) -> Decision:
    """A new activation link for an approved, not yet activated request (the old ones stop working)."""
    await require_administrator(session=session, actor=actor)
    request = await _get(session, request_id)
    if request.status != SignupStatus.VALIDEE:
        raise Conflict(
            f"Cette demande est « {vocab.parse(SignupStatus, request.status).label} » : "
            "seul un compte validé et pas "
            "encore activé reçoit un nouveau lien.",
            errcode=ErrCode.CONFLICT,
        )
    for link in await session.scalars(
        select(ActivationLink).where(
            ActivationLink.request_id == request.id, ActivationLink.used_at.is_(None)
        )
    ):
        link.used_at = utcnow()
    return await _send_link(session=session, settings=settings, request=request, actor=actor)


async def refuse(*, session: AsyncSession, actor: Actor, request_id: uuid.UUID, reason: str) -> SignupOut:
    await require_administrator(session=session, actor=actor)
    request = await _pending(session, request_id)
    request.status = SignupStatus.REFUSEE
    request.decided_at = utcnow()
    request.decided_by = actor.user_id
    request.refusal_reason = reason
    await audit.record(
        session=session, actor=actor, action="signup.refused", object_type="signup", object_id=request.id
    )
    await session.commit()
    return await _out(session, request)


async def _approve(
    *, session: AsyncSession, settings: Settings, request: SignupRequest, decided_by: str, actor: Actor | None
) -> Decision:
    account = await directory.reserve_account(
        session=session,
        national_id=request.national_id,
        server_name=settings.server_name,
        reserved_localparts=_reserved(settings),
    )
    request.status = SignupStatus.VALIDEE
    request.decided_at = utcnow()
    request.decided_by = decided_by
    request.localpart = account.localpart
    request.user_id = account.user_id
    who = actor or _applicant(request.national_id)
    await audit.record(
        session=session, actor=who, action="signup.approved", object_type="signup", object_id=request.id
    )
    return await _send_link(session=session, settings=settings, request=request, actor=who)


async def _send_link(
    *, session: AsyncSession, settings: Settings, request: SignupRequest, actor: Actor
) -> Decision:
    token, digest = rules.new_token()
    session.add(
        ActivationLink(
            token_sha256=digest, request_id=request.id, expires_at=utcnow() + rules.ACTIVATION_VALIDITY
        )
    )
    await audit.record(
        session=session, actor=actor, action="signup.link_created", object_type="signup", object_id=request.id
    )
    await session.commit()  # the link exists before anyone can receive it
    url = f"{(settings.public_url or '').rstrip('/')}{ACTIVATION_PATH}{token}"
    out = await _out(session, request)
    if settings.smtp_host is None:
        return Decision(request=out, emailed=False, activation_url=url)
    message = mail.activation_message(
        settings=settings,
        to=request.email,
        display_name=out.display_name,
        url=url,
        hours=int(rules.ACTIVATION_VALIDITY.total_seconds() // 3600),
    )
    await mail.send(settings=settings, message=message)
    return Decision(request=out, emailed=True)


def _reserved(settings: Settings) -> list[str]:
    reserved = ["notices"]
    if settings.bot_user_id:
        reserved.append(settings.bot_user_id[1:].split(":", 1)[0])
    return reserved


# --- activation -----------------------------------------------------------------------------------


async def link_owner(*, session: AsyncSession, token: str) -> SignupOut:
    """The request a still-usable link belongs to (the activation page greets the professional)."""
    _link, request = await _usable_link(session, token)
    return await _out(session, request)


async def activate(*, session: AsyncSession, settings: Settings, token: str, password: str) -> Activated:
    """Set the password and register the account (see the module doc)."""
    link, request = await _usable_link(session, token)
    person = await session.get(Person, request.national_id)
    if person is None or not person.active:
        raise Forbidden(
            "Vous n'êtes plus inscrit comme professionnel actif dans l'annuaire : le compte ne peut pas "
            "être activé. Rapprochez-vous de votre ordre ou de l'administrateur.",
            errcode=ErrCode.INACTIVE,
        )
    assert request.localpart is not None
    problem = rules.password_problem(
        password,
        user_inputs=[
            person.family_name,
            person.given_name,
            person.national_id,
            request.localpart,
            request.email,
        ],
    )
    if problem:
        raise Invalid(problem, errcode=ErrCode.WEAK_PASSWORD)
    user_id = await _register(settings=settings, localpart=request.localpart, password=password)
    link.used_at = utcnow()
    request.status = SignupStatus.ACTIVEE
    request.activated_at = utcnow()
    actor = Actor(
        user_id=UserId(user_id),
        national_id=NationalId(person.national_id),
        display_name="",
        profession_code=None,
    )
    await audit.record(
        session=session, actor=actor, action="signup.activated", object_type="signup", object_id=request.id
    )
    await session.commit()
    return Activated(user_id=user_id, homeserver_url=settings.synapse_url)


async def _register(*, settings: Settings, localpart: str, password: str) -> str:
    if not settings.registration_shared_secret:
        raise Unavailable(
            "L'activation des comptes n'est pas configurée sur ce serveur : prévenez l'administrateur.",
            errcode=ErrCode.UNAVAILABLE,
        )
    user_id = f"@{localpart}:{settings.server_name}"
    try:
        async with httpx.AsyncClient() as client:
            resp = await register_with_shared_secret(
                client,
                synapse_url=settings.synapse_url,
                shared_secret=settings.registration_shared_secret,
                localpart=localpart,
                password=password,
            )
    except httpx.HTTPError as exc:
        raise Unavailable(
            "Le serveur de messagerie ne répond pas : votre lien reste valable, réessayez dans "
            "quelques minutes.",
            errcode=ErrCode.UNAVAILABLE,
        ) from exc
    if resp.status_code == 200:
        return str(resp.json()["user_id"])
    if resp.status_code == 400 and resp.json().get("errcode") == "M_USER_IN_USE":
        # Registered by an earlier try that crashed before its commit: finish it. The password
        # typed now is not the account's; say so rather than pretend.
        raise Conflict(
            f"Le compte {user_id} a déjà été créé par une tentative précédente : connectez-vous avec le "
            "mot de passe choisi alors, ou demandez un nouveau lien à l'administrateur.",
            errcode=ErrCode.CONFLICT,
        )
    logger.warning("activation: Synapse refused the registration of %s (HTTP %s)", user_id, resp.status_code)
    raise Unavailable(
        "Le serveur de messagerie a refusé la création du compte : votre lien reste valable ; "
        "réessayez plus tard ou prévenez l'administrateur.",
        errcode=ErrCode.UNAVAILABLE,
    )


async def _usable_link(session: AsyncSession, token: str) -> tuple[ActivationLink, SignupRequest]:
    link = await session.get(ActivationLink, rules.token_digest(token))
    now = datetime.now(UTC)
    if link is None or not rules.link_usable(expires_at=link.expires_at, used_at=link.used_at, now=now):
        raise NotFound(
            "Ce lien d'activation n'est pas (ou plus) valable : il sert une seule fois et expire après "
            "72 heures. Demandez un nouveau lien à l'administrateur.",
            errcode=ErrCode.LINK_EXPIRED,
        )
    request = await session.get(SignupRequest, link.request_id)
    assert request is not None
    return link, request


# --- read models ----------------------------------------------------------------------------------


async def _get(session: AsyncSession, request_id: uuid.UUID) -> SignupRequest:
    request = await session.get(SignupRequest, request_id)
    if request is None:
        raise NotFound("Cette demande d'inscription n'existe pas.", errcode=ErrCode.NOT_FOUND)
    return request


async def _pending(session: AsyncSession, request_id: uuid.UUID) -> SignupRequest:
    request = await _get(session, request_id)
    if request.status != SignupStatus.EN_ATTENTE:
        raise Conflict(
            "Cette demande a déjà été traitée "
            f"(« {vocab.parse(SignupStatus, request.status).label} ») : rechargez la liste.",
            errcode=ErrCode.CONFLICT,
        )
    return request


async def _out(session: AsyncSession, request: SignupRequest) -> SignupOut:
    card = await directory.get_person(session=session, national_id=request.national_id)
    names = await directory.structure_names(
        session=session, structure_ids=[request.structure_id] if request.structure_id else []
    )
    return SignupOut(
        id=request.id,
        national_id=request.national_id,
        display_name=card.display_name,
        profession=card.profession,
        email=request.email,
        structure_id=request.structure_id,
        structure_name=names.get(request.structure_id) if request.structure_id else None,
        status=vocab.parse(SignupStatus, request.status),
        created_at=request.created_at,
        decided_at=request.decided_at,
        decided_by=request.decided_by,
        refusal_reason=request.refusal_reason,
        user_id=request.user_id,
    )
