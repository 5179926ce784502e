"""The module's configuration: parsed once at start-up into a frozen object, or a ConfigError.

WHAT THE RENDERED homeserver.yaml MUST CONTAIN (contract with azurezo_cli, see docs/ARCHITECTURE.md):

    max_upload_size: 10M                     # == max_upload_bytes below; checked at start-up
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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from synapse.module_api.errors import ConfigError

DEFAULT_CACHE_TTL_SECONDS = 30.0
DEFAULT_DIRECTORY_TIMEOUT_SECONDS = 2.0
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_CACHE_MAX_ENTRIES = 50_000

_USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d{1,5})?$")
_KNOWN_KEYS = frozenset(
    {
        "directory_url",
        "directory_secret",
        "service_accounts",
        "cache_ttl_seconds",
        "directory_timeout_seconds",
        "max_upload_bytes",
        "cache_max_entries",
    }
)
_PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "xxx", "todo"})


@dataclass(frozen=True, slots=True)
class ModuleConfig:
    """Validated settings of ``AzurezoModule``.

    An inactive professional loses access within ``2 * cache_ttl_seconds`` plus one directory
    timeout: answers younger than the TTL are used as they are, answers up to twice the TTL are
    used while a refresh runs in the background, older ones are refreshed before answering.
    """

    directory_url: str
    directory_secret: str
    service_accounts: frozenset[str]
    cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS
    directory_timeout_seconds: float = DEFAULT_DIRECTORY_TIMEOUT_SECONDS
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES


def _path(key: str) -> tuple[str, ...]:
    return ("modules", "synapse_module.AzurezoModule", "config", key)


def _number(raw: Mapping[str, Any], key: str, default: float, *, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"`{key}` must be a number of seconds", _path(key))
    if not low < value <= high:
        raise ConfigError(f"`{key}` must be greater than {low:g} and at most {high:g}", _path(key))
    return float(value)


def parse_config(raw: Any) -> ModuleConfig:
    """Validate the ``config:`` mapping of the module; raise ``ConfigError`` naming the bad key."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the module's `config` must be a mapping", ("modules",))
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key `{unknown[0]}` (known: {', '.join(sorted(_KNOWN_KEYS))})",
            _path(str(unknown[0])),
        )

    url = raw.get("directory_url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "`directory_url` is required (the coordination service's URL)", _path("directory_url")
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "`directory_url` must be an http(s) URL such as http://127.0.0.1:8080", _path("directory_url")
        )

    secret = raw.get("directory_secret")
    if not isinstance(secret, str) or secret.strip().lower() in _PLACEHOLDER_SECRETS:
        raise ConfigError(
            "`directory_secret` is required and must not be a placeholder", _path("directory_secret")
        )
    if len(secret) < 32:
        raise ConfigError("`directory_secret` must be at least 32 characters", _path("directory_secret"))

    accounts = raw.get("service_accounts", [])
    if not isinstance(accounts, list | tuple) or not all(isinstance(a, str) for a in accounts):
        raise ConfigError("`service_accounts` must be a list of Matrix IDs", _path("service_accounts"))
    for account in accounts:
        if not _USER_ID.match(account):
            raise ConfigError(
                f"`service_accounts`: {account!r} is not a Matrix user ID like @azurezo-bot:example.org",
                _path("service_accounts"),
            )

    ttl = _number(raw, "cache_ttl_seconds", DEFAULT_CACHE_TTL_SECONDS, low=0, high=30)
    timeout = _number(raw, "directory_timeout_seconds", DEFAULT_DIRECTORY_TIMEOUT_SECONDS, low=0, high=10)

    max_upload = raw.get("max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES)
    if isinstance(max_upload, bool) or not isinstance(max_upload, int) or max_upload <= 0:
        raise ConfigError(
            "`max_upload_bytes` must be a positive whole number of bytes", _path("max_upload_bytes")
        )

    max_entries = raw.get("cache_max_entries", DEFAULT_CACHE_MAX_ENTRIES)
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 100:
        raise ConfigError(
            "`cache_max_entries` must be a whole number, at least 100", _path("cache_max_entries")
        )

    return ModuleConfig(
        directory_url=url.strip().rstrip("/"),
        directory_secret=secret,
        service_accounts=frozenset(accounts),
        cache_ttl_seconds=ttl,
        directory_timeout_seconds=timeout,
        max_upload_bytes=max_upload,
        cache_max_entries=max_entries,
    )


def check_upload_limit(config: ModuleConfig, synapse_max_upload_size: int | None) -> None:
    """Refuse to start when ``max_upload_bytes`` and Synapse's ``max_upload_size`` disagree.

    Synapse refuses bigger bodies itself (413) before the module sees them; if the two differed, a
    professional would get two different limits depending on the path.
    """
    if synapse_max_upload_size is None:
        return
    if synapse_max_upload_size != config.max_upload_bytes:
        raise ConfigError(
            f"`max_upload_bytes` ({config.max_upload_bytes}) differs from Synapse's "
            f"`max_upload_size` ({synapse_max_upload_size}): set both to the same value",
            _path("max_upload_bytes"),
        )
