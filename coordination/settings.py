"""Service settings: parsed once, at the edge, into a frozen object that fails fast and names the bad key."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that must never reach production as a secret (copied from a doc, left from a template...).
_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password", "xxx", "todo"}


class Settings(BaseSettings):
    """Settings of the coordination service.

    Read from the environment (prefix ``AZUREZO_``) or built by ``azurezo_cli.home`` from the home
    directory. Secrets have no default: they are generated at ``azurezo`` init.
    """

    model_config = SettingsConfigDict(env_prefix="AZUREZO_", extra="forbid", frozen=True)

    database_url: str = Field(
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://..."
    )
    synapse_url: str = Field(description="Base URL of our Synapse, e.g. http://127.0.0.1:8008")
    server_name: str = Field(description="Matrix server name, e.g. azurezo.local")
    internal_api_secret: str = Field(
        min_length=32, description="Shared with the Synapse module for /internal/v1"
    )
    documents_dir: Path = Field(description="Content-addressed store for patient documents")
    bot_user_id: str | None = Field(
        default=None, description="Matrix ID of the coordination bot, which may act on behalf of members"
    )
    whoami_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=5,
        description="How long a token Synapse vouched for is trusted without asking again: a logged-out "
        "token works here at most this long",
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="SQLite only: how long a request waits for the write lock (a directory import holds "
        "it for seconds) before answering 503 with Retry-After",
    )
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    metrics_dir: Path | None = Field(
        default=None, description="Where the directory importer records its last run for GET /metrics"
    )

    # --- accounts (issue 13): sign-up requests, activation e-mails -------------------------------
    public_url: str | None = Field(
        default=None,
        description="Public base URL of this service for links in e-mails (default: its own address)",
    )
    registration_shared_secret: str | None = Field(
        default=None, description="Synapse's registration_shared_secret: activation registers the account"
    )
    signup_trusted_domains: tuple[str, ...] = Field(
        default=(),
        description="E-mail domains whose sign-up requests are approved without an administrator "
        "(e.g. mssante.fr); the directory match is always required",
    )
    signup_auto_approve_structure_domain: bool = Field(
        default=False,
        description="Also approve when the e-mail's domain is the chosen structure's (directory e-mail)",
    )
    smtp_host: str | None = Field(default=None, description="No SMTP: the link is shown to the administrator")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_sender: str = "AZUREZO <ne-pas-repondre@azurezo.local>"
    evaluation_forms_dir: Path | None = Field(
        default=None,
        description="Extra evaluation forms (FHIR Questionnaire JSON files), beside the built-in ones",
    )

    # --- dashboard (/app) -----------------------------------------------------------------------
    dashboard_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="A dashboard session unused this long is signed out"
    )
    dashboard_absolute_hours: float = Field(
        default=12, gt=0, le=7 * 24, description="A dashboard session is signed out this long after sign-in"
    )
    synapse_public_url: str | None = Field(
        default=None,
        description="Synapse as the professionals' browsers reach it (SSO redirects); default synapse_url",
    )
    widget_frame_ancestors: str = Field(
        default="https: http://127.0.0.1:* http://localhost:*",
        pattern=r"^[A-Za-z0-9:/*.\-' ]{1,500}$",
        description="CSP frame-ancestors of the Element widget page (Element's origin in production)",
    )

    @field_validator("internal_api_secret")
    @classmethod
    def _refuse_placeholder(cls, value: str) -> str:
        if value.strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("placeholder secret refused: generate one with `azurezo` init")
        return value

    @field_validator("synapse_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")
