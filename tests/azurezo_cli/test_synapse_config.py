"""homeserver.yaml rendered from config/homeserver.yaml.j2, checked by Synapse's own config parser."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from synapse.config.homeserver import HomeServerConfig

from azurezo_cli.home import Home, init_home
from azurezo_cli.synapse_config import render_synapse_config, synapse_command


def rendered(home: Home) -> dict[str, Any]:
    render_synapse_config(home)
    data = yaml.safe_load(home.synapse_config.read_text())
    assert isinstance(data, dict)
    return data


def parse_with_synapse(home: Home, tmp_path: Path) -> HomeServerConfig:
    """Load the rendered config with Synapse's parser (minus our module, which is tested apart)."""
    data = rendered(home)
    data.pop("modules")
    path = tmp_path / "without-module.yaml"
    path.write_text(yaml.safe_dump(data))
    return HomeServerConfig.load_config("test", ["-c", str(path)])


def set_peers(home: Home, peers: list[str]) -> Home:
    from azurezo_cli.home import load_home

    raw = json.loads(home.settings_file.read_text())
    raw["federation_peers"] = peers
    home.settings_file.write_text(json.dumps(raw))
    return load_home(home.path)


def test_production_config_is_valid_for_synapse_and_closed(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", server_name="soins.exemple.fr", synapse_port=18008)

    config = parse_with_synapse(home, tmp_path)

    assert config.server.server_name == "soins.exemple.fr"
    assert config.registration.enable_registration is False
    assert config.media.max_upload_size == 12800 * 1024  # above the module's limit (French refusals)
    assert config.key.key_servers == []
    # Federation off: an empty whitelist refuses every remote server, and no listener serves it.
    assert config.federation.federation_domain_whitelist == {}
    assert not config.federation.is_domain_allowed_according_to_federation_whitelist("matrix.org")
    [listener] = config.server.listeners
    assert listener.port == 18008
    assert listener.bind_addresses == ["127.0.0.1"]
    assert listener.http_options is not None
    names = {name for res in listener.http_options.resources for name in res.names}
    # openid serves only /_matrix/federation/v1/openid/userinfo (the dashboard's Element widget);
    # consent, the terms of use page (on in production).
    assert names == {"client", "openid", "consent"}
    assert config.consent.user_consent_version == "1.0"
    assert config.consent.block_events_without_consent_error is not None
    assert "acceptez les conditions" in config.consent.block_events_without_consent_error
    assert config.servernotices.server_notices_mxid == "@notices:soins.exemple.fr"
    assert config.registration.registration_shared_secret == (home.secrets.registration_shared_secret)
    assert config.key.macaroon_secret_key == home.secrets.macaroon_secret_key.encode()
    assert config.database.databases[0].config["name"] == "sqlite3"
    # Production keeps login rate limits a person would never hit, but a password guesser would.
    assert config.ratelimiting.rc_login_account.burst_count <= 10


@pytest.mark.parametrize("profile", ["production", "test"])
def test_presence_is_off_and_an_operator_can_turn_it_back_on(tmp_path: Path, profile: str) -> None:
    """Presence wakes every /sync of every room-mate at each change (the bot's in all care rooms):
    off by default (bench/README.md, load run H); a conf.d file read after the config brings it back."""
    home, _ = init_home(tmp_path / "var", profile=profile)

    config = parse_with_synapse(home, tmp_path)

    assert config.server.presence_enabled is False
    assert config.server.track_presence is False
    (home.synapse_overrides_dir / "presence.yaml").write_text("presence: {enabled: true}\n")
    with_override = HomeServerConfig.load_config(
        "test", ["-c", str(tmp_path / "without-module.yaml"), "-c", str(home.synapse_overrides_dir)]
    )
    assert with_override.server.presence_enabled is True


def test_listed_peers_open_federation_to_them_only(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    home = set_peers(home, ["autre-region.exemple.fr"])

    config = parse_with_synapse(home, tmp_path)

    fed = config.federation
    assert fed.is_domain_allowed_according_to_federation_whitelist("autre-region.exemple.fr")
    assert not fed.is_domain_allowed_according_to_federation_whitelist("matrix.org")
    [listener] = config.server.listeners
    assert listener.http_options is not None
    names = {name for res in listener.http_options.resources for name in res.names}
    assert names == {"client", "openid", "consent", "federation"}


def test_test_profile_relaxes_rate_limits_and_module_cache(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", profile="test")

    config = parse_with_synapse(home, tmp_path)
    module = rendered(home)["modules"][0]

    assert config.ratelimiting.rc_login_account.burst_count >= 1000
    assert config.ratelimiting.rc_message.per_second >= 1000
    assert config.ratelimiting.rc_registration.burst_count >= 1000
    assert config.ratelimiting.rc_joins_local.burst_count >= 1000
    assert config.ratelimiting.rc_invites_per_user.burst_count >= 1000
    assert module["config"]["cache_ttl_seconds"] <= 2


def test_the_bot_escapes_the_production_message_rate(tmp_path: Path) -> None:
    """The module's rate callback must name the limiter as Synapse does: ``rc_message`` when the
    config has that section (ours always does); it matched only the old ``rc_messages``. (Synapse
    1.163 consults the callback for membership limiters only: the bot's message rate itself is set
    in Synapse's override table, tests/integration/test_module_ratelimit.py.)"""
    from synapse_module.config import parse_config
    from synapse_module.rules import SERVICE_MESSAGE_RATE, service_rate_override

    home, _ = init_home(tmp_path / "var", server_name="soins.exemple.fr")
    config = parse_with_synapse(home, tmp_path)
    module = parse_config(rendered(home)["modules"][0]["config"])
    # The name Synapse's event-sending limiter passes to the module's callback (``Ratelimiter``
    # takes it from its settings' key).
    name = config.ratelimiting.rc_message.key

    assert config.ratelimiting.rc_message.per_second < 1  # production: people are limited
    assert service_rate_override(home.bot_user_id, name, service_accounts=module.service_accounts) == (
        SERVICE_MESSAGE_RATE
    )
    assert (
        service_rate_override("@jeanne:soins.exemple.fr", name, service_accounts=module.service_accounts)
        is None
    )


def test_module_config_follows_the_architecture_contract(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", server_name="a.test", service_port=18080)

    [module] = rendered(home)["modules"]

    assert module["module"] == "synapse_module.AzurezoModule"
    assert module["config"] == {
        "directory_url": "http://127.0.0.1:18080",
        "directory_secret": home.secrets.internal_api_secret,
        "service_accounts": ["@azurezo-bot:a.test", "@notices:a.test"],
        "cache_ttl_seconds": 30,
        "directory_timeout_seconds": 2,
        "max_upload_bytes": 10485760,
    }


def test_rendered_files_are_private(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    render_synapse_config(home)

    assert stat.S_IMODE(home.synapse_config.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.synapse_log_config.stat().st_mode) == 0o600
    assert yaml.safe_load(home.synapse_log_config.read_text())["version"] == 1


def test_operator_overrides_are_passed_to_synapse_when_present(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    assert synapse_command(home, "python")[-2:] == ["-c", str(home.synapse_config)]

    (home.synapse_overrides_dir / "turn.yaml").write_text("turn_uris: []\n")

    assert synapse_command(home, "python")[-2:] == ["-c", str(home.synapse_overrides_dir)]


@pytest.mark.parametrize("profile", ["production", "test"])
def test_rendering_twice_gives_the_same_file(tmp_path: Path, profile: str) -> None:
    home, _ = init_home(tmp_path / "var", profile=profile)  # type: ignore[arg-type]
    render_synapse_config(home)
    first = home.synapse_config.read_text()
    render_synapse_config(home)
    assert home.synapse_config.read_text() == first
