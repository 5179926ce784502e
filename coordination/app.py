"""The FastAPI application factory. Routers stay thin; rules live in each domain's ``service.py``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from coordination.agenda.router import routers as agenda_routers
from coordination.audit.router import router as audit_router
from coordination.circle.router import router as circle_router
from coordination.dac_requests.router import router as dac_requests_router
from coordination.db import make_engine, make_sessionmaker
from coordination.directory.router import router as directory_router
from coordination.documents import service as documents
from coordination.documents.router import router as documents_router
from coordination.errors import ErrCode, Invalid, ServiceError
from coordination.fhir.router import router as fhir_router
from coordination.guard import BodyTooLarge, RequestGuard
from coordination.idempotency import service as idempotency
from coordination.idempotency.service import IdempotencyMiddleware
from coordination.outbox.router import router as outbox_router
from coordination.patients.router import router as patients_router
from coordination.rooms.router import router as rooms_router
from coordination.schemas import ErrorOut, MeOut
from coordination.security import CurrentActor, SynapseWhoami, TokenVerifier
from coordination.settings import Settings
from coordination.syntheses.router import router as syntheses_router
from coordination.tasks.router import router as tasks_router
from coordination.text import CONTROL_PATTERNS

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


def _french_validation_message(err: dict[str, Any]) -> str:
    """Translate a pydantic error into a French sentence a professional can act on."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    # pydantic joins the choices with an English "or": "'F', 'M' or 'I'".
    expected = str(ctx.get("expected", "")).replace(" or ", " ou ")
    loc = tuple(err.get("loc", ()))
    if loc == ("body",) and kind == "missing":
        return "le corps de la requête est vide : envoyez un objet JSON (voir /docs pour ses champs)"
    messages = {
        "missing": "ce champ est obligatoire",
        "string_too_short": f"trop court (au moins {ctx.get('min_length')} caractères)",
        "string_too_long": f"trop long (au plus {ctx.get('max_length')} caractères)",
        "string_pattern_mismatch": (
            "caractère de contrôle interdit (caractère invisible, ou retour à la ligne dans un champ "
            "d'une seule ligne) : retirez-le"
            if ctx.get("pattern") in CONTROL_PATTERNS
            else "format invalide"
        ),
        "date_from_datetime_parsing": "date invalide : attendu AAAA-MM-JJ",
        "date_parsing": "date invalide : attendu AAAA-MM-JJ",
        "date_from_datetime_inexact": "date invalide : attendu AAAA-MM-JJ",
        "datetime_parsing": "date et heure invalides : attendu AAAA-MM-JJTHH:MM:SS±HH:MM",
        "datetime_from_date_parsing": "date et heure invalides : attendu AAAA-MM-JJTHH:MM:SS±HH:MM",
        "enum": f"valeur non reconnue : choisissez parmi {expected}",
        "literal_error": f"valeur non reconnue : choisissez parmi {expected}",
        "int_parsing": "nombre entier attendu",
        "int_type": "nombre entier attendu",
        "bool_parsing": "vrai ou faux attendu",
        "bool_type": "vrai ou faux attendu",
        "uuid_parsing": "identifiant invalide",
        "uuid_type": "identifiant invalide",
        "string_type": "texte attendu",
        "extra_forbidden": "champ inconnu : retirez-le",
        "json_invalid": "le corps de la requête n'est pas du JSON valide",
        "model_type": "objet JSON attendu",
        "model_attributes_type": "objet JSON attendu (entre accolades { })",
        "list_type": "liste attendue",
        "dict_type": "objet JSON attendu",
        "greater_than_equal": f"doit être supérieur ou égal à {ctx.get('ge')}",
        "less_than_equal": f"doit être inférieur ou égal à {ctx.get('le')}",
        "greater_than": f"doit être supérieur à {ctx.get('gt')}",
        "less_than": f"doit être inférieur à {ctx.get('lt')}",
        "value_error": str(ctx.get("error", err.get("msg", "valeur invalide"))),
    }
    # Unknown kinds keep pydantic's code (stable, greppable) but never its English sentence.
    return messages.get(kind, f"valeur invalide ({kind})")


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


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """The offending field, dotted (``birth_first_names.0``); ``corps`` for the body as a whole."""
    loc = tuple(loc)
    if loc[:1] == ("body",) and (len(loc) == 1 or isinstance(loc[1], int)) and len(loc) <= 2:
        return "corps"  # the whole body: missing, not JSON (pydantic reports its byte offset), not an object
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "corps"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        body: dict[str, Any] = {"errcode": exc.errcode, "error": exc.message}
        if isinstance(exc, Invalid) and exc.field:
            body["fields"] = [{"field": exc.field, "error": exc.message}]
        return JSONResponse(status_code=exc.status_code, content=body)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": _field_name(e.get("loc", ())), "error": _french_validation_message(e)}
            for e in exc.errors()
        ]
        summary = "; ".join(
            f["error"] if f["field"] == "corps" else f"{f['field']} : {f['error']}" for f in fields[:5]
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
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Raised by the framework itself (unparsable body, unknown route, wrong method): same shape
        # and language as our own errors.
        message, errcode = _FRAMEWORK_ERRORS.get(
            exc.status_code,
            ("Requête refusée : vérifiez l'adresse et le contenu envoyés.", ErrCode.BAD_REQUEST),
        )
        if isinstance(exc, BodyTooLarge):
            message, errcode = str(exc.detail), ErrCode.BODY_TOO_LARGE
        return JSONResponse(
            status_code=exc.status_code,
            content={"errcode": errcode, "error": message},
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
        # SQLite's write lock held past the busy timeout (a long directory import), or the database
        # server unreachable: nothing was saved, and retrying later will work. Never a 500.
        locked = "locked" in str(exc.orig).lower() or "busy" in str(exc.orig).lower()
        logger.warning(
            "database unavailable (%s): %s", "locked" if locked else "error", type(exc.orig).__name__
        )
        message = (
            "La base de données est occupée (une mise à jour de l'annuaire est sans doute en cours) : "
            "rien n'a été enregistré. Réessayez dans une minute."
            if locked
            else "La base de données ne répond pas : rien n'a été enregistré. Réessayez dans une minute, "
            "et prévenez l'exploitant si cela dure."
        )
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


def create_app(settings: Settings, *, token_verifier: TokenVerifier | None = None) -> FastAPI:
    """Build the service. Tests pass their own ``settings`` and, for unit tests, a token verifier."""

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
            await _sweep_documents(app)
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

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

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


async def _sweep_idempotency(app: FastAPI) -> None:
    """On start, forget idempotency answers past their retention (never blocks start-up on failure)."""
    try:
        async with app.state.sessionmaker() as session:
            removed = await idempotency.sweep(session=session)
        if removed:
            logger.info("forgot %d expired idempotency answer(s)", removed)
    except Exception:  # the schema may not exist yet (tests, first start before migration)
        logger.warning("idempotency sweep skipped", exc_info=True)


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
        documents_router,
        syntheses_router,
        *agenda_routers,
    ]
