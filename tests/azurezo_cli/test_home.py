"""The home directory: generated secrets, file modes, idempotent re-initialisation."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from signedjson.key import read_signing_keys
from sqlalchemy.engine import make_url

from azurezo_cli.home import HomeError, init_home, load_home, postgres_database_urls
from coordination.settings import Settings

PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "xxx", "todo"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_init_generates_strong_distinct_secrets_in_a_private_file(tmp_path: Path) -> None:
    home, created = init_home(tmp_path / "var")

    assert created
    assert mode(home.settings_file) == 0o600
    assert mode(home.path) == 0o700
    values = [
        home.secrets.registration_shared_secret,
        home.secrets.macaroon_secret_key,
        home.secrets.form_secret,
        home.secrets.internal_api_secret,
        home.bot_password,
    ]
    assert len(set(values)) == len(values)
    for value in values:
        assert value.lower() not in PLACEHOLDERS
        assert len(value) >= 24
    on_disk = json.loads(home.settings_file.read_text())
    assert on_disk["secrets"]["registration_shared_secret"] == values[0]


def test_two_homes_never_share_a_secret_or_signing_key(tmp_path: Path) -> None:
    one, _ = init_home(tmp_path / "one")
    two, _ = init_home(tmp_path / "two")

    assert one.secrets.registration_shared_secret != two.secrets.registration_shared_secret
    assert one.secrets.macaroon_secret_key != two.secrets.macaroon_secret_key
    assert one.secrets.form_secret != two.secrets.form_secret
    assert one.secrets.internal_api_secret != two.secrets.internal_api_secret
    assert one.bot_password != two.bot_password
    assert one.signing_key_path.read_text() != two.signing_key_path.read_text()


def test_signing_key_is_a_private_ed25519_key_synapse_can_read(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", server_name="soins.exemple.fr")

    assert home.signing_key_path.name == "soins.exemple.fr.signing.key"
    assert mode(home.signing_key_path) == 0o600
    with home.signing_key_path.open() as fh:
        keys = read_signing_keys(fh)
    assert len(keys) == 1
    assert keys[0].alg == "ed25519"


def test_second_init_reuses_everything(tmp_path: Path) -> None:
    first, _ = init_home(tmp_path / "var", server_name="a.test", synapse_port=18008)
    key = first.signing_key_path.read_text()

    again, created = init_home(tmp_path / "var")

    assert not created
    assert again == first
    assert again.signing_key_path.read_text() == key


def test_explicit_ports_on_a_later_start_are_kept(tmp_path: Path) -> None:
    init_home(tmp_path / "var")
    home, _ = init_home(tmp_path / "var", synapse_port=18008, service_port=18080)

    assert (home.synapse_port, home.service_port) == (18008, 18080)
    assert load_home(tmp_path / "var").synapse_port == 18008
    assert home.synapse_url == "http://127.0.0.1:18008"


def test_server_name_cannot_change_after_creation(tmp_path: Path) -> None:
    init_home(tmp_path / "var", server_name="a.test")

    with pytest.raises(HomeError, match="ne change pas"):
        init_home(tmp_path / "var", server_name="b.test")


@pytest.mark.parametrize("name", ["", "has space", "-bad.fr", "x" * 300, "a.fr:port"])
def test_invalid_server_names_are_refused_in_french(tmp_path: Path, name: str) -> None:
    with pytest.raises(HomeError, match="Nom de serveur invalide"):
        init_home(tmp_path / "var", server_name=name)


def test_the_two_processes_cannot_share_a_port(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="partager le port"):
        init_home(tmp_path / "var", synapse_port=9000, service_port=9000)


def test_load_home_without_init_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match=r"azurezo --home .* up"):
        load_home(tmp_path / "nothing")


def test_a_tampered_secret_is_refused(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    raw = json.loads(home.settings_file.read_text())
    raw["secrets"]["internal_api_secret"] = "changeme"
    home.settings_file.write_text(json.dumps(raw))

    with pytest.raises(HomeError, match="internal_api_secret"):
        load_home(home.path)


def test_federation_peers_are_validated(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    raw = json.loads(home.settings_file.read_text())
    raw["federation_peers"] = "autre.fr"
    home.settings_file.write_text(json.dumps(raw))

    with pytest.raises(HomeError, match="federation_peers"):
        load_home(home.path)


def test_service_settings_point_at_the_home(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", server_name="a.test", synapse_port=18008)

    settings = home.service_settings()

    assert isinstance(settings, Settings)
    assert settings.database_url == (f"sqlite+aiosqlite:///{home.path}/coordination/coordination.db")
    assert settings.synapse_url == "http://127.0.0.1:18008"
    assert settings.internal_api_secret == home.secrets.internal_api_secret
    assert settings.documents_dir == home.path / "coordination" / "documents"
    assert settings.bot_user_id == "@azurezo-bot:a.test"
    assert settings.server_name == "a.test"


def edit_home_file(home_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    settings_file = home_path / "azurezo.json"
    raw = json.loads(settings_file.read_text())
    change(raw)
    settings_file.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda raw: raw.update(federation_peer=[]), "federation_peer", "inconnue"),
        (lambda raw: raw.pop("bot_password"), "bot_password", "manque"),
        (lambda raw: raw.update(synapse_port="8008"), "synapse_port", "entier entre 1 et 65535"),
        (lambda raw: raw.update(service_port=70000), "service_port", "entier entre 1 et 65535"),
        (lambda raw: raw.update(profile="dev"), "profile", "production ou test"),
        (lambda raw: raw.update(server_name="has space"), "server_name", "nom de domaine"),
        (lambda raw: raw.update(format=2), "format", "autre version"),
        (lambda raw: raw["secrets"].update(extra="x" * 40), "secrets.extra", "inconnue"),
        (lambda raw: raw.update(synapse_database_url="mysql://u@h/db"), "synapse_database_url", "PostgreSQL"),
        (lambda raw: raw.update(demo_enabled="oui"), "demo_enabled", "true ou false"),
    ],
)
def test_a_damaged_home_file_is_refused_in_french_naming_the_key(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], key: str, words: str
) -> None:
    home, _ = init_home(tmp_path / "var")
    edit_home_file(home.path, change)

    with pytest.raises(HomeError) as caught:
        load_home(home.path)

    assert f"« {key} »" in str(caught.value)
    assert words in str(caught.value)
    assert home.secrets.registration_shared_secret not in str(caught.value)


def test_a_home_written_by_an_older_version_still_loads(tmp_path: Path) -> None:
    """The first home format had no synapse_database_url nor demo_enabled (commit d711c37)."""
    home, _ = init_home(tmp_path / "var", server_name="ancien.test")
    edit_home_file(home.path, lambda raw: [raw.pop(k) for k in ("synapse_database_url", "demo_enabled")])
    edit_home_file(home.path, lambda raw: raw.update(federation_peers=None, demo_passwords=None))

    loaded = load_home(home.path)

    assert loaded.synapse_database_url is None
    assert loaded.demo_enabled is True
    assert loaded.federation_peers == ()
    assert loaded.demo_passwords == {}
    assert loaded.secrets == home.secrets


def test_a_home_never_shows_its_secrets_in_its_repr(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    home = replace(home, demo_passwords={"a": "demo-password-value"})

    text = repr(home)

    for secret in (home.secrets.registration_shared_secret, home.bot_password, "demo-password-value"):
        assert secret not in text


# A password with the characters URLs reserve, percent-encoded as libpq and SQLAlchemy expect.
PASSWORD = "p@ss:w/rd%?#"
ENCODED = quote(PASSWORD, safe="")


def test_postgres_urls_keep_a_percent_encoded_password_whole() -> None:
    _, synapse_url, _, service_url = postgres_database_urls(
        f"postgresql://azurezo:{ENCODED}@db.exemple.fr:5432/", "a.test"
    )

    for url in (synapse_url, service_url):
        parsed = make_url(url)
        assert parsed.password == PASSWORD
        assert (parsed.username, parsed.host, parsed.port) == ("azurezo", "db.exemple.fr", 5432)
    assert make_url(service_url).drivername == "postgresql+asyncpg"


@pytest.mark.parametrize(
    "call",
    [
        lambda: postgres_database_urls(f"postgresql://azurezo:{ENCODED}@db.exemple.fr:5432/base", "a.test"),
        lambda: postgres_database_urls(f"mysql://azurezo:{ENCODED}@db.exemple.fr/", "a.test"),
        lambda: init_home(Path("/nonexistent/never"), synapse_database_url=f"mysql://u:{ENCODED}@h/db"),
    ],
)
def test_messages_never_show_a_percent_encoded_password(call: Callable[[], object]) -> None:
    with pytest.raises(HomeError) as caught:
        call()

    message = str(caught.value)
    assert "***" in message
    for form in (PASSWORD, ENCODED, "p@ss", "p%40ss"):
        assert form not in message
