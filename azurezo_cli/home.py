"""The home directory (``--home``, default ``./var``): layout, generated secrets, instance settings.

Everything an instance needs to run lives under its home, written once at first start
(``init_home``) and read back by every command (``load_home``)::

    azurezo.json                     instance settings + generated secrets (mode 0600)
    synapse/homeserver.yaml          rendered from config/homeserver.yaml.j2 at every start
    synapse/log.config
    synapse/<server_name>.signing.key
    synapse/homeserver.db            Synapse's SQLite database (unless synapse_database_url is set)
    synapse/media_store/
    synapse/conf.d/                  operator overrides, read after homeserver.yaml
    coordination/coordination.db     the service's SQLite database (unless database_url is set)
    coordination/documents/
    logs/                            one log file per process started by ``azurezo up``
    bot/                             the coordination bot's device, token, crypto store, keys (0700)

Secrets come from ``secrets`` and are never defaulted: a home is the only place they exist.
azurezo.json is parsed once by the frozen pydantic model ``HomeFile`` (unknown keys refused, secrets
as ``SecretStr``; every error a French ``HomeError`` naming the key) into the ``Home`` the rest of
the package uses; a ``Home``'s repr never shows a secret.

PostgreSQL (the production choice): azurezo.json ``synapse_database_url`` (a libpq URL,
``postgresql://user:password@host:5432/dbname``) and ``database_url`` (the service's async
SQLAlchemy URL, ``postgresql+asyncpg://...``). ``azurezo init/up --postgres URL`` fills both and
creates the two databases (``postgres_database_urls``, ``create_postgres_database``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from coordination.settings import Settings

Profile = Literal["production", "test"]

HOME_FILE = "azurezo.json"
HOME_FORMAT = 1
DEFAULT_SERVER_NAME = "azurezo.local"
DEFAULT_SYNAPSE_PORT = 8008
DEFAULT_SERVICE_PORT = 8080
DEFAULT_BOT_PORT = 8090  # the bot's loopback health endpoint
DEFAULT_TURN_PORT = 3478  # coturn (STUN/TURN, UDP and TCP)
BOT_LOCALPART = "azurezo-bot"
NOTICES_LOCALPART = "notices"
LOOPBACK = "127.0.0.1"

# A Matrix server name: a DNS name or IPv4 address, optionally with a port (spec "Server names").
_SERVER_NAME = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$")
_SECRET_NAMES = (
    "registration_shared_secret",
    "macaroon_secret_key",
    "form_secret",
    "internal_api_secret",
)


class HomeError(Exception):
    """A home that cannot be created or read. The message is French and says what to do."""


def new_secret() -> str:
    """A fresh 384-bit URL-safe secret."""
    return secrets.token_urlsafe(48)


def new_password() -> str:
    """A strong generated password (24 characters, letters and digits: easy to copy from a terminal)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


@dataclass(frozen=True)
class Secrets:
    # repr=False: a Home printed in a traceback or a log never shows a secret.
    registration_shared_secret: str = field(repr=False)
    macaroon_secret_key: str = field(repr=False)
    form_secret: str = field(repr=False)
    internal_api_secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> Secrets:
        return cls(**{name: new_secret() for name in _SECRET_NAMES})


@dataclass(frozen=True)
class Sso:
    """Single sign-on through an OpenID Connect provider (Pro Santé Connect or a regional portal).

    Set by ``azurezo init --oidc-issuer … --oidc-client-id … --oidc-client-secret-file …``; the
    client secret stays in its own file (read when Synapse's configuration is rendered), never in
    azurezo.json.
    """

    issuer: str
    client_id: str
    client_secret_file: str
    national_id_claim: str = "SubjectNameID"
    name: str = "Pro Santé Connect"
    scopes: tuple[str, ...] = ("openid", "scope_all")
    # Off: only single sign-on signs professionals in (the service accounts keep their passwords).
    password_login: bool = True

    def client_secret(self) -> str:
        """The client secret, read now from its file (French ``HomeError`` when unreadable)."""
        try:
            value = Path(self.client_secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise HomeError(
                f"Le secret du client OpenID Connect est illisible ({self.client_secret_file} : "
                f"{exc.strerror}) : vérifiez le fichier donné à --oidc-client-secret-file."
            ) from exc
        if not value:
            raise HomeError(
                f"Le fichier {self.client_secret_file} est vide : il doit contenir le secret du client "
                "OpenID Connect fourni par le fournisseur d'identité."
            )
        return value


@dataclass(frozen=True)
class Smtp:
    """The SMTP server that sends activation e-mails (``azurezo init --smtp-host …``). Without it,
    an approval shows the activation link to the administrator instead."""

    host: str
    port: int = 587
    starttls: bool = True
    sender: str = "AZUREZO <ne-pas-repondre@azurezo.local>"
    username: str | None = None
    password_file: str | None = None  # read when the service starts; never in azurezo.json

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        try:
            return Path(self.password_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise HomeError(
                f"Le mot de passe SMTP est illisible ({self.password_file} : {exc.strerror}) : vérifiez le "
                "fichier donné à --smtp-password-file."
            ) from exc


@dataclass(frozen=True)
class Home:
    """A parsed home directory. Build it with ``init_home`` or ``load_home``, never by hand."""

    path: Path
    server_name: str
    synapse_port: int
    service_port: int
    profile: Profile
    secrets: Secrets
    bot_password: str = field(repr=False)
    # Federation is off unless peers are listed here (azurezo.json "federation_peers").
    federation_peers: tuple[str, ...] = ()
    database_url_override: str | None = None
    # Synapse's PostgreSQL database (libpq URL); None: SQLite inside the home.
    synapse_database_url: str | None = None
    # Generated passwords of the demo accounts, by localpart (printed by `azurezo up`).
    demo_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    demo_imported: bool = False
    # Chosen at creation (`--no-demo` for a real instance): import the fictitious demo directory
    # and provision its accounts.
    demo_enabled: bool = True
    bot_port: int = DEFAULT_BOT_PORT
    turn_port: int = DEFAULT_TURN_PORT
    # The TURN host clients are told (turn_uris); None: the server name's host.
    turn_host: str | None = None
    sso: Sso | None = None
    smtp: Smtp | None = None
    # Sign-up requests approved without an administrator: e-mail domains, and/or the structure's own.
    signup_trusted_domains: tuple[str, ...] = ()
    signup_auto_approve_structure_domain: bool = False
    # Terms of use (Synapse's user_consent): None = on in production, off in the test profile.
    terms_of_use: bool | None = None

    @property
    def terms_required(self) -> bool:
        """Whether professionals must accept the terms of use before sending anything."""
        return self.profile == "production" if self.terms_of_use is None else self.terms_of_use

    # --- layout -------------------------------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        return self.path / HOME_FILE

    @property
    def synapse_dir(self) -> Path:
        return self.path / "synapse"

    @property
    def synapse_config(self) -> Path:
        return self.synapse_dir / "homeserver.yaml"

    @property
    def synapse_overrides_dir(self) -> Path:
        return self.synapse_dir / "conf.d"

    @property
    def synapse_log_config(self) -> Path:
        return self.synapse_dir / "log.config"

    @property
    def signing_key_path(self) -> Path:
        return self.synapse_dir / f"{self.server_name.replace(':', '_')}.signing.key"

    @property
    def synapse_database(self) -> Path:
        return self.synapse_dir / "homeserver.db"

    @property
    def media_store(self) -> Path:
        return self.synapse_dir / "media_store"

    @property
    def coordination_dir(self) -> Path:
        return self.path / "coordination"

    @property
    def documents_dir(self) -> Path:
        return self.coordination_dir / "documents"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def metrics_dir(self) -> Path:
        """Metrics files of batch jobs (the directory import), served by the service's /metrics."""
        return self.path / "metrics"

    @property
    def bot_dir(self) -> Path:
        """The bot's device, token, crypto store and cross-signing seeds (coordination_bot.state)."""
        return self.path / "bot"

    # --- derived settings ---------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        """The service database (async SQLAlchemy URL); SQLite inside the home unless overridden."""
        if self.database_url_override:
            return self.database_url_override
        return f"sqlite+aiosqlite:///{self.coordination_dir / 'coordination.db'}"

    @property
    def synapse_url(self) -> str:
        return f"http://{LOOPBACK}:{self.synapse_port}"

    @property
    def service_url(self) -> str:
        return f"http://{LOOPBACK}:{self.service_port}"

    @property
    def bot_localpart(self) -> str:
        return BOT_LOCALPART

    @property
    def bot_user_id(self) -> str:
        return self.user_id(BOT_LOCALPART)

    @property
    def notices_user_id(self) -> str:
        return self.user_id(NOTICES_LOCALPART)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def service_settings(self) -> Settings:
        """The coordination service's settings for this instance."""
        return Settings(
            database_url=self.database_url,
            synapse_url=self.synapse_url,
            server_name=self.server_name,
            internal_api_secret=self.secrets.internal_api_secret,
            documents_dir=self.documents_dir,
            bot_user_id=self.bot_user_id,
            metrics_dir=self.metrics_dir,
            # Account activation registers the professional's account (issue 13).
            registration_shared_secret=self.secrets.registration_shared_secret,
            public_url=self.service_url,
            signup_trusted_domains=self.signup_trusted_domains,
            signup_auto_approve_structure_domain=self.signup_auto_approve_structure_domain,
            **self._smtp_settings(),
        )

    def _smtp_settings(self) -> dict[str, Any]:
        if self.smtp is None:
            return {}
        return {
            "smtp_host": self.smtp.host,
            "smtp_port": self.smtp.port,
            "smtp_starttls": self.smtp.starttls,
            "smtp_sender": self.smtp.sender,
            "smtp_username": self.smtp.username,
            "smtp_password": self.smtp.password(),
        }

    # --- persistence --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": HOME_FORMAT,
            "server_name": self.server_name,
            "synapse_port": self.synapse_port,
            "service_port": self.service_port,
            "profile": self.profile,
            "federation_peers": list(self.federation_peers),
            "database_url": self.database_url_override,
            "synapse_database_url": self.synapse_database_url,
            "secrets": {name: getattr(self.secrets, name) for name in _SECRET_NAMES},
            "bot_password": self.bot_password,
            "demo_passwords": dict(self.demo_passwords),
            "demo_imported": self.demo_imported,
            "demo_enabled": self.demo_enabled,
            "bot_port": self.bot_port,
            "turn_port": self.turn_port,
            "turn_host": self.turn_host,
            "sso": None if self.sso is None else {**asdict(self.sso), "scopes": list(self.sso.scopes)},
            "terms_of_use": self.terms_of_use,
            "smtp": None if self.smtp is None else asdict(self.smtp),
            "signup_trusted_domains": list(self.signup_trusted_domains),
            "signup_auto_approve_structure_domain": self.signup_auto_approve_structure_domain,
        }


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), atomically: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by umask and ignored for an existing file
    os.replace(tmp, path)


def save_home(home: Home) -> None:
    write_private(home.settings_file, json.dumps(home.to_json(), indent=2, ensure_ascii=False) + "\n")


def _is_server_name(name: str) -> bool:
    return bool(_SERVER_NAME.match(name))


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _check_server_name(name: str) -> str:
    if not _is_server_name(name):
        raise HomeError(
            f"Nom de serveur invalide : « {name} ». Donnez un nom de domaine "
            "(ex. azurezo.exemple.fr), éventuellement suivi de :port."
        )
    return name


def _check_port(value: Any, what: str) -> int:
    if not _is_port(value):
        raise HomeError(f"Port {what} invalide : « {value} ». Donnez un entier entre 1 et 65535.")
    return int(value)


# --- the home file (azurezo.json), parsed once into frozen pydantic models --------------------------


class _FileModel(BaseModel):
    # strict: what `save_home` writes is exactly typed; a hand edit that changes a type is an error.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SecretsFile(_FileModel):
    """``secrets`` of azurezo.json: generated once, never typed by hand."""

    registration_shared_secret: SecretStr
    macaroon_secret_key: SecretStr
    form_secret: SecretStr
    internal_api_secret: SecretStr

    @field_validator("*")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError(
                "secret trop court (32 caractères au moins). Ne modifiez pas les secrets à la main ; "
                "restaurez le fichier d'origine."
            )
        return value


class SsoFile(_FileModel):
    """``sso`` of azurezo.json (see ``Sso``)."""

    issuer: str
    client_id: str
    client_secret_file: str
    national_id_claim: str = "SubjectNameID"
    name: str = "Pro Santé Connect"
    scopes: list[str] = ["openid", "scope_all"]
    password_login: bool = True

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        problem = issuer_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def issuer_problem(issuer: str) -> str | None:
    """Why ``issuer`` cannot be an OpenID Connect issuer here (French), or None.

    HTTPS is required, except on the loopback (a provider run beside the instance, in tests).
    """
    parsed = urlsplit(issuer)
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1"):
        return None
    return (
        f"« {issuer} » n'est pas une adresse d'émetteur OpenID Connect utilisable : donnez son URL "
        "https (par exemple https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet pour Pro Santé "
        "Connect)."
    )


class SmtpFile(_FileModel):
    """``smtp`` of azurezo.json (see ``Smtp``)."""

    host: str
    port: int = 587
    starttls: bool = True
    sender: str = "AZUREZO <ne-pas-repondre@azurezo.local>"
    username: str | None = None
    password_file: str | None = None


class HomeFile(_FileModel):
    """azurezo.json as written by ``save_home``. Keys added later have defaults, so every older
    home keeps loading; unknown keys are refused (a typo must not be silently ignored)."""

    format: Literal[1]
    server_name: str
    synapse_port: int
    service_port: int
    profile: Profile = "production"
    federation_peers: tuple[str, ...] | None = None
    database_url: str | None = None
    synapse_database_url: str | None = None
    secrets: SecretsFile
    bot_password: SecretStr
    demo_passwords: dict[str, SecretStr] | None = None
    demo_imported: bool = False
    demo_enabled: bool = True
    bot_port: int = DEFAULT_BOT_PORT
    turn_port: int = DEFAULT_TURN_PORT
    turn_host: str | None = None
    sso: SsoFile | None = None
    terms_of_use: bool | None = None
    smtp: SmtpFile | None = None
    signup_trusted_domains: list[str] = []
    signup_auto_approve_structure_domain: bool = False

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str) -> str:
        if not _is_server_name(value):
            raise ValueError(_EXPECTED["server_name"])
        return value

    @field_validator("synapse_port", "service_port", "bot_port", "turn_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not _is_port(value):
            raise ValueError(_EXPECTED["synapse_port"])
        return value

    @field_validator("federation_peers")
    @classmethod
    def _peers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for peer in value or ():
            if not _is_server_name(peer):
                raise ValueError(f"« {peer} » n'est pas un nom de serveur ; {_EXPECTED['federation_peers']}")
        return value

    @field_validator("turn_host")
    @classmethod
    def _turn_host(cls, value: str | None) -> str | None:
        if value is not None and not _is_server_name(value):
            raise ValueError(_EXPECTED["turn_host"])
        return value

    @field_validator("synapse_database_url")
    @classmethod
    def _synapse_database(cls, value: str | None) -> str | None:
        if value is not None and not _is_postgres_url(value):
            raise ValueError(_EXPECTED["synapse_database_url"])
        return value

    @field_validator("bot_password")
    @classmethod
    def _bot_password(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError(
                "mot de passe trop court (16 caractères au moins) ; restaurez le fichier d'origine."
            )
        return value

    def to_home(self, path: Path) -> Home:
        return Home(
            path=path,
            server_name=self.server_name,
            synapse_port=self.synapse_port,
            service_port=self.service_port,
            profile=self.profile,
            secrets=Secrets(
                **{name: getattr(self.secrets, name).get_secret_value() for name in _SECRET_NAMES}
            ),
            bot_password=self.bot_password.get_secret_value(),
            federation_peers=self.federation_peers or (),
            database_url_override=self.database_url,
            synapse_database_url=self.synapse_database_url,
            demo_passwords={k: v.get_secret_value() for k, v in (self.demo_passwords or {}).items()},
            demo_imported=self.demo_imported,
            demo_enabled=self.demo_enabled,
            bot_port=self.bot_port,
            turn_port=self.turn_port,
            turn_host=self.turn_host,
            sso=None
            if self.sso is None
            else Sso(**{**self.sso.model_dump(), "scopes": tuple(self.sso.scopes)}),
            terms_of_use=self.terms_of_use,
            smtp=None if self.smtp is None else Smtp(**self.smtp.model_dump()),
            signup_trusted_domains=tuple(self.signup_trusted_domains),
            signup_auto_approve_structure_domain=self.signup_auto_approve_structure_domain,
        )


# What each key must hold, in French, for error messages.
_EXPECTED = {
    "format": f"attendu {HOME_FORMAT} ; ce fichier vient d'une autre version d'AZUREZO.",
    "server_name": "donnez un nom de domaine (ex. azurezo.exemple.fr), éventuellement suivi de :port.",
    "synapse_port": "donnez un entier entre 1 et 65535.",
    "service_port": "donnez un entier entre 1 et 65535.",
    "profile": "attendu production ou test.",
    "federation_peers": 'donnez une liste de noms de serveurs, par exemple ["autre-region.exemple.fr"].',
    "database_url": "donnez une URL SQLAlchemy (chaîne) ou null.",
    "synapse_database_url": (
        "donnez null (SQLite) ou une URL PostgreSQL, par exemple "
        "postgresql://azurezo@127.0.0.1:5432/azurezo_synapse."
    ),
    "secrets": "restaurez le fichier d'origine (les secrets ne se modifient pas à la main).",
    "bot_password": "restaurez le fichier d'origine.",
    "demo_passwords": "restaurez le fichier d'origine.",
    "demo_imported": "attendu true ou false.",
    "demo_enabled": "attendu true ou false.",
    "turn_port": "donnez un entier entre 1 et 65535.",
    "turn_host": "donnez un nom d'hôte (ex. turn.exemple.fr) ou null.",
    "sso": "relancez `azurezo init --oidc-issuer … --oidc-client-id … --oidc-client-secret-file …`.",
    "terms_of_use": "attendu true, false ou null.",
    "smtp": "relancez `azurezo init --smtp-host …`.",
    "signup_trusted_domains": 'donnez une liste de domaines, par exemple ["mssante.fr"].',
    "signup_auto_approve_structure_domain": "attendu true ou false.",
}


def _home_file_error(where: Path, error: ErrorDetails) -> HomeError:
    """One French sentence naming the bad key (never its value: it may be a secret)."""
    key = ".".join(str(part) for part in error["loc"])
    top = str(error["loc"][0]) if error["loc"] else ""
    kind = error["type"]
    if kind == "json_invalid":
        return HomeError(f"{where} est illisible (JSON invalide). Restaurez-le.")
    if kind == "model_type" and not error["loc"]:
        return HomeError(f"{where} doit contenir un objet JSON. Restaurez-le.")
    if kind == "missing":
        return HomeError(f"{where} : la clé « {key} » manque. Restaurez le fichier d'origine.")
    if kind == "extra_forbidden":
        return HomeError(
            f"{where} : clé « {key} » inconnue ; retirez-la (faute de frappe ?) ou restaurez le "
            "fichier d'origine."
        )
    if kind == "value_error":
        reason = str(error.get("ctx", {}).get("error", ""))
        return HomeError(f"{where} : « {key} » invalide : {reason}")
    expected = _EXPECTED.get(top, "restaurez le fichier d'origine.")
    return HomeError(f"{where} : « {key} » invalide : {expected}")


def load_home(path: Path) -> Home:
    """Read an initialised home; a French ``HomeError`` when there is none or it is damaged."""
    path = path.resolve()
    settings_file = path / HOME_FILE
    if not settings_file.is_file():
        raise HomeError(
            f"Aucune instance AZUREZO dans {path} : lancez d'abord `azurezo --home {path} up` "
            "(ou `make run`), qui l'initialise."
        )
    try:
        text = settings_file.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise HomeError(f"{settings_file} est illisible ({exc}). Restaurez-le.") from exc
    try:
        parsed = HomeFile.model_validate_json(text)
    except ValidationError as exc:
        raise _home_file_error(settings_file, exc.errors()[0]) from None
    return parsed.to_home(path)


def _write_signing_key(home: Home) -> None:
    """Generate Synapse's ed25519 signing key once: regenerating it would break federation."""
    from signedjson.key import generate_signing_key, write_signing_keys

    if home.signing_key_path.exists():
        return
    key_id = "a_" + "".join(secrets.choice(string.ascii_letters) for _ in range(4))
    fd = os.open(home.signing_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        write_signing_keys(fh, [generate_signing_key(key_id)])


def _make_dirs(home: Home) -> None:
    home.path.mkdir(parents=True, exist_ok=True)
    os.chmod(home.path, 0o700)
    for directory in (
        home.synapse_dir,
        home.synapse_overrides_dir,
        home.media_store,
        home.coordination_dir,
        home.documents_dir,
        home.logs_dir,
    ):
        directory.mkdir(parents=True, exist_ok=True)


def init_home(
    path: Path,
    *,
    server_name: str | None = None,
    synapse_port: int | None = None,
    service_port: int | None = None,
    profile: Profile | None = None,
    database_url: str | None = None,
    synapse_database_url: str | None = None,
    demo: bool = True,
) -> tuple[Home, bool]:
    """Create the home on first start, or reuse it. Returns ``(home, created)``.

    Idempotent: an existing home keeps its secrets, signing key, server name (Synapse's database
    is tied to it) and demo choice; ports given explicitly replace the stored ones. Synapse's
    database is chosen at creation too: moving it would lose every account and room.
    """
    path = path.resolve()
    if synapse_database_url is not None and not _is_postgres_url(synapse_database_url):
        raise HomeError(
            f"URL PostgreSQL de Synapse invalide : « {_without_password(synapse_database_url)} ». "
            "Donnez par exemple postgresql://azurezo@127.0.0.1:5432/azurezo_synapse."
        )
    if (path / HOME_FILE).exists():
        home = load_home(path)
        if server_name is not None and server_name != home.server_name:
            raise HomeError(
                f"L'instance de {path} s'appelle « {home.server_name} » : le nom d'un serveur "
                "Matrix ne change pas après sa création. Retirez --server-name, ou choisissez "
                "un autre --home pour une nouvelle instance."
            )
        changes: dict[str, Any] = {}
        if synapse_port is not None:
            changes["synapse_port"] = _check_port(synapse_port, "Synapse")
        if service_port is not None:
            changes["service_port"] = _check_port(service_port, "du service")
        if profile is not None:
            changes["profile"] = profile
        if synapse_database_url is not None and synapse_database_url != home.synapse_database_url:
            raise HomeError(
                f"L'instance de {path} garde sa base Synapse "
                f"({_without_password(home.synapse_database_url or 'SQLite')}) : elle ne change pas "
                "après la création (comptes et salons y sont). Retirez --postgres, ou choisissez "
                "un autre --home pour une nouvelle instance."
            )
        if database_url is not None:
            changes["database_url_override"] = database_url
        if changes:
            home = replace(home, **changes)
            save_home(home)
        _make_dirs(home)
        _write_signing_key(home)
        _check_distinct_ports(home)
        return home, False

    home = Home(
        path=path,
        server_name=_check_server_name(DEFAULT_SERVER_NAME if server_name is None else server_name),
        synapse_port=_check_port(DEFAULT_SYNAPSE_PORT if synapse_port is None else synapse_port, "Synapse"),
        service_port=_check_port(
            DEFAULT_SERVICE_PORT if service_port is None else service_port, "du service"
        ),
        profile=profile or "production",
        secrets=Secrets.generate(),
        bot_password=new_password(),
        database_url_override=database_url,
        synapse_database_url=synapse_database_url,
        demo_enabled=demo,
    )
    _check_distinct_ports(home)
    _make_dirs(home)
    _write_signing_key(home)
    save_home(home)
    return home, True


def _check_distinct_ports(home: Home) -> None:
    if home.synapse_port == home.service_port:
        raise HomeError(
            f"Synapse et le service ne peuvent pas partager le port {home.service_port} : "
            "donnez deux ports différents (--synapse-port, --service-port)."
        )


def _parse_url(value: str) -> URL | None:
    try:
        return make_url(value)
    except ArgumentError:
        return None


def _is_postgres_url(value: object) -> bool:
    """A libpq URL (``postgresql://…``, no ``+driver``): what Synapse's database setting takes."""
    url = _parse_url(value) if isinstance(value, str) else None
    return url is not None and url.drivername in ("postgresql", "postgres")


def _without_password(url: str) -> str:
    """``url`` fit for a message or a log: the password, if any, masked (percent-encoding aware)."""
    parsed = _parse_url(url)
    if parsed is None:
        # Not a URL: it may still hold a password (``user:pw@host``), so it is never echoed.
        return "(adresse illisible)" if "@" in url else url
    return parsed.render_as_string(hide_password=True)


def postgres_database_urls(server_url: str, server_name: str) -> tuple[str, str, str, str]:
    """The databases of an instance on the PostgreSQL server ``server_url``.

    ``server_url`` is a libpq URL without a database (``postgresql://user:pw@host:5432/``); the
    databases are named after the instance (``azurezo_<server name>_synapse`` / ``_coordination``).
    Returns ``(synapse_name, synapse_url, service_name, service_url)``: Synapse's libpq URL and the
    service's async SQLAlchemy (asyncpg) URL.
    """
    url = _parse_url(server_url)
    if url is None or url.drivername not in ("postgresql", "postgres") or not url.host:
        raise HomeError(
            f"URL PostgreSQL invalide : « {_without_password(server_url)} ». Donnez l'adresse du "
            "serveur, par exemple postgresql://azurezo@127.0.0.1:5432/ ; les bases sont créées "
            "et nommées d'après l'instance."
        )
    if url.database:
        raise HomeError(
            f"« {_without_password(server_url)} » nomme une base : donnez l'adresse du serveur seule "
            "(postgresql://utilisateur@hôte:5432/), AZUREZO crée ses deux bases."
        )
    # PostgreSQL identifiers: 63 bytes at most; keep the suffix whole.
    slug = re.sub(r"[^a-z0-9]+", "_", server_name.lower()).strip("_")[:40]
    synapse_name, service_name = f"azurezo_{slug}_synapse", f"azurezo_{slug}_coordination"
    synapse_url = url.set(drivername="postgresql", database=synapse_name)
    service_url = url.set(drivername="postgresql+asyncpg", database=service_name)
    return (
        synapse_name,
        synapse_url.render_as_string(hide_password=False),
        service_name,
        service_url.render_as_string(hide_password=False),
    )


async def create_postgres_database(server_url: str, name: str) -> bool:
    """Create database ``name`` on ``server_url`` unless it exists; True when it was created.

    Synapse refuses any database not in UTF8 with LC_COLLATE and LC_CTYPE 'C' (its sort orders
    depend on it), so every AZUREZO database is created that way from ``template0``.
    """
    import asyncpg  # only needed on the PostgreSQL path

    if not re.fullmatch(r"[a-z0-9_]{1,63}", name):
        raise HomeError(f"Nom de base PostgreSQL invalide : « {name} ».")
    server = _parse_url(server_url)
    if server is None or not server.host:
        raise HomeError(f"URL PostgreSQL invalide : « {_without_password(server_url)} ».")
    admin = server.set(drivername="postgresql", database="postgres")
    try:
        # Parts, not a DSN string: the password is passed as it is, whatever it contains.
        conn = await asyncpg.connect(
            user=admin.username,
            password=admin.password,
            host=admin.host,
            port=admin.port,
            database=admin.database,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise HomeError(
            f"Serveur PostgreSQL injoignable ({admin.render_as_string(hide_password=True)}) : {exc}. "
            "Vérifiez l'adresse, l'utilisateur et que le serveur accepte les connexions."
        ) from exc
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
        return True
    except asyncpg.PostgresError as exc:
        raise HomeError(
            f"Impossible de créer la base PostgreSQL « {name} » : {exc}. L'utilisateur doit avoir "
            "le droit CREATEDB, ou créez la base vous-même (UTF8, LC_COLLATE et LC_CTYPE 'C')."
        ) from exc
    finally:
        await conn.close()
