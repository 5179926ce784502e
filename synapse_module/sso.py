"""Single sign-on bound to the directory: Synapse's OIDC ``user_mapping_provider`` of AZUREZO.

Pro Santé Connect (the national e-CPS / e-CPS app identity) and regional portals are OpenID Connect
providers. Synapse runs the OIDC flow (``oidc_providers`` in homeserver.yaml, rendered by
``azurezo init --oidc-issuer …``); this class decides which Matrix account the verified identity
signs in to:

- the professional's national id is read from one claim of the userinfo (``SubjectNameID`` for Pro
  Santé Connect, which is the ``8`` + RPPS idNatPS the directory uses; configurable);
- the coordination service (``POST /internal/v1/directory/sso-accounts``, internal secret) answers
  the account bound to that professional, binding a new ``prenom.nom`` one at the first sign-in;
  an unknown or delisted national id is refused with one French sentence (Synapse shows it on its
  SSO error page, ``config/synapse-templates/sso_error.html``);
- Synapse's remote user id is the national id too, so a later sign-in finds the same account even
  if the provider's ``sub`` changes. Later sign-ins do not come here: the module's
  ``check_login_for_spam`` refuses a delisted professional at every login, SSO or not.

Fail-closed: if the service cannot be reached, nobody is signed in (a French "try again later").
"""

from __future__ import annotations

import json
import logging
from typing import Any

from authlib.oidc.core import UserInfo
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from synapse.handlers.oidc import Token, UserAttributeDict
from synapse.handlers.sso import MappingException
from synapse.module_api import ModuleApi, make_deferred_yieldable, run_in_background
from synapse.module_api.errors import ConfigError
from twisted.internet import defer
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

logger = logging.getLogger(__name__)

DEFAULT_CLAIM = "SubjectNameID"

_NO_NATIONAL_ID = (
    "Le fournisseur d'identité n'a pas transmis votre numéro RPPS / ADELI : la connexion n'est pas "
    "possible. Réessayez avec votre carte CPS ou l'application e-CPS ; si cela se reproduit, écrivez "
    "à l'administrateur."
)
_UNAVAILABLE = (
    "L'annuaire des professionnels ne répond pas pour le moment : la connexion n'a pas pu être "
    "vérifiée. Réessayez dans quelques minutes."
)
_TAKEN = (
    "Un compte existe déjà sous l'identifiant prévu pour vous sans vous être rattaché : la connexion "
    "est refusée par sécurité. Écrivez à l'administrateur."
)


class SsoMappingConfig(BaseModel):
    """``user_mapping_provider.config`` of an ``oidc_providers`` entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory_url: str
    directory_secret: SecretStr
    national_id_claim: str = DEFAULT_CLAIM
    reserved_localparts: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)


class DirectoryOidcMapping:
    """Synapse OIDC mapping provider: the verified national id decides the account (see module doc)."""

    def __init__(self, config: SsoMappingConfig, module_api: ModuleApi) -> None:
        self._config = config
        self._api = module_api

    @staticmethod
    def parse_config(config: dict[str, Any]) -> SsoMappingConfig:
        try:
            return SsoMappingConfig.model_validate(config)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"user_mapping_provider.config.{where} : {first['msg']}") from exc

    def national_id(self, userinfo: UserInfo) -> str:
        """The national id claim, upper-cased; ``MappingException`` (French) when absent."""
        value = userinfo.get(self._config.national_id_claim)
        if isinstance(value, list):  # some providers send one-element arrays
            value = value[0] if value else None
        if not isinstance(value, str | int) or not str(value).strip():
            raise MappingException(_NO_NATIONAL_ID)
        return str(value).strip().upper()

    def get_remote_user_id(self, userinfo: UserInfo) -> str:
        """Synapse's key for this identity: the national id, stable across providers' ``sub``."""
        return self.national_id(userinfo)

    async def map_user_attributes(self, userinfo: UserInfo, token: Token, failures: int) -> UserAttributeDict:
        """The bound account (created and bound on the first sign-in), or a French refusal."""
        national_id = self.national_id(userinfo)
        status, body = await self._ask_directory(national_id)
        if status != 200:
            raise MappingException(_refusal_text(status, body))
        answer = json.loads(body)
        localpart = str(answer["localpart"])
        if failures and not answer.get("existing"):
            # Synapse asks again when the localpart we bound is already a Matrix account that is
            # not this professional's: never sign in to (or take over) someone else's account.
            logger.warning("single sign-on: localpart of %s already taken on Synapse", national_id)
            raise MappingException(_TAKEN)
        return UserAttributeDict(
            localpart=localpart,
            confirm_localpart=False,
            display_name=str(answer.get("display_name") or "") or None,
            picture=None,
            emails=[],
        )

    async def get_extra_attributes(self, userinfo: UserInfo, token: Token) -> dict[str, Any]:
        return {}

    async def _ask_directory(self, national_id: str) -> tuple[int, bytes]:
        url = f"{self._config.directory_url}/internal/v1/directory/sso-accounts"
        headers = Headers(
            {
                b"Authorization": [f"Bearer {self._config.directory_secret.get_secret_value()}".encode()],
                b"Content-Type": [b"application/json"],
                b"Accept": [b"application/json"],
            }
        )
        payload = json.dumps(
            {"national_id": national_id, "reserved_localparts": self._config.reserved_localparts}
        ).encode()

        async def post() -> tuple[int, bytes]:
            response = await self._api.http_client.request("POST", url, data=payload, headers=headers)
            body = await make_deferred_yieldable(readBody(response))
            return int(response.code), bytes(body)

        from twisted.internet import reactor

        deferred = run_in_background(post)
        deferred.addTimeout(self._config.timeout_seconds, reactor)
        try:
            return await make_deferred_yieldable(deferred)
        except (defer.TimeoutError, Exception) as exc:  # unreachable: nobody gets in
            logger.warning("single sign-on: directory unreachable (%s)", type(exc).__name__)
            raise MappingException(_UNAVAILABLE) from exc


def _refusal_text(status: int, body: bytes) -> str:
    """The service's French sentence for a 4xx; "try later" for anything else."""
    if 400 <= status < 500 and status not in (401, 404):
        try:
            error = json.loads(body).get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, str) and error:
            return error
    return _UNAVAILABLE
