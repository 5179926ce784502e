"""Exactly-once writes: what ``Idempotency-Key`` means, and the ASGI middleware that keeps it.

A client that may retry a write (the bot replays the Matrix events it had not finished handling after a
crash) sends ``Idempotency-Key: <its own id of the action>``. For a given acting professional and key:

- the first request runs, and its answer is stored **in the same transaction** as the write: the request
  runs inside one outer database transaction opened here, the service functions' own ``commit()``s only
  release savepoints (``join_transaction_mode="create_savepoint"``), and this middleware commits the
  outer transaction after inserting the answer, before a byte of it reaches the client. A crash at any
  point leaves either both (the retry gets the stored answer) or neither (the retry does the write);
- a retry with the same method, path and body gets the stored status and body, with the header
  ``Idempotent-Replayed: true``, and writes nothing;
- the same key on another write is refused (422 ``AZ_IDEMPOTENCY_MISMATCH``);
- two concurrent requests with one key: the second commit fails on the primary key, its transaction (its
  write included) is rolled back, and it answers the first one's stored answer.

Only 2xx answers are stored (a refusal is decided again on retry). Keys are kept ``RETENTION`` (swept
at start-up), long enough for a bot down over a weekend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordination.db import utcnow
from coordination.errors import ErrCode
from coordination.idempotency.models import IdempotentAnswer
from coordination.security import VERIFIED_USER_STATE

logger = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
RETENTION = timedelta(days=14)
CONNECTION_STATE = "azurezo.connection"
"""Key of ``request.state`` under which the outer connection is handed to ``db.get_session``."""

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BAD_KEY = (
    "En-tête Idempotency-Key invalide : 1 à 255 caractères ASCII imprimables, sans espace "
    "(par exemple l'identifiant de l'événement Matrix de la commande)."
)
MISMATCH = (
    "Cette clé d'idempotence a déjà servi pour une autre opération : utilisez une clé nouvelle pour "
    "chaque action (l'identifiant de l'événement Matrix de la commande, par exemple)."
)


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


async def sweep(*, session: AsyncSession) -> int:
    """Forget answers older than ``RETENTION``; returns how many."""
    result = await session.execute(
        delete(IdempotentAnswer).where(IdempotentAnswer.created_at < utcnow() - RETENTION)
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


class IdempotencyMiddleware:
    """ASGI middleware (inside ``RequestGuard``, which has already authenticated and bounded the body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not _KEY.match(key):
            await _json(send, 422, ErrCode.INVALID, BAD_KEY)
            return
        caller = self._caller(scope, headers)
        if caller is None:  # no valid token: the route answers 401 as usual, nothing to remember
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        fingerprint = request_hash(scope["method"], scope["path"], body)
        engine: AsyncEngine = scope["app"].state.engine
        # No look-up before the transaction: the one inside it answers a replay as well, and a write
        # pays for one transaction instead of two (issue 9: the service's write path is the limit).
        await self._first_time(scope, engine, caller, key, fingerprint, body, send)

    async def _first_time(
        self,
        scope: Scope,
        engine: AsyncEngine,
        caller: str,
        key: str,
        fingerprint: str,
        body: bytes,
        send: Send,
    ) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        async with engine.connect() as conn:
            await conn.begin()  # on SQLite: BEGIN IMMEDIATE, so a twin request waits here
            stored = await _lookup(conn, caller, key)
            if stored is not None:  # a replay, or a twin committed while we were reading the body
                await conn.rollback()
                await _replay(send, stored, fingerprint)
                return
            scope.setdefault("state", {})[CONNECTION_STATE] = conn
            await self.app(scope, _replaying(body), capture)
            status = next(m["status"] for m in captured if m["type"] == "http.response.start")
            lost = False
            try:
                if 200 <= status < 300:
                    await _store(conn, caller, key, fingerprint, captured)  # PostgreSQL raises here
                await conn.commit()  # SQLite raises here
            except IntegrityError:
                # A twin request with this key committed first: ours (its write included) is undone.
                await conn.rollback()
                lost = True
        if lost or not 200 <= status < 300:
            # A refusal may just mean a twin did the write meanwhile (a duplicate, a stale version):
            # when a twin's answer is stored, that answer is the one that counts.
            stored = await _lookup(engine, caller, key)
            if stored is not None:
                logger.info("idempotency key raced; answering the first request's result")
                await _replay(send, stored, fingerprint)
                return
            if lost:
                raise RuntimeError("idempotency: lost a commit race but no answer is stored")
        for message in captured:
            await send(message)

    @staticmethod
    def _caller(scope: Scope, headers: Headers) -> str | None:
        """Who the key belongs to: the user ``RequestGuard`` verified (none when the token is missing,
        invalid, or Synapse unreachable: the route then answers 401 or 503), and whom the bot acts for."""
        user = scope.get("state", {}).get(VERIFIED_USER_STATE)
        if user is None:
            return None
        return f"{user}|{headers.get('x-azurezo-on-behalf-of', '').strip()}"


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _lookup(bind: AsyncEngine | AsyncConnection, caller: str, key: str) -> IdempotentAnswer | None:
    """The stored answer, read on ``bind`` (inside the request's transaction when it is a connection)."""
    async with AsyncSession(bind=bind, expire_on_commit=False) as session:
        return (
            await session.scalars(
                select(IdempotentAnswer).where(IdempotentAnswer.scope == caller, IdempotentAnswer.key == key)
            )
        ).one_or_none()


async def _store(
    conn: AsyncConnection, caller: str, key: str, fingerprint: str, captured: list[Message]
) -> None:
    start = next(m for m in captured if m["type"] == "http.response.start")
    content_type = next(
        (v.decode("latin-1") for k, v in start.get("headers", []) if k.lower() == b"content-type"),
        "application/json",
    )
    body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
    await conn.execute(
        insert(IdempotentAnswer).values(
            scope=caller,
            key=key,
            request_hash=fingerprint,
            status_code=start["status"],
            content_type=content_type,
            body=body,
            created_at=utcnow(),
        )
    )


async def _replay(send: Send, stored: IdempotentAnswer, fingerprint: str) -> None:
    if stored.request_hash != fingerprint:
        await _json(send, 422, ErrCode.IDEMPOTENCY_MISMATCH, MISMATCH)
        return
    await send(
        {
            "type": "http.response.start",
            "status": stored.status_code,
            "headers": [
                (b"content-type", stored.content_type.encode("latin-1")),
                (b"content-length", str(len(stored.body)).encode()),
                REPLAYED_HEADER,
            ],
        }
    )
    await send({"type": "http.response.body", "body": stored.body})


async def _json(send: Send, status: int, errcode: ErrCode, message: str) -> None:
    payload: dict[str, Any] = {"errcode": errcode, "error": message}
    body = json.dumps(payload, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
