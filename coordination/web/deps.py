"""FastAPI dependencies of the dashboard pages: the signed-in professional, and the anti-forgery check.

Every request re-checks, in this order: the cookie names a live session; neither timeout is reached
(idle 30 min, absolute 12 h by default); Synapse still vouches for the session's token (a device logged
out from Element ends the dashboard session too, within the whoami cache); the directory still lists
the professional as active (``security.actor_for_user``): a delisted professional is signed out at once
and their Matrix device logged out.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import SessionDep
from coordination.errors import ErrCode, Forbidden, ServiceError
from coordination.security import Actor, TokenVerifier, actor_for_user
from coordination.settings import Settings
from coordination.web import sessions
from coordination.web.matrix import MatrixAuth
from coordination.web.templating import WEB_STATE

logger = logging.getLogger(__name__)

COOKIE = "azurezo_session"
CSRF_FIELD = "csrf_token"


SIGN_IN_REASONS = {
    "inactivite": "Votre session a été fermée après 30 minutes sans activité : reconnectez-vous.",
    "duree": "Votre session a été fermée après 12 heures : reconnectez-vous.",
    "ailleurs": "Votre session de messagerie a été fermée ailleurs : reconnectez-vous.",
    "deconnexion": "Vous êtes déconnecté(e). À bientôt.",
}
"""Why the sign-in page is shown (a code in the address, never free text an attacker could write)."""


class SignInRequired(Exception):
    """No live session: the app answers with a redirect to the sign-in page (``suite`` = where to go)."""

    def __init__(self, next_path: str, reason: str | None = None) -> None:
        super().__init__(reason or "")
        self.next_path = next_path
        self.reason = reason


@dataclass(slots=True)
class WebContext:
    actor: Actor
    session: sessions.SessionView
    flash: list[dict[str, str]] = field(default_factory=list)

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    @property
    def display_name(self) -> str:
        return self.actor.display_name


def matrix_auth(request: Request) -> MatrixAuth:
    auth: MatrixAuth = request.app.state.matrix_auth
    return auth


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _next_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query and request.method == "GET" else path


async def end_session(request: Request, db: AsyncSession, key: str) -> None:
    """Delete the session and log its Matrix device out (sign-out, timeout, delisting)."""
    token = await sessions.end(session=db, key=key)
    if token is not None:
        await matrix_auth(request).logout(access_token=token)


async def web_context(request: Request, db: SessionDep) -> WebContext:
    """The signed-in professional behind a page, or ``SignInRequired`` / a French refusal."""
    cookie = request.cookies.get(COOKIE, "")
    view = await sessions.find(session=db, cookie=cookie) if cookie else None
    if view is None:
        raise SignInRequired(_next_path(request))
    settings = _settings(request)
    expired = sessions.expiry(
        view,
        idle=timedelta(minutes=settings.dashboard_idle_minutes),
        absolute=timedelta(hours=settings.dashboard_absolute_hours),
    )
    if expired is not None:
        await end_session(request, db, view.key)
        raise SignInRequired(
            _next_path(request), "inactivite" if expired is sessions.Expiry.IDLE else "duree"
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    if await verifier.user_for_token(view.access_token) != view.user_id:
        await sessions.end(session=db, key=view.key)
        raise SignInRequired(_next_path(request), "ailleurs")
    try:
        actor = await actor_for_user(session=db, user_id=view.user_id)
    except ServiceError:
        logger.info("dashboard session of %s ended: no longer an active directory professional", view.user_id)
        await end_session(request, db, view.key)
        raise
    await sessions.touch(session=db, view=view)
    context = WebContext(actor=actor, session=view, flash=await sessions.pop_flash(session=db, key=view.key))
    setattr(request.state, WEB_STATE, context)
    return context


async def page_actor(context: Annotated[WebContext, Depends(web_context)]) -> Actor:
    return context.actor


def _refuse_csrf() -> Forbidden:
    return Forbidden(
        "Formulaire refusé : il a expiré ou a été envoyé depuis un autre site. Rechargez la page puis "
        "recommencez votre action.",
        errcode=ErrCode.CSRF,
    )


def check_origin(request: Request) -> None:
    """A browser sends ``Origin`` with every POST: it must be this site (defence in depth)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise _refuse_csrf()


def check_csrf(expected: str, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise _refuse_csrf()


async def form_actor(request: Request, context: Annotated[WebContext, Depends(web_context)]) -> Actor:
    """The signed-in professional behind a url-encoded form that changes something: CSRF checked."""
    check_origin(request)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    check_csrf(context.csrf_token, sent if isinstance(sent, str) else None)
    return context.actor


async def flash(request: Request, db: AsyncSession, text: str, *, kind: str = "succes") -> None:
    """Queue a message for the page the browser is redirected to."""
    context: WebContext | None = getattr(request.state, WEB_STATE, None)
    if kind == "erreur":
        await db.rollback()  # a refused action may have left unflushed work: never commit it with the message
    if context is not None:
        await sessions.push_flash(session=db, key=context.session.key, kind=kind, text=text)


PageActor = Annotated[Actor, Depends(page_actor)]
"""A GET page: the signed-in, still active professional."""
FormActor = Annotated[Actor, Depends(form_actor)]
"""A POST form: the signed-in, still active professional, with a valid anti-forgery token."""
PageContext = Annotated[WebContext, Depends(web_context)]
