"""The module's configuration: parsed once at start-up into a frozen object, or a ConfigError.

WHAT THE RENDERED homeserver.yaml MUST CONTAIN (contract with azurezo_cli, see docs/ARCHITECTURE.md):

    max_upload_size: 12800K                  # > max_upload_bytes below; checked at start-up
    modules:
      - module: synapse_module.AzurezoModule
        config:
          directory_url: "http://127.0.0.1:<service port>"
          directory_secret: "<internal_api_secret of the coordination service>"
          service_accounts: ["@azurezo-bot:<server>", "@<server_notices localpart>:<server>"]
          cache_ttl_seconds: 30              # test profile: 1
          directory_timeout_seconds: 2
          max_upload_bytes: 10485760

The server-notices user MUST be listed in ``service_accounts``: Synapse registers it through the
same registration check as everyone else, and it sends invites.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails
from synapse.module_api.errors import ConfigError

DEFAULT_CACHE_TTL_SECONDS = 30.0
DEFAULT_DIRECTORY_TIMEOUT_SECONDS = 2.0
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_CACHE_MAX_ENTRIES = 50_000

_USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d{1,5})?$")
_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "xxx", "todo"})


class ModuleConfig(BaseModel):
    """Validated settings of ``AzurezoModule``.

    An inactive professional loses access within ``2 * cache_ttl_seconds`` plus one directory
    timeout: answers younger than the TTL are used as they are, answers up to twice the TTL are
    used while a refresh runs in the background, older ones are refreshed before answering.
    """

    # strict: YAML's "30" or `true` is not a number of seconds; frozen: parsed once, never changed.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    directory_url: str
    directory_secret: SecretStr
    service_accounts: Annotated[frozenset[str], Field(strict=False)] = frozenset()
    cache_ttl_seconds: Annotated[float, Field(gt=0, le=30)] = DEFAULT_CACHE_TTL_SECONDS
    directory_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = DEFAULT_DIRECTORY_TIMEOUT_SECONDS
    max_upload_bytes: Annotated[int, Field(gt=0)] = DEFAULT_MAX_UPLOAD_BYTES
    cache_max_entries: Annotated[int, Field(ge=100)] = DEFAULT_CACHE_MAX_ENTRIES
    # False when single sign-on is the only way in (`azurezo init --no-password-login`): password
    # logins are refused but for the service accounts (the bot keeps its password).
    password_login: bool = True

    @field_validator("directory_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not _URL.match(value.strip()):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8080 (no query)")
        return value.strip().rstrip("/")

    @field_validator("directory_secret")
    @classmethod
    def _real_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret.strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("must not be a placeholder")
        if len(secret) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("service_accounts", mode="before")
    @classmethod
    def _list_of_user_ids(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple | frozenset) or not all(isinstance(a, str) for a in value):
            raise ValueError("must be a list of Matrix IDs")
        for account in value:
            if not _USER_ID.match(account):
                raise ValueError(f"{account!r} is not a Matrix user ID like @azurezo-bot:example.org")
        return frozenset(value)


def _path(key: str) -> tuple[str, ...]:
    return ("modules", "synapse_module.AzurezoModule", "config", key)


def _config_error(error: ErrorDetails) -> ConfigError:
    key = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        known = ", ".join(ModuleConfig.model_fields)
        return ConfigError(f"unknown key `{key}` (known: {known})", _path(key))
    if error["type"] == "missing":
        return ConfigError(f"`{key}` is required", _path(key))
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigError(f"`{key}`: {message}", _path(key))


def parse_config(raw: Any) -> ModuleConfig:
    """Validate the ``config:`` mapping of the module; raise ``ConfigError`` naming the bad key."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the module's `config` must be a mapping", ("modules",))
    try:
        return ModuleConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise _config_error(exc.errors()[0]) from None


def check_upload_limit(config: ModuleConfig, synapse_max_upload_size: int | None) -> None:
    """Refuse to start unless Synapse's ``max_upload_size`` is above ``max_upload_bytes``.

    The module enforces the product's limit itself, in French (``is_user_allowed_to_upload_media_of_
    size``). Synapse checks its own ``max_upload_size`` first and answers in English ("Upload request
    body is too large"), so it must be higher, or a professional over the limit would read English.
    """
    if synapse_max_upload_size is None:
        return
    if synapse_max_upload_size <= config.max_upload_bytes:
        raise ConfigError(
            f"Synapse's `max_upload_size` ({synapse_max_upload_size}) must be greater than "
            f"`max_upload_bytes` ({config.max_upload_bytes}), so that the module, not Synapse, "
            "refuses larger uploads (12800K, Synapse's own request size cap, is the expected value)",
            _path("max_upload_bytes"),
        )
