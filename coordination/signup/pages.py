"""Pages of sign-up: the public request form, the activation link, and the administrators' list.

The public pages live under ``/app`` (``/inscription`` and ``/activation/…`` redirect there), so the
dashboard's security headers (strict CSP, no framing, no caching) and French error pages apply. With
no session yet, the anti-forgery token is a double-submit cookie, as on the sign-in page. Each client
address (and each activation link) has a budget (``throttle.LIMITS``): 429 with ``Retry-After`` past it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from coordination import vocab
from coordination.db import SessionDep
from coordination.errors import ServiceError
from coordination.signup import service
from coordination.signup.schemas import SignupIn
from coordination.signup.throttle import Throttle
from coordination.text import Paragraph500
from coordination.validation import french_validation_message
from coordination.vocab import SignupStatus
from coordination.web.deps import CSRF_FIELD, FormActor, PageActor, check_csrf, check_origin, flash
from coordination.web.templating import render, render_error

router = APIRouter(include_in_schema=False)

FORM_COOKIE = "azurezo_inscription"
SIGNUP_PAGE = "/app/inscription"
ACTIVATION_PAGE = "/app/activation"
ADMIN_PAGE = "/app/admin/inscriptions"
_LABELS = {
    "family_name": "Nom de famille",
    "given_name": "Prénom",
    "national_id": "Numéro RPPS ou ADELI",
    "email": "Adresse e-mail professionnelle",
    "structure_id": "Structure",
}
THROTTLE = Throttle()
_REASON: TypeAdapter[str] = TypeAdapter(Paragraph500)
_TOO_MANY = "Trop de tentatives depuis votre connexion : réessayez dans {minutes} minute(s)."


def _client(request: Request) -> str:
    return request.client.host if request.client else "inconnu"


def _throttled(request: Request, kind: str, key: str) -> Response | None:
    """The French 429 page when ``key`` has spent its budget of ``kind``, else None (and one hit)."""
    if THROTTLE.allow(kind, key):
        return None
    wait = THROTTLE.retry_after(kind, key)
    response = render_error(request, status_code=429, message=_TOO_MANY.format(minutes=max(1, wait // 60)))
    response.headers["Retry-After"] = str(wait)
    return response


def _with_form_cookie(
    request: Request, template: str, context: dict[str, object], status_code: int = 200
) -> Response:
    token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, template, {**context, "form_token": token}, status_code=status_code)
    secure = request.url.scheme == "https"
    response.set_cookie(
        FORM_COOKIE, token, httponly=True, secure=secure, samesite="lax", path="/app", max_age=3600
    )
    return response


def _form_context(
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    error: str | None = None,
) -> dict[str, object]:
    return {"values": values or {}, "errors": errors or {}, "error": error, "labels": _LABELS}


def _check_form(request: Request, sent: str) -> None:
    check_origin(request)
    check_csrf(request.cookies.get(FORM_COOKIE, ""), sent)


# --- public: the request for an account -----------------------------------------------------------


@router.get("/inscription")
@router.get("/activation/{token}")
async def short_addresses(request: Request) -> RedirectResponse:
    """The addresses people type or receive: the pages themselves live under ``/app``."""
    return RedirectResponse(f"/app{request.url.path}", status_code=302)


@router.get(SIGNUP_PAGE)
async def signup_form(request: Request) -> Response:
    return _with_form_cookie(request, "signup/inscription.html", _form_context())


@router.post(SIGNUP_PAGE)
async def signup_submit(
    request: Request,
    db: SessionDep,
    family_name: Annotated[str, Form(max_length=200)] = "",
    given_name: Annotated[str, Form(max_length=200)] = "",
    national_id: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    structure_id: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
) -> Response:
    _check_form(request, csrf_token)
    if (refused := _throttled(request, "submit", _client(request))) is not None:
        return refused
    values = {
        "family_name": family_name,
        "given_name": given_name,
        "national_id": national_id,
        "email": email,
        "structure_id": structure_id,
    }
    try:
        form = SignupIn.model_validate({**values, "structure_id": structure_id.strip() or None})
    except ValidationError as exc:
        errors = {str(e["loc"][0]): french_validation_message(dict(e)) for e in exc.errors()}
        invalid = _form_context(values=values, errors=errors)
        return _with_form_cookie(request, "signup/inscription.html", invalid, status_code=422)
    try:
        outcome = await service.submit(session=db, settings=request.app.state.settings, form=form)
    except ServiceError as exc:
        context = _form_context(values=values, error=exc.message)
        return _with_form_cookie(request, "signup/inscription.html", context, status_code=exc.status_code)
    return render(request, "signup/inscription_ok.html", {"approved": outcome.status is SignupStatus.VALIDEE})


# --- public: the activation link ------------------------------------------------------------------


@router.get(ACTIVATION_PAGE + "/{token}")
async def activation_form(request: Request, db: SessionDep, token: str) -> Response:
    try:
        owner = await service.link_owner(session=db, token=token)
    except ServiceError as exc:
        return render_error(request, status_code=exc.status_code, message=exc.message)
    return _with_form_cookie(
        request, "signup/activation.html", {"owner": owner, "token": token, "error": None}
    )


@router.post(ACTIVATION_PAGE + "/{token}")
async def activation_submit(
    request: Request,
    db: SessionDep,
    token: str,
    password: Annotated[str, Form(max_length=1024)] = "",
    confirmation: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
) -> Response:
    _check_form(request, csrf_token)
    for kind, key in (("activation", _client(request)), ("activation_link", token[:64])):
        if (refused := _throttled(request, kind, key)) is not None:
            return refused
    try:
        owner = await service.link_owner(session=db, token=token)
    except ServiceError as exc:
        return render_error(request, status_code=exc.status_code, message=exc.message)
    context: dict[str, object] = {"owner": owner, "token": token, "error": None}
    if password != confirmation:
        context["error"] = (
            "Les deux saisies du mot de passe diffèrent : saisissez-le deux fois à l'identique."
        )
        return _with_form_cookie(request, "signup/activation.html", context, status_code=422)
    try:
        done = await service.activate(
            session=db, settings=request.app.state.settings, token=token, password=password
        )
    except ServiceError as exc:
        context["error"] = exc.message
        return _with_form_cookie(request, "signup/activation.html", context, status_code=exc.status_code)
    return render(request, "signup/activation_ok.html", {"done": done})


# --- administrators -------------------------------------------------------------------------------


@router.get(ADMIN_PAGE)
async def admin_list(
    request: Request,
    db: SessionDep,
    actor: PageActor,
    statut: Annotated[str | None, Query(max_length=20)] = "en_attente",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    status = vocab.parse(SignupStatus, statut) if statut in SignupStatus.labels() else None
    page = await service.list_requests(session=db, actor=actor, status=status, limit=50, cursor=cursor)
    return render(
        request,
        "signup/admin.html",
        {"page": page, "statut": status.value if status else "", "statuses": SignupStatus.labels()},
    )


@router.post(ADMIN_PAGE + "/{request_id}/valider")
async def admin_approve(
    request: Request, db: SessionDep, actor: FormActor, request_id: uuid.UUID
) -> Response:
    try:
        decision = await service.approve(
            session=db, settings=request.app.state.settings, actor=actor, request_id=request_id
        )
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
    else:
        who = decision.request.display_name
        if decision.emailed:
            await flash(request, db, f"Inscription de {who} validée : le lien d'activation lui a été envoyé.")
        else:
            await flash(
                request,
                db,
                f"Inscription de {who} validée. Aucun serveur de messagerie n'est configuré : "
                "transmettez-lui ce lien d'activation (valable 72 heures, une seule fois) : "
                f"{decision.activation_url}",
            )
    await db.commit()
    return RedirectResponse(ADMIN_PAGE, status_code=303)


@router.post(ADMIN_PAGE + "/{request_id}/refuser")
async def admin_refuse(
    request: Request,
    db: SessionDep,
    actor: FormActor,
    request_id: uuid.UUID,
    motif: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if not motif.strip():
        await flash(request, db, "Indiquez le motif du refus : il est gardé avec la demande.", kind="erreur")
    else:
        try:
            reason = _REASON.validate_python(motif.strip())
            refused = await service.refuse(session=db, actor=actor, request_id=request_id, reason=reason)
        except ValidationError as exc:
            await flash(
                request, db, f"Motif : {french_validation_message(dict(exc.errors()[0]))}", kind="erreur"
            )
        except ServiceError as exc:
            await flash(request, db, exc.message, kind="erreur")
        else:
            await flash(request, db, f"Inscription de {refused.display_name} refusée.")
    await db.commit()
    return RedirectResponse(ADMIN_PAGE, status_code=303)
