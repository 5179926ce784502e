"""Render Synapse's configuration for a home from the Jinja2 templates in ``config/``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
import yaml

from azurezo_cli import logs, turn
from azurezo_cli.home import LOOPBACK, NOTICES_LOCALPART, Home, write_private

# The templates ship in the repository's config/ (the project runs from its checkout, installed
# in editable mode by the Makefile); AZUREZO_CONFIG_DIR points elsewhere, e.g. in an image.
CONFIG_DIR = Path(os.environ.get("AZUREZO_CONFIG_DIR", Path(__file__).resolve().parent.parent / "config"))

# How long the module trusts a directory answer. Production: an inactive professional loses access
# within 2 x 30 s. Test profile: short, so a test flipping `active` sees the effect in seconds.
CACHE_TTL_SECONDS = {"production": 30, "test": 1}


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
