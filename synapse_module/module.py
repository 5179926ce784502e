"""``AzurezoModule``: Synapse callbacks gating accounts, memberships and media on the directory.

The callbacks only translate between Synapse and the pure rules (``rules``, ``filetyping``); the
directory is asked over HTTP from the reactor (``DirectoryCache`` + the module API's HTTP client).

Where each rule is enforced, and why there:
- registration (client ``/register`` and the shared-secret admin API): ``check_registration_for_spam``;
  Synapse's own "registration/guest access disabled" answers are given in French by the
  ``/_matrix`` web resource of ``french_refusals`` (issue 6, item 14).
  Returning ``DENY`` reaches the client as 429 "Rate limited"; raising a ``SynapseError`` from the
  callback propagates as is, so the refusal is a 403 with the French reason.
- invites and joins: ``user_may_invite`` / ``user_may_join_room`` (a clear M_FORBIDDEN for normal
  users) AND ``check_event_allowed`` on ``m.room.member`` events, because Synapse skips the spam
  checks for server admins; event rules run for everyone.
- room creation with ``invite`` (DMs): ``on_create_room``, which runs for admins too and refuses
  before the room exists.
- sessions: ``is_user_expired`` (account validity), asked on every authenticated request; Synapse's
  English "User account has expired" refusal is written in French by the same ``/_matrix`` resource;
  logins: ``check_login_for_spam`` (an expired account can otherwise still log in).
- media: ``check_media_file_for_spam``, classified in a worker thread; the size limit by
  ``is_user_allowed_to_upload_media_of_size`` (French 413; Synapse's own ``max_upload_size`` is set
  above ours so that its English "Upload request body is too large" is never the one answered) and
  announced to clients by ``get_media_config_for_user`` (issue 6, item 14).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal, NoReturn
from urllib.parse import quote

from synapse.module_api import (
    NOT_SPAM,
    EventBase,
    ModuleApi,
    Requester,
    StateMap,
    make_deferred_yieldable,
    run_in_background,
)
from synapse.module_api.callbacks.ratelimit_callbacks import RatelimitOverride
from synapse.module_api.errors import Codes, SynapseError
from synapse.spam_checker_api import RegistrationBehaviour
from twisted.internet import defer
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

import filetyping
from synapse_module.config import ModuleConfig, check_upload_limit, parse_config
from synapse_module.directory import (
    Answer,
    DirectoryCache,
    DirectoryUnavailable,
    Standing,
    parse_directory_response,
)
from synapse_module.french_refusals import MatrixPrefix
from synapse_module.rooms import ALLOWED, cache_key, parse_access_response, room_reason, split_key
from synapse_module.rules import (
    SERVICE_MESSAGE_RATE,
    Action,
    Check,
    gate_reason,
    login_reason,
    membership_checks,
    registration_reason,
    room_creation_checks,
    service_rate_override,
    session_expired,
)

logger = logging.getLogger(__name__)

SpamResult = Literal["NOT_SPAM"] | tuple[Codes, dict[str, Any]]

_THIRD_PARTY_INVITE_REFUSED = (
    "Les invitations par adresse e-mail ou numéro de téléphone ne sont pas possibles : invitez "
    "le professionnel par son identifiant de messagerie, après l'avoir trouvé dans l'annuaire."
)
_SSO_ONLY = (
    "La connexion par mot de passe est désactivée sur ce serveur : utilisez le bouton de connexion "
    "unique (Pro Santé Connect ou le portail régional) de votre application."
)
_NO_LOCALPART = (
    "Un identifiant est nécessaire pour créer un compte, et il doit être rattaché à un "
    "professionnel de l'annuaire (RPPS/ROR)."
)


def _french_refusals(api: ModuleApi) -> MatrixPrefix | None:
    """The ``/_matrix`` resource answering Synapse's registration refusals in French."""
    try:
        registration = api._hs.config.registration
        enabled, guests = bool(registration.enable_registration), bool(registration.allow_guest_access)
    except AttributeError:
        logger.warning("cannot read Synapse's registration settings: its refusals stay in English")
        return None
    return MatrixPrefix(registration_enabled=enabled, guest_access_enabled=guests)


def _synapse_max_upload_size(api: ModuleApi) -> int | None:
    """Synapse's ``max_upload_size``, when this Synapse exposes it (not a stable module API)."""
    try:
        value = api._hs.config.media.max_upload_size
    except AttributeError:
        logger.warning("cannot read Synapse's max_upload_size: its agreement is not checked")
        return None
    return int(value)


class AzurezoModule:
    """Only active directory professionals may register, log in, invite and join; media are typed."""

    def __init__(self, config: ModuleConfig, api: ModuleApi) -> None:
        check_upload_limit(config, _synapse_max_upload_size(api))
        self._config = config
        self._api = api
        self._directory = DirectoryCache(
            fetch=self._fetch_standing,
            clock=time.monotonic,
            spawn=self._spawn,
            ttl=config.cache_ttl_seconds,
            max_entries=config.cache_max_entries,
        )
        # Patient rooms (issue 9): who may be in a room linked to a patient, same cache rules.
        self._rooms = DirectoryCache(
            fetch=self._fetch_room_access,
            clock=time.monotonic,
            spawn=self._spawn,
            ttl=config.cache_ttl_seconds,
            max_entries=config.cache_max_entries,
        )
        api.register_spam_checker_callbacks(
            check_registration_for_spam=self.check_registration_for_spam,
            user_may_invite=self.user_may_invite,
            user_may_join_room=self.user_may_join_room,
            user_may_send_3pid_invite=self.user_may_send_3pid_invite,
            check_login_for_spam=self.check_login_for_spam,
            check_media_file_for_spam=self.check_media_file_for_spam,
        )
        api.register_third_party_rules_callbacks(
            check_event_allowed=self.check_event_allowed,
            on_create_room=self.on_create_room,
        )
        api.register_account_validity_callbacks(is_user_expired=self.is_user_expired)
        french = _french_refusals(api)
        if french is not None:
            api.register_web_resource("/_matrix", french)
        api.register_media_repository_callbacks(
            get_media_config_for_user=self.get_media_config_for_user,
            is_user_allowed_to_upload_media_of_size=self.is_user_allowed_to_upload_media_of_size,
        )
        # The bot answers the whole region: Synapse's per-user message rate (0.5/s in production)
        # must not queue its replies. Synapse's event-sending limiter reads only its per-user
        # override table (what the admin API ``override_ratelimit`` writes): the module callback
        # below reaches the membership limiters only (Synapse 1.163). So the main process writes
        # the service accounts' rate there at each start (an upsert; every worker's cache entry is
        # invalidated), and the callback stays for a Synapse that consults it for messages.
        if hasattr(api, "register_ratelimit_callbacks"):
            api.register_ratelimit_callbacks(
                get_ratelimit_override_for_user=self.get_ratelimit_override_for_user
            )
        if api.worker_app is None and config.service_accounts:
            api.delayed_background_call(0, self._lift_service_message_rate, desc="azurezo_service_rate")

    @staticmethod
    def parse_config(config: dict[str, Any]) -> ModuleConfig:
        return parse_config(config)

    async def get_ratelimit_override_for_user(
        self, user_id: str, limiter_name: str
    ) -> RatelimitOverride | None:
        """Service accounts (the bot) send messages at ``SERVICE_MESSAGE_RATE``; everyone else and every
        other limiter keep Synapse's configured rates."""
        rate = service_rate_override(user_id, limiter_name, service_accounts=self._config.service_accounts)
        return RatelimitOverride(per_second=rate[0], burst_count=rate[1]) if rate is not None else None

    async def _lift_service_message_rate(self) -> None:
        """Give each service account ``SERVICE_MESSAGE_RATE`` in Synapse's ``ratelimit_override``
        table (not a stable module API: a Synapse without it keeps the per-user rate, and says so)."""
        rate, burst = SERVICE_MESSAGE_RATE
        try:
            store = self._api._hs.get_datastores().main
            for account in sorted(self._config.service_accounts):
                await store.set_ratelimit_for_user(account, int(rate), burst)
        except AttributeError:
            logger.warning(
                "cannot set the service accounts' message rate: the bot keeps Synapse's per-user rate"
            )
            return
        logger.info("message rate of the service accounts: %s/s, burst %s", rate, burst)

    # --- directory ----------------------------------------------------------------------------

    async def _fetch_standing(self, user_id: str) -> Standing:
        """One look-up: ``GET /internal/v1/directory/matrix-users/{user_id}``, bounded in time."""
        url = f"{self._config.directory_url}/internal/v1/directory/matrix-users/{quote(user_id, safe='@:')}"
        status, body = await self._get(url)
        return parse_directory_response(status, body, user_id=user_id)

    async def _fetch_room_access(self, key: str) -> Standing:
        """``GET /internal/v1/rooms/{room_id}/access/{user_id}``: may this user be in this room?"""
        room_id, user_id = split_key(key)
        url = (
            f"{self._config.directory_url}/internal/v1/rooms/{quote(room_id, safe='!:')}"
            f"/access/{quote(user_id, safe='@:')}"
        )
        status, body = await self._get(url)
        return parse_access_response(status, body, room_id=room_id, user_id=user_id)

    async def _get(self, url: str) -> tuple[int, bytes]:
        """One bounded GET to the service with the internal secret; any failure is an outage."""
        headers = Headers(
            {
                b"Authorization": [f"Bearer {self._config.directory_secret.get_secret_value()}".encode()],
                b"Accept": [b"application/json"],
            }
        )

        async def get() -> tuple[int, bytes]:
            response = await self._api.http_client.request("GET", url, headers=headers)
            body = await make_deferred_yieldable(readBody(response))
            return int(response.code), bytes(body)

        from twisted.internet import reactor

        def timed_out(result: object, timeout: float) -> NoReturn:
            # Called only when our timeout fired, whatever the cancelled request failed with:
            # Synapse's HTTP client logs a cancellation with ``e.args[0]`` and so turns it into an
            # IndexError, which the default translation (CancelledError only) would let through.
            raise defer.TimeoutError(f"no answer within {timeout} s")

        deferred = run_in_background(get)
        deferred.addTimeout(self._config.directory_timeout_seconds, reactor, onTimeoutCancel=timed_out)
        try:
            result: tuple[int, bytes] = await make_deferred_yieldable(deferred)
        except defer.TimeoutError as exc:
            raise DirectoryUnavailable("timeout") from exc
        except Exception as exc:  # connection refused, DNS, TLS...: all mean "unreachable"
            raise DirectoryUnavailable(type(exc).__name__) from exc
        return result

    async def _room_refusal(self, room_id: str, user_id: str, action: Action) -> str | None:
        """Why ``user_id`` may not be invited into / join ``room_id`` (a patient room), or None."""
        if user_id in self._config.service_accounts:
            return None  # the bot is in every patient room: it keeps them in step with the circle
        key = cache_key(room_id, user_id)
        answer = await self._rooms.standing(key, fresh=action is Action.INVITE)
        if answer.standing is not ALLOWED and action is not Action.INVITE:
            # A refusal is never taken from the cache: someone just added to the circle gets in at
            # once (only "allowed" answers are reused, for 2 x TTL at most, like the directory's).
            answer = await self._rooms.standing(key, fresh=True)
        reason = room_reason(answer, action=action)
        if reason is not None:
            logger.info(
                "refused %s of %s into %s: not authorised on the patient", action.value, user_id, room_id
            )
        return reason

    def _spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        self._api.run_as_background_process("azurezo_directory_refresh", task, bg_start_span=False)

    async def _standing(self, user_id: str, *, fresh: bool = False) -> Answer:
        if user_id in self._config.service_accounts:
            return Answer(Standing.ACTIVE, confirmed=True)
        return await self._directory.standing(user_id, fresh=fresh)

    async def _refusal(self, checks: list[Check], action: Action) -> str | None:
        for check in checks:
            reason = gate_reason(await self._standing(check.user_id), action=action, role=check.role)
            if reason is not None:
                logger.info("refused %s: %s (%s)", action.value, check.user_id, check.role.value)
                return reason
        return None

    # --- registration, login, sessions ---------------------------------------------------------

    async def check_registration_for_spam(
        self,
        email_threepid: dict[str, Any] | None,
        username: str | None,
        request_info: Collection[tuple[str, str]],
        auth_provider_id: str | None = None,
    ) -> RegistrationBehaviour:
        """Allow creating an account only for a localpart bound to an active professional."""
        if username is None:
            raise SynapseError(403, _NO_LOCALPART, Codes.FORBIDDEN)
        user_id = self._api.get_qualified_user_id(username)
        answer = await self._standing(user_id, fresh=True)
        reason = registration_reason(answer, user_id=user_id)
        if reason is not None:
            logger.info("refused registration of %s", user_id)
            raise SynapseError(403, reason, Codes.FORBIDDEN)
        return RegistrationBehaviour.ALLOW

    async def check_login_for_spam(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        request_info: Collection[tuple[str | None, str]],
        auth_provider_id: str | None = None,
    ) -> SpamResult:
        """Refuse logins of inactive or unbound users (same standard as ``is_user_expired``), and
        password logins when single sign-on is the only way in (``auth_provider_id`` is None for a
        password; the IdP's id for an SSO login token)."""
        if (
            not self._config.password_login
            and auth_provider_id is None
            and user_id not in self._config.service_accounts
        ):
            logger.info("refused password login of %s (single sign-on only)", user_id)
            return Codes.FORBIDDEN, {"error": _SSO_ONLY}
        # A login opens a new session: ask the directory now rather than trust a cached answer.
        reason = login_reason(await self._standing(user_id, fresh=True))
        if reason is not None:
            logger.info("refused login of %s", user_id)
            return Codes.FORBIDDEN, {"error": reason}
        return NOT_SPAM

    async def is_user_expired(self, user_id: str) -> bool:
        """Cut every session of a user who is inactive or unbound in the directory."""
        return session_expired(await self._standing(user_id))

    # --- invites, joins, room creation ---------------------------------------------------------

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> SpamResult:
        """Both the inviter and the invitee must be active professionals (or service accounts)."""
        reason = await self._refusal(
            membership_checks(membership="invite", sender=inviter, target=invitee, previous_membership=None),
            Action.INVITE,
        ) or await self._room_refusal(room_id, invitee, Action.INVITE)
        return NOT_SPAM if reason is None else (Codes.FORBIDDEN, {"error": reason})

    async def user_may_join_room(self, user: str, room_id: str, is_invited: bool) -> SpamResult:
        """Only active professionals (or service accounts) may join a room."""
        reason = await self._refusal(
            membership_checks(membership="join", sender=user, target=user, previous_membership=None),
            Action.JOIN,
        ) or await self._room_refusal(room_id, user, Action.JOIN)
        return NOT_SPAM if reason is None else (Codes.FORBIDDEN, {"error": reason})

    async def user_may_send_3pid_invite(
        self, inviter: str, medium: str, address: str, room_id: str
    ) -> SpamResult:
        """Invites by e-mail or phone would bypass the directory: refused."""
        return Codes.FORBIDDEN, {"error": _THIRD_PARTY_INVITE_REFUSED}

    async def check_event_allowed(
        self, event: EventBase, state_events: StateMap[EventBase]
    ) -> tuple[bool, dict[str, Any] | None]:
        """Enforce the membership rules on the event itself: this also binds server admins."""
        if event.type != "m.room.member" or not event.is_state():
            return True, None
        target = event.state_key
        previous = state_events.get(("m.room.member", target))
        checks = membership_checks(
            membership=str(event.content.get("membership")),
            sender=event.sender,
            target=target,
            previous_membership=previous.content.get("membership") if previous else None,
        )
        if not checks:
            return True, None
        action = Action.INVITE if event.content.get("membership") == "invite" else Action.JOIN
        reason = await self._refusal(checks, action) or await self._room_refusal(
            event.room_id, target, action
        )
        if reason is None:
            return True, None
        if self._api.is_mine(event.sender):
            # Raising a SynapseError is how a module gives its own message here (Synapse re-raises
            # it on purpose, see ThirdPartyEventRulesModuleApiCallbacks.check_event_allowed).
            raise SynapseError(403, reason, Codes.FORBIDDEN)
        return False, None

    async def on_create_room(
        self, requester: Requester, request_content: dict[str, Any], is_requester_admin: bool
    ) -> None:
        """Refuse a room (or DM) whose creator or invitees are not active professionals."""
        invitees = request_content.get("invite", [])
        if not isinstance(invitees, list):
            return  # Synapse itself rejects a malformed `invite`
        checks = room_creation_checks(
            creator=requester.user.to_string(),
            invitees=[i for i in invitees if isinstance(i, str)],
        )
        reason = await self._refusal(checks, Action.CREATE_ROOM)
        if reason is not None:
            raise SynapseError(403, reason, Codes.FORBIDDEN)

    # --- media ---------------------------------------------------------------------------------

    async def get_media_config_for_user(self, user_id: str) -> dict[str, Any]:
        """Announce the product's limit (not Synapse's higher technical one) to every client."""
        return {"m.upload.size": self._config.max_upload_bytes}

    async def is_user_allowed_to_upload_media_of_size(self, user_id: str, size: int) -> bool:
        """Refuse an upload over ``max_upload_bytes`` with a French 413 (before it is stored)."""
        if size <= self._config.max_upload_bytes:
            return True
        logger.info("refused upload of %d bytes by %s: over the limit", size, user_id)
        raise SynapseError(413, filetyping.too_large_reason(self._config.max_upload_bytes), Codes.TOO_LARGE)

    async def check_media_file_for_spam(self, file_wrapper: Any, file_info: Any) -> SpamResult:
        """Allow a stored file only by its real content (size, magic bytes, container inspection).

        Classification runs in a worker thread: it reads the file (bounded) and may parse a zip
        or OLE2 directory, which must not happen on the reactor.
        """
        limit = self._config.max_upload_bytes
        path = getattr(file_wrapper, "path", None)
        if isinstance(path, str):
            verdict = await self._api.defer_to_thread(
                filetyping.classify_path, path, max_bytes=limit, allow_encrypted=True
            )
        else:  # a Synapse without the (non-API) `path` attribute: buffer once, bounded
            buffer = io.BytesIO()
            await file_wrapper.write_chunks_to(buffer.write)
            verdict = await self._api.defer_to_thread(
                filetyping.classify, buffer, max_bytes=limit, allow_encrypted=True
            )
        if verdict.allowed:
            return NOT_SPAM
        logger.info(
            "refused media %s: %s (%s, %d bytes)",
            file_info.file_id,
            verdict.refusal,
            verdict.detected,
            verdict.size,
        )
        is_upload = file_info.server_name is None and file_info.thumbnail is None and not file_info.url_cache
        if is_upload:
            # Synapse drops the dict of a media refusal and answers 400 "Bad content"; a raised
            # SynapseError reaches the uploader as is, with the French reason.
            raise SynapseError(403, verdict.reason or "Fichier refusé.", Codes.FORBIDDEN)
        return Codes.FORBIDDEN, {"error": verdict.reason}
