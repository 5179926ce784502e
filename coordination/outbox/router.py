"""HTTP edge of the outbox: only the coordination bot reads and acknowledges events.

The bot is a service account, not a directory professional, so these endpoints authenticate its
Matrix token themselves instead of resolving a directory ``Actor``; acting on behalf of someone
makes no sense here and is refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from coordination.db import SessionDep
from coordination.errors import ErrCode, Forbidden, Unauthenticated
from coordination.ids import UserId
from coordination.outbox import service
from coordination.outbox.schemas import AckIn, AckOut, EventOut
from coordination.pagination import Cursor, Page
from coordination.security import ON_BEHALF_HEADER, TokenVerifier

CONSUMER = "bot"

router = APIRouter(prefix="/api/v1/events", tags=["événements"])


async def require_bot(request: Request) -> UserId:
    """The caller's Matrix ID if it is the configured bot calling for itself; else 401/403 in French."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Authentification requise : envoyez votre jeton Matrix dans l'en-tête "
            "« Authorization: Bearer <jeton> »."
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    user_id = await verifier.user_for_token(token.strip())
    if user_id is None:
        raise Unauthenticated("Jeton Matrix invalide ou expiré : reconnectez-vous puis réessayez.")
    bot = request.app.state.settings.bot_user_id
    if bot is None or user_id != bot or request.headers.get(ON_BEHALF_HEADER):
        raise Forbidden(
            "Seul le robot de coordination lit et acquitte le journal des événements : "
            "ces notifications vous parviennent par la messagerie.",
            errcode=ErrCode.BOT_ONLY,
        )
    return user_id


BotCaller = Annotated[UserId, Depends(require_bot)]


@router.get(
    "",
    response_model=Page[EventOut],
    summary="Événements après un curseur, du plus ancien au plus récent (robot seulement)",
)
async def read_events(
    session: SessionDep,
    _bot: BotCaller,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EventOut]:
    """Without ``cursor``: the events after the last acknowledged one. Acknowledge with
    ``POST /ack`` once handled; ``next_cursor`` reads on without acknowledging."""
    return await service.read(session=session, consumer=CONSUMER, cursor=cursor, limit=limit)


@router.post("/ack", response_model=AckOut, summary="Acknowledge events up to an id (bot only)")
async def ack_events(body: AckIn, session: SessionDep, _bot: BotCaller) -> AckOut:
    cursor = await service.ack(session=session, consumer=CONSUMER, up_to=body.up_to)
    return AckOut(cursor=cursor)
