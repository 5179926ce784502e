"""Render Synapse's configuration for a home from the Jinja2 templates in ``config/``."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
import yaml

from azurezo_cli import logs, turn
from azurezo_cli.home import BOT_LOCALPART, LOOPBACK, NOTICES_LOCALPART, Home, HomeError, write_private

# The templates ship in the repository's config/ (the project runs from its checkout, installed
# in editable mode by the Makefile); AZUREZO_CONFIG_DIR points elsewhere, e.g. in an image.
CONFIG_DIR = Path(os.environ.get("AZUREZO_CONFIG_DIR", Path(__file__).resolve().parent.parent / "config"))

# How long the module trusts a directory answer. Production: an inactive professional loses access
# within 2 x 30 s. Test profile: short, so a test flipping `active` sees the effect in seconds.
CACHE_TTL_SECONDS = {"production": 30, "test": 1}


# The terms of use (Synapse's user_consent): one French file per version, the highest is current.
TERMS_DIR = CONFIG_DIR / "terms"
_VERSION_FILE = re.compile(r"^(\d+(?:\.\d+)*)\.html$")
# French pages Synapse shows during single sign-on (its own are English).
SYNAPSE_TEMPLATES_DIR = CONFIG_DIR / "synapse-templates"


def terms_versions(terms_dir: Path | None = None) -> list[str]:
    """The versions of the terms of use, oldest first (``1.0`` < ``1.1`` < ``2.0``)."""
    found = [
        m.group(1) for p in (terms_dir or TERMS_DIR).glob("*.html") if (m := _VERSION_FILE.match(p.name))
    ]
    return sorted(found, key=lambda v: tuple(int(part) for part in v.split(".")))


def current_terms_version(terms_dir: Path | None = None) -> str:
    """The version professionals must have accepted (the highest file of ``config/terms``)."""
    versions = terms_versions(terms_dir)
    if not versions:
        raise HomeError(
            f"Aucune version des conditions d'utilisation dans {terms_dir or TERMS_DIR} : il faut au "
            "moins un fichier <version>.html (par exemple 1.0.html)."
        )
    return versions[-1]


def terms_source(home: Home) -> Path:
    """Where the instance's terms of use come from: the region's own ``<home>/terms/`` when it holds
    a ``<version>.html``, otherwise AZUREZO's default text (``config/terms``)."""
    own = home.path / "terms"
    return own if terms_versions(own) else TERMS_DIR


def render_consent_templates(home: Home) -> Path:
    """Copy the terms into Synapse's consent template layout and return that directory.

    Synapse reads ``<template_dir>/en/<version>.html`` and ``en/success.html``: its consent page has
    one hard-coded language directory, ``en`` (synapse/rest/consent/consent_resource.py), so our
    French texts go there.
    """
    source = terms_source(home)
    target = home.synapse_dir / "consent"
    language = target / "en"
    language.mkdir(parents=True, exist_ok=True)
    for version in terms_versions(source):
        shutil.copyfile(source / f"{version}.html", language / f"{version}.html")
    success = source / "success.html"
    shutil.copyfile(success if success.exists() else TERMS_DIR / "success.html", language / "success.html")
    return target


def _quote(value: object) -> str:
    """A YAML scalar that means exactly ``value`` (a JSON string is a valid YAML string)."""
    return json.dumps(str(value), ensure_ascii=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(CONFIG_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # YAML, not HTML; values go through the `q` filter
        keep_trailing_newline=True,
    )
    env.filters["q"] = _quote
    return env


def postgres_args(url: str) -> dict[str, str]:
    """Synapse's ``database.args`` (psycopg2 connection keywords) for a libpq URL."""
    parts = urlsplit(url)
    args = {
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "host": parts.hostname or "",
        "port": str(parts.port or 5432),
        "dbname": unquote(parts.path.lstrip("/")),
    }
    return {key: value for key, value in args.items() if value}


def template_context(
    home: Home,
    workers: dict[str, Any] | None = None,
    public_baseurl: str | None = None,
    rtc_focus_url: str | None = None,
) -> dict[str, Any]:
    """The template variables; ``workers`` is ``azurezo_cli.workers.shared_config`` (or None: one
    process, listening on the home's Synapse port itself)."""
    return {
        "profile": home.profile,
        "server_name": home.server_name,
        "public_baseurl": public_baseurl or home.synapse_url + "/",
        "synapse_port": workers["main_port"] if workers else home.synapse_port,
        "workers": workers,
        "rtc_focus_url": rtc_focus_url,
        "turn_uris": turn.turn_uris(home),
        "turn_shared_secret_path": str(turn.secret_path(home)),
        "turn_user_lifetime": turn.TURN_USER_LIFETIME,
        "bind_address": LOOPBACK,
        "federation_peers": list(home.federation_peers),
        "database_path": str(home.synapse_database),
        "postgres_args": postgres_args(home.synapse_database_url) if home.synapse_database_url else None,
        "log_config": str(home.synapse_log_config),
        "media_store": str(home.media_store),
        "signing_key_path": str(home.signing_key_path),
        "secrets": home.secrets,
        "notices_localpart": NOTICES_LOCALPART,
        "service_url": home.service_url,
        "bot_user_id": home.bot_user_id,
        "notices_user_id": home.notices_user_id,
        "cache_ttl_seconds": CACHE_TTL_SECONDS[home.profile],
        "overrides_dir": str(home.synapse_overrides_dir),
        "logs_dir": str(home.logs_dir),
        "level": "INFO",
        "log_format": logs.log_format(),
        "terms": _terms_context(home),
        "sso": _sso_context(home),
    }


def _terms_context(home: Home) -> dict[str, Any] | None:
    if not home.terms_required:
        return None
    return {
        "version": current_terms_version(terms_source(home)),
        "template_dir": str(home.synapse_dir / "consent"),
    }


def _sso_context(home: Home) -> dict[str, Any] | None:
    if home.sso is None:
        return None
    return {
        "idp_id": "psc",  # Synapse names it "oidc-psc" (the auth_provider_id of its logins)
        "name": home.sso.name,
        "issuer": home.sso.issuer,
        "client_id": home.sso.client_id,
        "client_secret": home.sso.client_secret(),
        "scopes": list(home.sso.scopes),
        "claim": home.sso.national_id_claim,
        # A provider on the loopback (tests, a local portal) is plain http: Synapse's discovery
        # check requires https, so it is skipped there only.
        "skip_verification": home.sso.issuer.startswith("http://"),
        "password_login": home.sso.password_login,
        "reserved_localparts": [BOT_LOCALPART, NOTICES_LOCALPART],
        "templates_dir": str(SYNAPSE_TEMPLATES_DIR),
    }


def render_homeserver_yaml(
    home: Home,
    workers: dict[str, Any] | None = None,
    public_baseurl: str | None = None,
    rtc_focus_url: str | None = None,
) -> str:
    """The homeserver.yaml text for ``home``; parsed back once so a template error fails here."""
    context = template_context(home, workers, public_baseurl, rtc_focus_url)
    text = _environment().get_template("homeserver.yaml.j2").render(context)
    parsed = yaml.safe_load(text)
    if not isinstance(parsed, dict) or parsed.get("server_name") != home.server_name:
        raise RuntimeError("config/homeserver.yaml.j2 rendered an unexpected document")
    return text


def render_synapse_config(
    home: Home,
    workers: dict[str, Any] | None = None,
    public_baseurl: str | None = None,
    rtc_focus_url: str | None = None,
) -> Path:
    """Write homeserver.yaml (0600: it holds secrets) and log.config; return homeserver.yaml's path."""
    turn.render_turnserver_conf(home)  # also generates the shared secret Synapse reads
    if home.terms_required:
        render_consent_templates(home)
    text = render_homeserver_yaml(home, workers, public_baseurl, rtc_focus_url)
    write_private(home.synapse_config, text)
    log_text = _environment().get_template("log.config.j2").render(template_context(home))
    yaml.safe_load(log_text)
    write_private(home.synapse_log_config, log_text)
    return home.synapse_config


def synapse_command(home: Home, python: str) -> list[str]:
    """The command line that runs Synapse for ``home`` (with the operator's conf.d overrides)."""
    argv = [python, "-m", "synapse.app.homeserver", "-c", str(home.synapse_config)]
    if any(home.synapse_overrides_dir.glob("*.yaml")):
        argv += ["-c", str(home.synapse_overrides_dir)]
    return argv
