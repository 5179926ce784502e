"""parse_config: a frozen config from a valid mapping; a ConfigError naming the key otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from synapse.module_api.errors import ConfigError

from synapse_module import AzurezoModule
from synapse_module.config import ModuleConfig, check_upload_limit, parse_config

SECRET = "s" * 48


def valid(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "directory_url": "http://127.0.0.1:8080/",
        "directory_secret": SECRET,
        "service_accounts": ["@azurezo-bot:azurezo.test", "@notices:azurezo.test"],
    }
    raw.update(overrides)
    return raw


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(valid())
    assert config == ModuleConfig(
        directory_url="http://127.0.0.1:8080",
        directory_secret=SecretStr(SECRET),
        service_accounts=frozenset({"@azurezo-bot:azurezo.test", "@notices:azurezo.test"}),
        cache_ttl_seconds=30.0,
        directory_timeout_seconds=2.0,
        max_upload_bytes=10_485_760,
        cache_max_entries=50_000,
    )
    # The default TTL keeps the product's promise: inactive -> no access within 60 s.
    assert 2 * config.cache_ttl_seconds <= 60
    with pytest.raises(ValidationError):
        config.cache_ttl_seconds = 1  # type: ignore[misc]


def test_secret_is_never_shown_in_the_config_repr() -> None:
    config = parse_config(valid())
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert config.directory_secret.get_secret_value() == SECRET


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(valid(directory_urll="http://x"))
    assert "unknown key `directory_urll`" in excinfo.value.msg
    assert "directory_url" in excinfo.value.msg.split("known:")[1]


def test_module_class_exposes_parse_config() -> None:
    assert AzurezoModule.parse_config(valid(cache_ttl_seconds=1)).cache_ttl_seconds == 1.0


def test_every_key_can_be_set() -> None:
    config = parse_config(
        valid(
            cache_ttl_seconds=5,
            directory_timeout_seconds=0.5,
            max_upload_bytes=1024,
            cache_max_entries=1000,
            service_accounts=[],
        )
    )
    assert (config.cache_ttl_seconds, config.directory_timeout_seconds) == (5.0, 0.5)
    assert (config.max_upload_bytes, config.cache_max_entries) == (1024, 1000)
    assert config.service_accounts == frozenset()


BAD: list[tuple[str, dict[str, Any]]] = [
    ("directory_url", {"directory_url": None}),
    ("directory_url", {"directory_url": ""}),
    ("directory_url", {"directory_url": "ftp://dir.example"}),
    ("directory_url", {"directory_url": "127.0.0.1:8080"}),
    ("directory_url", {"directory_url": "http://h/?x=1"}),
    ("directory_secret", {"directory_secret": None}),
    ("directory_secret", {"directory_secret": "changeme"}),
    ("directory_secret", {"directory_secret": "short"}),
    ("directory_secret", {"directory_secret": 12345}),
    ("service_accounts", {"service_accounts": "@bot:azurezo.test"}),
    ("service_accounts", {"service_accounts": [42]}),
    ("service_accounts", {"service_accounts": ["azurezo-bot"]}),
    ("service_accounts", {"service_accounts": ["@Bot With Spaces:azurezo.test"]}),
    ("cache_ttl_seconds", {"cache_ttl_seconds": 0}),
    ("cache_ttl_seconds", {"cache_ttl_seconds": -1}),
    ("cache_ttl_seconds", {"cache_ttl_seconds": 31}),  # would break the 60 s promise
    ("cache_ttl_seconds", {"cache_ttl_seconds": "30"}),
    ("cache_ttl_seconds", {"cache_ttl_seconds": True}),
    ("directory_timeout_seconds", {"directory_timeout_seconds": 0}),
    ("directory_timeout_seconds", {"directory_timeout_seconds": 11}),
    ("directory_timeout_seconds", {"directory_timeout_seconds": None}),
    ("max_upload_bytes", {"max_upload_bytes": 0}),
    ("max_upload_bytes", {"max_upload_bytes": "10M"}),
    ("max_upload_bytes", {"max_upload_bytes": 1.5}),
    ("cache_max_entries", {"cache_max_entries": 10}),
    ("cache_max_entries", {"cache_max_entries": "many"}),
    ("directory_urll", {"directory_urll": "http://x"}),
]


@pytest.mark.parametrize(("key", "overrides"), BAD, ids=[f"{k}={v}" for k, v in BAD])
def test_bad_values_fail_naming_the_key(key: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(valid(**overrides))
    assert f"`{key}`" in excinfo.value.msg
    assert excinfo.value.path is not None and excinfo.value.path[-1] == key


def test_missing_required_keys_are_named() -> None:
    for key in ("directory_url", "directory_secret"):
        raw = valid()
        del raw[key]
        with pytest.raises(ConfigError, match=key):
            parse_config(raw)


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError):
        parse_config(["directory_url"])


def test_synapse_upload_limit_must_be_above_the_module_limit() -> None:
    config = parse_config(valid())
    check_upload_limit(config, 12800 * 1024)
    check_upload_limit(config, None)  # not readable: nothing to compare
    for synapse_limit in (10 * 1024 * 1024, 5 * 1024 * 1024):
        with pytest.raises(ConfigError, match="max_upload_size") as excinfo:
            check_upload_limit(config, synapse_limit)
        assert "10485760" in excinfo.value.msg and str(synapse_limit) in excinfo.value.msg
