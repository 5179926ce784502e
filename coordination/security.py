"""Who is calling: Matrix access token -> Matrix user (Synapse whoami) -> directory identity.

No professional's password ever reaches the service: clients send the Matrix access token they already
hold, and only Synapse can tell whose it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

import httpx
from cachetools import TTLCache
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import SessionDep
from coordination.directory import service as directory
from coordination.errors import ErrCode, Forbidden, Unauthenticated, Unavailable
from coordination.ids import NationalId, StructureId, UserId

logger = logging.getLogger(__name__)

ON_BEHALF_HEADER = "X-Azurezo-On-Behalf-Of"
# Where ``coordination.guard.RequestGuard`` leaves the Matrix user it verified for this request.
VERIFIED_USER_STATE = "azurezo.verified_user"


class TokenVerifier(Protocol):
    """Tells which Matrix user holds an access token, or None when the token is not valid."""

    async def user_for_token(self, token: str) -> UserId | None: ...


class SynapseWhoami:
    """Asks Synapse ``/account/whoami``; answers are cached briefly, keyed by a hash of the token.

    The cache bounds how long a logged-out token keeps working here (``cache_seconds``, 5 s by
    default: issue 6 item 17); delisting takes effect at once since the directory is read on every
    request. ``TTLCache`` also bounds the memory (at most ``max_tokens`` entries, oldest evicted).
    """

    def __init__(
        self,
        synapse_url: str,
        *,
        cache_seconds: float,
        client: httpx.AsyncClient,
        max_tokens: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = f"{synapse_url}/_matrix/client/v3/account/whoami"
        self._client = client
        self._cache: TTLCache[str, UserId] | None = (
            TTLCache(maxsize=max_tokens, ttl=cache_seconds, timer=timer) if cache_seconds > 0 else None
        )
        self._pending: dict[str, asyncio.Future[UserId | None]] = {}

    async def user_for_token(self, token: str) -> UserId | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            return hit
        # One question to Synapse per token at a time: when a busy client's entry expires, its
        # concurrent requests (50 a second in bench_notify) all wait for the same answer instead of
        # each asking Synapse, whose account-validity check asks this service in turn.
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(token, key))
            self._pending[key] = pending
            pending.add_done_callback(lambda _done: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _ask(self, token: str, key: str) -> UserId | None:
        try:
            resp = await self._client.get(
                self._url, headers={"Authorization": f"Bearer {token}"}, timeout=5.0
            )
        except httpx.HTTPError as exc:
            logger.warning("whoami failed: %s", type(exc).__name__)
            raise Unavailable(
                "Le serveur de messagerie ne répond pas ; réessayez dans quelques instants."
            ) from exc
        if resp.status_code in (401, 403):
            if self._cache is not None:
                self._cache.pop(key, None)
            return None
        if resp.status_code != 200:
            raise Unavailable(
                "Le serveur de messagerie n'a pas pu vérifier votre session ; réessayez plus tard."
            )
        user_id = UserId(str(resp.json()["user_id"]))
        if self._cache is not None:
            self._cache[key] = user_id
        return user_id


@dataclass(frozen=True, slots=True)
class Actor:
    """The professional on whose behalf a request acts (the real person, even through the bot)."""

    user_id: UserId
    national_id: NationalId
    display_name: str
    profession_code: str | None
    structure_ids: frozenset[StructureId] = field(default_factory=frozenset)
    via_bot: bool = False


async def actor_for_user(*, session: AsyncSession, user_id: UserId, via_bot: bool = False) -> Actor:
    """Map a Matrix user to its active directory identity, or raise ``Forbidden`` in French."""
    found = await directory.person_for_user(session=session, user_id=user_id)
    if found is None:
        raise Forbidden(
            "Votre compte n'est rattaché à aucun professionnel de l'annuaire : "
            "contactez l'administrateur régional pour le faire rattacher.",
            errcode=ErrCode.NOT_IN_DIRECTORY,
        )
    person, structures = found
    if not person.active:
        raise Forbidden(
            "Vous n'êtes plus inscrit comme actif dans l'annuaire national (RPPS/ROR) : "
            "l'accès à la coordination est suspendu. Contactez votre ordre ou l'administrateur régional.",
            errcode=ErrCode.INACTIVE,
        )
    return Actor(
        user_id=user_id,
        national_id=NationalId(person.national_id),
        display_name=directory.display_name(person),
        profession_code=person.profession_code,
        structure_ids=frozenset(StructureId(s) for s in structures),
        via_bot=via_bot,
    )


# ``auto_error=False``: a missing or malformed header gets our French 401, not Starlette's English 403.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="Jeton Matrix",
    description="Le jeton d'accès Matrix de votre session (celui de votre client, Element par exemple).",
)


async def get_actor(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Actor:
    """FastAPI dependency: authenticate the Matrix token and resolve the (possibly represented) actor."""
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise Unauthenticated(
            "Authentification requise : envoyez votre jeton Matrix dans l'en-tête "
            "« Authorization: Bearer <jeton> »."
        )
    # A write's token was verified by RequestGuard before its body was read: never ask Synapse again
    # here, where an idempotent write already holds its database transaction. Synapse's account-
    # validity check calls back into this service (the module's directory look-up), which would wait
    # for that same transaction until the module's timeout: a 2 s stall of every request (issue 9).
    verified: UserId | None = request.scope.get("state", {}).get(VERIFIED_USER_STATE)
    verifier: TokenVerifier = request.app.state.token_verifier
    user_id = verified if verified is not None else await verifier.user_for_token(token)
    if user_id is None:
        raise Unauthenticated(
            "Jeton Matrix invalide ou expiré : reconnectez-vous à votre messagerie puis réessayez."
        )
    on_behalf = request.headers.get(ON_BEHALF_HEADER)
    if on_behalf:
        bot_user_id = request.app.state.settings.bot_user_id
        if bot_user_id is None or user_id != bot_user_id:
            raise Forbidden(
                "Seul le robot de coordination peut agir pour le compte d'un autre professionnel.",
                errcode=ErrCode.ON_BEHALF_REFUSED,
            )
        return await actor_for_user(session=session, user_id=UserId(on_behalf.strip()), via_bot=True)
    return await actor_for_user(session=session, user_id=user_id)


CurrentActor = Annotated[Actor, Depends(get_actor)]


def require_internal_secret(request: Request) -> None:
    """Dependency of ``/internal/v1`` routes: the caller is one of our processes (Synapse module, bot),
    proven by the internal secret in ``Authorization: Bearer``; anyone else gets a 401."""
    expected: str = request.app.state.settings.internal_api_secret
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthenticated("Secret interne invalide.", errcode=ErrCode.UNAUTHENTICATED)


InternalCaller = Annotated[None, Depends(require_internal_secret)]
