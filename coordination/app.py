"""The FastAPI application factory. Routers stay thin; rules live in each domain's ``service.py``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from coordination import metrics
from coordination.agenda.pages import router as agenda_pages
from coordination.agenda.router import routers as agenda_routers
from coordination.audit.router import router as audit_router
from coordination.circle.pages import router as circle_pages
from coordination.circle.router import router as circle_router
from coordination.dac_requests.pages import router as dac_requests_pages
from coordination.dac_requests.router import dac_router as dac_rooms_router
from coordination.dac_requests.router import router as dac_requests_router
from coordination.db import make_engine, make_sessionmaker
from coordination.directory.router import router as directory_router
from coordination.documents import service as documents
from coordination.documents.pages import router as documents_pages
from coordination.documents.router import router as documents_router
from coordination.errors import ErrCode, Invalid, ServiceError
from coordination.evaluations.pages import router as evaluations_pages
from coordination.evaluations.router import forms_router as evaluation_forms_router
from coordination.evaluations.router import router as evaluations_router
from coordination.fhir.router import router as fhir_router
from coordination.guard import BodyTooLarge, RequestGuard
from coordination.idempotency import service as idempotency
from coordination.idempotency.service import IdempotencyMiddleware
from coordination.indicators.pages import router as indicators_pages
from coordination.indicators.router import router as indicators_router
from coordination.outbox.router import router as outbox_router
from coordination.patients.pages import router as patients_pages
from coordination.patients.router import router as patients_router
from coordination.plans.pages import router as plans_pages
from coordination.plans.router import router as plans_router
from coordination.rooms.router import router as rooms_router
from coordination.schemas import ErrorOut, MeOut
from coordination.security import CurrentActor, SynapseWhoami, TokenVerifier
from coordination.settings import Settings
from coordination.signup.pages import router as signup_pages
from coordination.signup.router import router as signup_router
from coordination.syntheses.router import router as syntheses_router
from coordination.tasks.pages import router as tasks_pages
from coordination.tasks.router import router as tasks_router
from coordination.timeline.pages import router as timeline_pages
from coordination.timeline.router import board_router as complex_board_router
from coordination.timeline.router import router as timeline_router
from coordination.validation import field_name as _field_name
from coordination.validation import french_validation_message as _french_validation_message
from coordination.web import sessions as web_sessions
from coordination.web.deps import SignInRequired
from coordination.web.headers import SecurityHeaders, is_page
from coordination.web.matrix import MatrixAuth, SynapseAuth
from coordination.web.pages import router as web_pages
from coordination.web.templating import PACKAGE_ROOT, render_error

logger = logging.getLogger(__name__)


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Corps de requête illisible"},
    401: {"model": ErrorOut, "description": "Jeton Matrix absent, invalide ou expiré"},
    403: {"model": ErrorOut, "description": "Accès refusé (hors annuaire, inactif, non habilité)"},
    404: {"model": ErrorOut, "description": "Objet inconnu"},
    409: {"model": ErrorOut, "description": "Conflit de version ou doublon"},
    422: {"model": ErrorOut, "description": "Saisie invalide (champ et raison en français)"},
    503: {"model": ErrorOut, "description": "Le serveur Matrix ne répond pas"},
}


_FRAMEWORK_ERRORS: dict[int, tuple[str, ErrCode]] = {
    400: (
        "Le corps de la requête est illisible : envoyez du JSON valide (ou un formulaire multipart "
        "pour les fichiers), encodé en UTF-8.",
        ErrCode.BAD_REQUEST,
    ),
    404: ("Adresse inconnue : vérifiez le chemin de l'API (voir /docs).", ErrCode.NOT_FOUND),
    405: ("Méthode non autorisée pour cette adresse (voir /docs).", ErrCode.METHOD_NOT_ALLOWED),
    413: ("Requête trop volumineuse.", ErrCode.TOO_LARGE),
    415: ("Type de contenu non pris en charge : envoyez du JSON.", ErrCode.UNSUPPORTED_MEDIA_TYPE),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in_required(request: Request, exc: SignInRequired) -> Response:
        query = urlencode({"suite": exc.next_path, **({"motif": exc.reason} if exc.reason else {})})
        if request.headers.get("HX-Request"):  # htmx would follow a 303 inside the page: leave it
            return Response(status_code=200, headers={"HX-Redirect": f"/app/connexion?{query}"})
        return RedirectResponse(f"/app/connexion?{query}", status_code=303)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        if is_page(request.url.path):  # the dashboard shows the same French sentence on a page
            return render_error(request, status_code=exc.status_code, message=exc.message)
        body: dict[str, Any] = {"errcode": exc.errcode, "error": exc.message}
        if isinstance(exc, Invalid) and exc.field:
            body["fields"] = [{"field": exc.field, "error": exc.message}]
        return JSONResponse(status_code=exc.status_code, content=body)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields = [
            {"field": _field_name(e.get("loc", ())), "error": _french_validation_message(e)}
            for e in exc.errors()
        ]
        summary = "; ".join(
            f["error"] if f["field"] == "corps" else f"{f['field']} : {f['error']}" for f in fields[:5]
        )
        if is_page(request.url.path):
            return render_error(
                request, status_code=422, message=f"Saisie invalide — {summary}. Corrigez puis renvoyez."
            )
        return JSONResponse(
            status_code=422,
            content={
                "errcode": ErrCode.INVALID,
                "error": f"Saisie invalide — {summary}. Corrigez puis renvoyez.",
                "fields": fields,
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Raised by the framework itself (unparsable body, unknown route, wrong method): same shape
        # and language as our own errors.
        message, errcode = _FRAMEWORK_ERRORS.get(
            exc.status_code,
            ("Requête refusée : vérifiez l'adresse et le contenu envoyés.", ErrCode.BAD_REQUEST),
        )
        if isinstance(exc, BodyTooLarge):
            message, errcode = str(exc.detail), ErrCode.BODY_TOO_LARGE
        if is_page(request.url.path):
            if exc.status_code == 404:
                message = "Cette page n'existe pas : revenez au tableau de bord par le menu."
            return render_error(request, status_code=exc.status_code, message=message)
        return JSONResponse(
            status_code=exc.status_code,
            content={"errcode": errcode, "error": message},
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(request: Request, exc: OperationalError | PoolTimeout) -> Response:
        # SQLite's write lock held past the busy timeout (a long directory import), the service's
        # one SQLite connection not free within it (PoolTimeout), or the database server unreachable:
        # nothing was saved, and retrying later will work. Never a 500.
        orig = exc.orig if isinstance(exc, OperationalError) else exc
        locked = isinstance(exc, PoolTimeout) or "locked" in str(orig).lower() or "busy" in str(orig).lower()
        logger.warning("database unavailable (%s): %s", "locked" if locked else "error", type(orig).__name__)
        message = (
            "La base de données est occupée (une mise à jour de l'annuaire est sans doute en cours) : "
            "rien n'a été enregistré. Réessayez dans une minute."
            if locked
            else "La base de données ne répond pas : rien n'a été enregistré. Réessayez dans une minute, "
            "et prévenez l'exploitant si cela dure."
        )
        if is_page(request.url.path):
            return render_error(request, status_code=503, message=message)
        return JSONResponse(
            status_code=503,
            content={"errcode": ErrCode.BUSY, "error": message},
            headers={"Retry-After": "30"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error: %s", type(exc).__name__)
        return JSONResponse(
            status_code=500,
            content={
                "errcode": ErrCode.INTERNAL,
                "error": "Erreur interne du service ; rien n'a été enregistré. "
                "Réessayez, et signalez-la si elle se répète.",
            },
        )


def create_app(
    settings: Settings, *, token_verifier: TokenVerifier | None = None, matrix_auth: MatrixAuth | None = None
) -> FastAPI:
    """Build the service. Tests pass their own ``settings`` and, for unit tests, a token verifier and
    the dashboard's Synapse sign-in client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(
            settings.database_url,
            sqlite_busy_timeout=settings.sqlite_busy_timeout_seconds,
            sqlite_immediate=True,
        )
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        async with httpx.AsyncClient() as client:
            app.state.http = client
            app.state.token_verifier = token_verifier or SynapseWhoami(
                settings.synapse_url, cache_seconds=settings.whoami_cache_seconds, client=client
            )
            app.state.matrix_auth = matrix_auth or SynapseAuth(
                settings.synapse_url, public_url=settings.synapse_public_url, client=client
            )
            await _sweep_documents(app)
            await _sweep_web_sessions(app)
            await _sweep_idempotency(app)
            try:
                yield
            finally:
                await engine.dispose()

    app = FastAPI(
        title="AZUREZO Coordination",
        version="1.0.0",
        description="Dossiers patients, cercle de soins, documents, demandes aux DAC, tâches et "
        "traçabilité, pour les professionnels de l'annuaire authentifiés par leur jeton Matrix.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Middleware run outermost last-added: RequestGuard authenticates and bounds every body before
    # anything reads it (issue 6 item 2), then writes with an Idempotency-Key run exactly once.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestGuard, upload_limit=settings.max_upload_bytes)
    app.add_middleware(SecurityHeaders, widget_ancestors=settings.widget_frame_ancestors)
    app.add_middleware(metrics.RequestMetrics)  # outermost: times the whole request
    # The dashboard's own files (htmx, CSS, widget script): served here, never from a CDN (strict CSP).
    app.mount("/app/static", StaticFiles(directory=PACKAGE_ROOT / "web" / "static"), name="static")

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics (the service listens on loopback; the proxy never exposes this)."""
        async with request.app.state.sessionmaker() as session:
            body = await metrics.render(session, settings.metrics_dir)
        return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1/me",
        tags=["identité"],
        response_model=MeOut,
        responses={k: COMMON_ERRORS[k] for k in (401, 403, 503)},
    )
    async def me(actor: CurrentActor) -> MeOut:
        """Who the service thinks you are: your Matrix ID bound to your directory identity."""
        return MeOut(
            user_id=actor.user_id,
            national_id=actor.national_id,
            display_name=actor.display_name,
            profession_code=actor.profession_code,
            structure_ids=sorted(actor.structure_ids),
            via_bot=actor.via_bot,
        )

    for router in _routers():
        # Every route documents the error answers it can give, in our ErrorOut shape (this also
        # replaces FastAPI's default 422 schema, which our French handler does not use).
        app.include_router(router, responses=COMMON_ERRORS)
    for pages in _pages():
        app.include_router(pages)
    return app


async def _sweep_documents(app: FastAPI) -> None:
    """On start, remove document files a crash left unreferenced (never blocks start-up on failure)."""
    try:
        async with app.state.sessionmaker() as session:
            removed = await documents.sweep_orphans(session=session, root=app.state.settings.documents_dir)
        if removed:
            logger.info("removed %d orphan document file(s)", removed)
    except Exception:  # the schema may not exist yet (tests, first start before migration)
        logger.warning("orphan document sweep skipped", exc_info=True)


async def _sweep_web_sessions(app: FastAPI) -> None:
    """On start, end the dashboard sessions past a timeout and log their Matrix devices out."""
    settings: Settings = app.state.settings
    try:
        async with app.state.sessionmaker() as session:
            tokens = await web_sessions.sweep_expired(
                session=session,
                idle=timedelta(minutes=settings.dashboard_idle_minutes),
                absolute=timedelta(hours=settings.dashboard_absolute_hours),
            )
        for token in tokens:
            await app.state.matrix_auth.logout(access_token=token)
        if tokens:
            logger.info("ended %d expired dashboard session(s)", len(tokens))
    except Exception:  # the schema may not exist yet (tests, first start before migration)
        logger.warning("dashboard session sweep skipped", exc_info=True)


async def _sweep_idempotency(app: FastAPI) -> None:
    """On start, forget idempotency answers past their retention (never blocks start-up on failure)."""
    try:
        async with app.state.sessionmaker() as session:
            removed = await idempotency.sweep(session=session)
        if removed:
            logger.info("forgot %d expired idempotency answer(s)", removed)
    except Exception:  # the schema may not exist yet (tests, first start before migration)
        logger.warning("idempotency sweep skipped", exc_info=True)


def _pages() -> list[APIRouter]:
    """The dashboard's pages (``/app``, not in the OpenAPI schema). Add a line per domain's pages.py."""
    return [
        web_pages,
        dac_requests_pages,
        patients_pages,
        circle_pages,
        documents_pages,
        tasks_pages,
        indicators_pages,
        signup_pages,
        evaluations_pages,
        plans_pages,
        timeline_pages,
        agenda_pages,
    ]


def _routers() -> list[APIRouter]:
    """Every domain's router. Add a line when a domain gets one."""
    return [
        directory_router,
        patients_router,
        circle_router,
        audit_router,
        outbox_router,
        rooms_router,
        fhir_router,
        tasks_router,
        dac_requests_router,
        indicators_router,
        documents_router,
        syntheses_router,
        signup_router,
        evaluation_forms_router,
        evaluations_router,
        plans_router,
        timeline_router,
        complex_board_router,
        *agenda_routers,
        dac_rooms_router,
    ]
