"""The HTTP edge's first line: refuse what must never be read, before anything is read.

Issue 6 item 2: one unauthenticated ``POST`` with a 1 GB chunked body took the service from 0.7 to
3.5 GB, because FastAPI reads and parses a JSON body *before* resolving dependencies (authentication
included). This pure ASGI middleware runs before the framework and, for every request with a body:

1. answers 401 (French) when an ``/api/`` request carries no valid Matrix token, without reading the
   body (the token is checked with the app's verifier, whose short cache the route's own check then
   hits);
2. answers 413 at once when the declared ``Content-Length`` is over the limit;
3. counts the bytes as the application reads them, and stops with 413 at the first byte over the
   limit (chunked bodies declare no length), so the service never holds more than the limit.

Limits: 1 MB for JSON bodies; document uploads (``multipart/form-data``) stream to disk under their
own cap (``max_upload_bytes``), so this edge only bounds them at that cap plus the form's overhead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordination.errors import ErrCode, ServiceError
from coordination.security import VERIFIED_USER_STATE

logger = logging.getLogger(__name__)

JSON_BODY_LIMIT = 1024 * 1024
FORM_OVERHEAD = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TOO_LARGE = (
    "Requête trop volumineuse : {limit} au plus pour ce type d'envoi. Pour un document, utilisez le "
    "dépôt de fichier (10 Mo au plus) ; sinon raccourcissez le texte envoyé."
)
NO_TOKEN = (
    "Authentification requise : envoyez votre jeton Matrix dans l'en-tête « Authorization: Bearer <jeton> »."
)
BAD_TOKEN = "Jeton Matrix invalide ou expiré : reconnectez-vous à votre messagerie puis réessayez."


def _human(limit: int) -> str:
    return f"{limit / (1024 * 1024):.0f} Mo" if limit >= 1024 * 1024 else f"{limit // 1024} Ko"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body goes over the limit: FastAPI lets HTTP errors through
    its body parsing, and the app's handler answers in French."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=TOO_LARGE.format(limit=_human(limit)))


class RequestGuard:
    """ASGI middleware: authenticate, then bound the body, before the application reads it."""

    def __init__(self, app: ASGIApp, *, upload_limit: int, json_limit: int = JSON_BODY_LIMIT) -> None:
        self.app = app
        self.json_limit = json_limit
        self.form_limit = upload_limit + FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        limit = self.form_limit if content_type == "multipart/form-data" else self.json_limit

        if scope["path"].startswith("/api/"):
            refusal = await self._authenticate(scope, headers)
            if refusal is not None:
                await _answer(send, 401, ErrCode.UNAUTHENTICATED, refusal)
                return

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, ErrCode.BODY_TOO_LARGE, TOO_LARGE.format(limit=_human(limit)))
            return

        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send)

    async def _authenticate(self, scope: Scope, headers: Headers) -> str | None:
        """None when the request carries a token Synapse vouches for, else the French refusal."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return NO_TOKEN
        verifier = getattr(scope["app"].state, "token_verifier", None) if "app" in scope else None
        if verifier is None:  # not started yet: let the route's own check answer
            return None
        try:
            user_id = await verifier.user_for_token(token.strip())
        except ServiceError:
            return None  # Synapse unreachable: the route's dependency answers 503 in French
        if user_id is None:
            return BAD_TOKEN
        # Handed to the layers below (the idempotency key's owner) so nobody asks again.
        scope.setdefault("state", {})[VERIFIED_USER_STATE] = user_id
        return None


async def _answer(send: Send, status: int, errcode: ErrCode, message: str) -> None:
    body = json.dumps({"errcode": errcode, "error": message}, ensure_ascii=False).encode()
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
