"""Synapse's own registration refusals, answered in French (issue 6, item 14).

With registration and guest access closed (accounts are created by ``azurezo account create``
only), Synapse answers ``/register`` in English: "Registration has been disabled", "Guest access
is disabled". No module callback runs before those checks, so the module serves these refusals
itself, from a web resource registered at ``/_matrix``.

How it is reached, using public behaviour only: modules' web resources are attached after Synapse's
own (``ModuleApi.register_web_resource``), and a resource attached at a parent path takes over the
children already there (``synapse.util.httpresourcetree.create_resource_tree``). Every request
under ``/_matrix`` therefore walks through ``MatrixPrefix.getChildWithDefault``, which hands it to
Synapse's resource unchanged, except the refusals below, answered with the same status and
``errcode`` as Synapse's, only in French. If a future Synapse stopped routing through it, the
refusals would be Synapse's English ones again, nothing else would change: the integration tests
(tests/integration/test_module_registration.py) would tell.

Expired sessions ("User account has expired", ``ORG_MATRIX_EXPIRED_ACCOUNT``: what a professional
delisted from the directory gets on every request, through the module's ``is_user_expired``) are
written by Synapse's auth code with no hook before them, and ``is_user_expired`` cannot raise its own
error (Synapse's pusher pool asks it too, in a loop an exception would break for everyone). So the
same resource, for requests carrying an access token, looks at the first chunk Synapse writes: a 403
whose JSON body has that ``errcode`` gets the French ``error`` instead (same status, same ``errcode``,
the other keys kept, ``Content-Length`` fixed when Synapse set one). Anything else is written as is,
and only the first chunk of an answer is looked at. If a Synapse upgrade wrote that answer otherwise,
it would be English again, nothing else would change (tests/integration/test_module_expired.py).

Failed logins (a wrong password, a deactivated account, too many attempts) are written by Synapse's
``/login`` the same way, with no hook before them: the same first-chunk rewrite serves them, for
requests to ``/login`` without a token, and only for those three answers (matched on status,
``errcode`` and, for a wrong password, Synapse's own text: ``M_FORBIDDEN`` means other things
elsewhere). Element shows its own translation of the first two; other clients show ours
(tests/integration/test_module_registration.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from synapse.http.server import UnrecognizedRequestResource
from twisted.web.resource import Resource
from twisted.web.server import Request

logger = logging.getLogger(__name__)

REGISTRATION_CLOSED = (
    "La création de compte n'est pas ouverte sur AZUREZO : les comptes des professionnels sont "
    "créés par votre structure de coordination, à partir de l'annuaire (RPPS/ROR). Demandez-lui "
    "votre compte, puis connectez-vous avec l'identifiant reçu."
)
GUEST_ACCESS_CLOSED = (
    "L'accès invité n'existe pas sur AZUREZO : seuls les professionnels de l'annuaire, avec leur "
    "compte, peuvent se connecter. Demandez votre compte à votre structure de coordination."
)

ACCOUNT_EXPIRED = (
    "Votre session AZUREZO est suspendue : vous n'êtes plus inscrit comme professionnel actif dans "
    "l'annuaire (RPPS/ROR), ou votre compte n'y est plus rattaché. Contactez votre ordre professionnel "
    "ou l'administrateur régional ; l'accès revient dès votre réinscription, sans nouveau compte."
)
EXPIRED_ACCOUNT = "ORG_MATRIX_EXPIRED_ACCOUNT"

WRONG_CREDENTIALS = (
    "Identifiant ou mot de passe incorrect. Vérifiez l'identifiant reçu de votre structure de "
    "coordination et votre mot de passe ; si vous l'avez oublié, demandez-lui de le réinitialiser."
)
ACCOUNT_DEACTIVATED = (
    "Ce compte AZUREZO est désactivé : on ne peut plus s'y connecter. Contactez votre structure de "
    "coordination ou l'administrateur régional."
)
# Synapse's answer says how long (``retry_after_ms``, seconds for a few failed attempts, more for many).
TOO_MANY_ATTEMPTS = "Trop de tentatives de connexion en peu de temps. Attendez un moment, puis réessayez."

# (status, errcode) -> (Synapse's English text, or None for any text; the French one).
Translations = Mapping[tuple[int, str], tuple[str | None, str]]
EXPIRED_TRANSLATIONS: Translations = {(403, EXPIRED_ACCOUNT): (None, ACCOUNT_EXPIRED)}
LOGIN_TRANSLATIONS: Translations = {
    # synapse.handlers.auth.INVALID_USERNAME_OR_PASSWORD
    (403, "M_FORBIDDEN"): ("Invalid username or password", WRONG_CREDENTIALS),
    (403, "M_USER_DEACTIVATED"): (None, ACCOUNT_DEACTIVATED),
    (429, "M_LIMIT_EXCEEDED"): (None, TOO_MANY_ATTEMPTS),
}
_LOGIN = b"login"
# An error answer is a few hundred bytes; anything larger is not one to translate.
_MAX_ERROR_BODY = 4096

_REGISTER = b"register"


def registration_refusal(
    *,
    method: bytes,
    client_path: list[bytes],
    kind: bytes | None,
    authenticated: bool,
    registration_enabled: bool,
    guest_access_enabled: bool,
) -> str | None:
    """The French refusal Synapse would give in English for this request, or None to let it pass.

    ``client_path`` is the path after ``/_matrix/client`` (``[b"v3", b"register"]``). Requests
    carrying an access token (application services) are always left to Synapse.
    """
    if authenticated or len(client_path) < 2 or client_path[1] != _REGISTER:
        return None
    rest = client_path[2:]
    if method == b"POST" and not rest:
        if kind == b"guest":
            return None if guest_access_enabled else GUEST_ACCESS_CLOSED
        if kind in (None, b"user") and not registration_enabled:
            return REGISTRATION_CLOSED
        return None
    if method == b"GET" and rest == [b"available"] and not registration_enabled:
        return REGISTRATION_CLOSED
    return None


def refusal_in_french(code: int, body: bytes, translations: Translations) -> bytes | None:
    """The body to send instead of one of Synapse's English refusals in ``translations``, or None to
    send ``body`` as is (any other answer, or a body that is not such a refusal in one piece). The
    other keys (``retry_after_ms``...) are kept."""
    if len(body) > _MAX_ERROR_BODY or not any(status == code for status, _ in translations):
        return None
    try:
        answer = json.loads(body)
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    if not isinstance(answer, dict):
        return None
    found = translations.get((code, str(answer.get("errcode"))))
    if found is None or (found[0] is not None and answer.get("error") != found[0]):
        return None
    return json.dumps(answer | {"error": found[1]}, ensure_ascii=False).encode()


def is_login(method: bytes, client_path: list[bytes]) -> bool:
    """A login attempt: ``POST /_matrix/client/<version>/login`` (``client_path`` as in
    :func:`registration_refusal`)."""
    return method == b"POST" and len(client_path) == 2 and client_path[1] == _LOGIN


def translate_refusals(request: Request, translations: Translations) -> None:
    """Have the first chunk written to ``request`` go through :func:`refusal_in_french`.

    The request's own ``write`` is put back at that first chunk, so the rest of any answer (and
    every answer that is not a refusal) is written by Twisted untouched."""
    original = request.write

    def first_write(data: bytes) -> None:
        request.write = original  # type: ignore[method-assign]
        french = refusal_in_french(request.code, data, translations)
        if french is not None:
            if request.responseHeaders.hasHeader(b"Content-Length"):
                request.setHeader(b"Content-Length", b"%d" % len(french))  # type: ignore[no-untyped-call]
            data = french
        original(data)  # type: ignore[no-untyped-call]

    request.write = first_write  # type: ignore[method-assign]


_HEADERS = (
    (b"Content-Type", b"application/json; charset=utf-8"),
    # The CORS headers Synapse sends on every client API answer (web clients read the error).
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    (b"Access-Control-Allow-Headers", b"X-Requested-With, Content-Type, Authorization, Date"),
)


class _Refusal(Resource):
    isLeaf = True

    def __init__(self, code: int, errcode: str, error: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._code = code
        self._body = json.dumps({"errcode": errcode, "error": error}, ensure_ascii=False).encode()

    def render(self, request: Request) -> bytes:
        request.setResponseCode(self._code)
        for name, value in _HEADERS:
            request.setHeader(name, value)  # type: ignore[no-untyped-call]
        return self._body


class MatrixPrefix(Resource):
    """Installed at ``/_matrix``: passes every request to Synapse's resources but the refusals above,
    and has Synapse's expired-account and failed-login refusals written in French."""

    def __init__(self, *, registration_enabled: bool, guest_access_enabled: bool) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registration_enabled = registration_enabled
        self._guest_access_enabled = guest_access_enabled

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        args = getattr(request, "args", None) or {}
        authenticated = bool(request.getHeader(b"Authorization")) or b"access_token" in args
        if path == b"client":
            kinds = args.get(b"kind") or [None]
            refusal = registration_refusal(
                method=request.method,
                client_path=list(request.postpath),
                kind=kinds[0],
                authenticated=authenticated,
                registration_enabled=self._registration_enabled,
                guest_access_enabled=self._guest_access_enabled,
            )
            if refusal is not None:
                return _Refusal(403, "M_FORBIDDEN", refusal)
            if not authenticated and is_login(request.method, list(request.postpath)):
                translate_refusals(request, LOGIN_TRANSLATIONS)
        if authenticated:
            # Only a request with a token can be refused as expired (Synapse's auth, below us).
            translate_refusals(request, EXPIRED_TRANSLATIONS)
        child: Resource = super().getChildWithDefault(path, request)  # type: ignore[no-untyped-call]
        return child

    def getChild(self, path: bytes, request: Any) -> Resource:
        # What Synapse's own placeholder at /_matrix answers for an unknown prefix (JSON 404).
        return UnrecognizedRequestResource()  # type: ignore[no-untyped-call]
