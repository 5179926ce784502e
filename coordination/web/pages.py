"""Sign-in, SSO, sign-out and the dashboard's home address (``/app``)."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from coordination.db import SessionDep
from coordination.errors import ServiceError
from coordination.security import actor_for_user
from coordination.web import sessions
from coordination.web.deps import (
    COOKIE,
    CSRF_FIELD,
    SIGN_IN_REASONS,
    PageContext,
    check_csrf,
    check_origin,
    end_session,
    matrix_auth,
)
from coordination.web.matrix import MatrixLogin
from coordination.web.templating import render, render_error

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/app", include_in_schema=False)

PRELOGIN_COOKIE = "azurezo_prelogin"
HOME = "/app/demandes"


def safe_next(value: str | None) -> str:
    """Only our own pages: never an open redirect (``//evil``, ``https://...``, ``/app\\..``)."""
    if value and value.startswith("/app") and not value.startswith("//") and "\\" not in value:
        return value
    return HOME


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _sign_in_page(
    request: Request,
    *,
    suite: str,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    token = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "connexion.html",
        {"suite": suite, "message": message, "error": error, "prelogin": token, "flows": request.state.flows},
        status_code=status_code,
    )
    response.set_cookie(
        PRELOGIN_COOKIE,
        token,
        httponly=True,
        secure=_secure(request),
        samesite="lax",
        path="/app",
        max_age=3600,
    )
    return response


async def _flows(request: Request) -> None:
    try:
        request.state.flows = await matrix_auth(request).flows()
    except ServiceError:
        request.state.flows = None


@router.get("")
async def home(request: Request, db: SessionDep, suite: Annotated[str | None, Query()] = None) -> Response:
    """The address printed by ``azurezo up``: the sign-in form, or the requests board when signed in."""
    cookie = request.cookies.get(COOKIE)
    if cookie and await sessions.find(session=db, cookie=cookie) is not None:
        return RedirectResponse(safe_next(suite), status_code=303)
    await _flows(request)
    return _sign_in_page(request, suite=safe_next(suite))


@router.get("/connexion")
async def sign_in_form(
    request: Request,
    suite: Annotated[str | None, Query()] = None,
    motif: Annotated[str | None, Query(max_length=30)] = None,
) -> Response:
    await _flows(request)
    return _sign_in_page(request, suite=safe_next(suite), message=SIGN_IN_REASONS.get(motif or ""))


async def _open_session(
    request: Request, db: SessionDep, login: MatrixLogin, *, method: str, suite: str
) -> Response:
    """Only an active directory professional gets a session; anyone else's new device is logged out."""
    try:
        await actor_for_user(session=db, user_id=login.user_id)
    except ServiceError as exc:
        await matrix_auth(request).logout(access_token=login.access_token)
        logger.info("dashboard sign-in refused for %s: %s", login.user_id, exc.errcode)
        return render_error(request, status_code=exc.status_code, message=exc.message)
    cookie = await sessions.create(
        session=db,
        user_id=login.user_id,
        access_token=login.access_token,
        device_id=login.device_id,
        method=method,
    )
    logger.info("dashboard session opened for %s (%s)", login.user_id, method)
    response = RedirectResponse(safe_next(suite), status_code=303)
    response.set_cookie(COOKIE, cookie, httponly=True, secure=_secure(request), samesite="lax", path="/app")
    response.delete_cookie(PRELOGIN_COOKIE, path="/app")
    return response


@router.post("/connexion")
async def sign_in(
    request: Request,
    db: SessionDep,
    identifiant: Annotated[str, Form(max_length=255)] = "",
    mot_de_passe: Annotated[str, Form(max_length=1024)] = "",
    suite: Annotated[str, Form(max_length=2000)] = HOME,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
) -> Response:
    """Password sign-in: the password goes to Synapse, never stored; the token stays server-side."""
    check_origin(request)
    check_csrf(request.cookies.get(PRELOGIN_COOKIE, ""), csrf_token)
    await _flows(request)
    user = identifiant.strip()
    if not user or not mot_de_passe:
        return _sign_in_page(
            request,
            suite=safe_next(suite),
            error="Saisissez votre identifiant Matrix et votre mot de passe.",
            status_code=422,
        )
    try:
        login = await matrix_auth(request).password_login(
            user=user, password=mot_de_passe, client_address=request.client.host if request.client else None
        )
    except ServiceError as exc:
        return _sign_in_page(request, suite=safe_next(suite), error=exc.message, status_code=exc.status_code)
    return await _open_session(request, db, login, method="m.login.password", suite=suite)


@router.get("/connexion/sso")
async def sso_start(
    request: Request,
    idp: Annotated[str | None, Query(max_length=255)] = None,
    suite: Annotated[str | None, Query()] = None,
) -> Response:
    """Hand over to Synapse's SSO (an OIDC provider such as Pro Santé Connect, configured in Synapse)."""
    back = str(request.url_for("sso_return")) + "?" + urlencode({"suite": safe_next(suite)})
    return RedirectResponse(
        matrix_auth(request).sso_redirect_url(provider_id=idp, return_url=back), status_code=303
    )


@router.get("/connexion/sso/retour", name="sso_return")
async def sso_return(
    request: Request,
    db: SessionDep,
    login_token: Annotated[str, Query(alias="loginToken", min_length=1, max_length=1024)],
    suite: Annotated[str | None, Query()] = None,
) -> Response:
    """Synapse sends the browser back with a one-time ``loginToken``: redeem it (``m.login.token``)."""
    await _flows(request)
    try:
        login = await matrix_auth(request).token_login(login_token=login_token)
    except ServiceError as exc:
        return _sign_in_page(request, suite=safe_next(suite), error=exc.message, status_code=exc.status_code)
    return await _open_session(request, db, login, method="m.login.token", suite=safe_next(suite))


@router.post("/deconnexion")
async def sign_out(
    request: Request,
    db: SessionDep,
    context: PageContext,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
) -> Response:
    """End the session here and log the Matrix device out."""
    check_origin(request)
    check_csrf(context.csrf_token, csrf_token)
    await end_session(request, db, context.session.key)
    response = RedirectResponse("/app/connexion?motif=deconnexion", status_code=303)
    response.delete_cookie(COOKIE, path="/app")
    return response
