"""The ``azurezo`` command: one CLI for operators. Commands parse their options, call one function
of this package and print the result; user-facing errors are French and exit with status 1."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from azurezo_cli import accounts, bootstrap, logs
from azurezo_cli import workers as worker_topology
from azurezo_cli.admin import app as admin_app
from azurezo_cli.bot import app as bot_app
from azurezo_cli.bot import health_url as bot_health_url
from azurezo_cli.home import (
    DEFAULT_SERVER_NAME,
    HOME_FILE,
    LOOPBACK,
    Home,
    HomeError,
    create_postgres_database,
    init_home,
    load_home,
    new_password,
    postgres_database_urls,
    save_home,
)
from azurezo_cli.signin import AccountSettings, apply_account_settings
from azurezo_cli.supervisor import ChildFailed, ChildSpec, Supervisor, port_is_free
from azurezo_cli.synapse_config import render_synapse_config, synapse_command
from ror_sync.workdir import sweep_stale_import_files

app = typer.Typer(
    name="azurezo",
    help="AZUREZO : messagerie Matrix et coordination des parcours de soins (outil d'exploitation).",
    no_args_is_help=True,
    # Plain tracebacks: they end up in var/logs/*.log, where a short tail must show the error.
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
account_app = typer.Typer(help="Comptes Matrix des professionnels de l'annuaire.", no_args_is_help=True)
service_app = typer.Typer(
    help="Service de coordination (lancé par `azurezo up` ; utile sous un gestionnaire de services).",
    no_args_is_help=True,
)
app.add_typer(account_app, name="account")
app.add_typer(service_app, name="service")
app.add_typer(bot_app, name="bot")
app.add_typer(admin_app, name="admin")

try:
    from azurezo_cli.directory import app as directory_app
except ModuleNotFoundError as exc:  # TEMPORARY: azurezo_cli/directory.py is being written
    if exc.name != "azurezo_cli.directory":
        raise
else:
    app.add_typer(directory_app, name="directory")

READY_TIMEOUT_SERVICE = 60.0
READY_TIMEOUT_SYNAPSE = 120.0  # a first start creates Synapse's whole SQLite schema
READY_TIMEOUT_BOT = 60.0


SynapsePort = Annotated[
    int | None, typer.Option(help="Port de l'API client Matrix (défaut 8008).", min=1, max=65535)
]
ServicePort = Annotated[
    int | None,
    typer.Option(help="Port du service de coordination (défaut 8080).", min=1, max=65535),
]
BotPort = Annotated[
    int | None,
    typer.Option(
        help="Port local de l'état de santé du robot de coordination (défaut 8090).", min=1, max=65535
    ),
]
ServerName = Annotated[
    str | None,
    typer.Option(help="Nom du serveur Matrix, fixé à la création (défaut azurezo.local)."),
]
Demo = Annotated[
    bool,
    typer.Option(
        "--demo/--no-demo",
        help="À la création : importer l'annuaire de démonstration fictif et créer ses comptes "
        "(--no-demo pour une instance réelle).",
    ),
]
Postgres = Annotated[
    str | None,
    typer.Option(
        "--postgres",
        help="À la création : serveur PostgreSQL (ex. postgresql://azurezo@127.0.0.1:5432/) où "
        "créer et utiliser les bases azurezo_<nom>_synapse et azurezo_<nom>_coordination "
        "(défaut : SQLite dans le dossier de l'instance).",
        envvar="AZUREZO_POSTGRES",
    ),
]
Workers = Annotated[
    bool,
    typer.Option(
        "--workers/--no-workers",
        help="Synapse en plusieurs processus (principal, workers client et /sync, persisteur "
        "d'événements, médias) derrière nginx, répliqués par Redis (127.0.0.1:6379) ; demande "
        "PostgreSQL (--postgres).",
    ),
]
EventPersisters = Annotated[
    int,
    typer.Option(help="Avec --workers : nombre de workers persistant les événements.", min=1, max=4),
]


def fail(message: str) -> NoReturn:
    typer.echo(f"Erreur : {message}", err=True)
    raise typer.Exit(1)


class MissingHome:
    """Stands in ``ctx.obj`` when the home is not initialised: ``--help`` still works, and any real
    use says, in French, to run ``azurezo up`` first."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __getattr__(self, name: str) -> NoReturn:
        try:
            load_home(self._path)
        except HomeError as exc:
            fail(str(exc))
        fail(f"instance introuvable dans {self._path}")  # pragma: no cover (raced with an init)


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path,
        typer.Option(
            "--home",
            help="Dossier de l'instance (secrets, configuration, bases, journaux).",
            envvar="AZUREZO_HOME",
        ),
    ] = Path("./var"),
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="Format des journaux : text, ou json (une ligne JSON par événement, pour un collecteur).",
            envvar=logs.LOG_FORMAT_ENV,
        ),
    ] = "text",
) -> None:
    """AZUREZO : messagerie Matrix et coordination des parcours de soins."""
    if log_format not in ("text", "json"):
        fail(f"--log-format : « {log_format} » inconnu ; donnez text ou json.")
    os.environ[logs.LOG_FORMAT_ENV] = log_format  # inherited by the processes `up` starts
    if ctx.invoked_subcommand in ("up", "init", "restore"):
        ctx.obj = home  # these initialise the home themselves
        return
    try:
        ctx.obj = load_home(home)
    except HomeError:
        ctx.obj = MissingHome(home)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@app.command()
def up(
    ctx: typer.Context,
    synapse_port: SynapsePort = None,
    service_port: ServicePort = None,
    server_name: ServerName = None,
    demo: Demo = True,
    postgres: Postgres = None,
    bot_port: BotPort = None,
    workers: Workers = False,
    event_persisters: EventPersisters = 1,
) -> None:
    """Initialise l'instance au premier lancement, puis démarre Synapse, le service et le robot.

    Affiche les adresses et les comptes de démonstration ; Ctrl-C arrête tout.
    """
    path: Path = ctx.obj
    # Installed explicitly: a process started in the background by a shell script inherits SIGINT
    # ignored, and Ctrl-C (or kill -INT) would then never stop it (issue 6, item 12).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    supervisor = Supervisor()
    try:
        home = _prepare(
            path, synapse_port, service_port, server_name, demo=demo, postgres=postgres, bot_port=bot_port
        )
        ctx.obj = home
        demo_accounts = _demo_accounts(home)
        home = bootstrap.ensure_demo_passwords(home, demo_accounts)
        _start_children(home, supervisor, workers=event_persisters if workers else 0)
        typer.echo(
            "Création des comptes (robot et démonstration)…"
            if demo_accounts
            else "Création du compte du robot…"
        )
        skipped = asyncio.run(bootstrap.provision_accounts(home, demo_accounts))
        for item in skipped:
            typer.echo(
                f"Attention : compte de démonstration {home.user_id(item.account.localpart)} "
                f"ignoré : {item.reason}",
                err=True,
            )
        ignored = {item.account for item in skipped}
        _start_bot(home, supervisor)  # after provisioning: the bot's account must exist
        _print_ready(home, [a for a in demo_accounts if a not in ignored], workers=workers)
        supervisor.watch()
    except KeyboardInterrupt:
        typer.echo("\nArrêt demandé : arrêt du robot, de Synapse et du service…")
        supervisor.stop_all()
        typer.echo("AZUREZO est arrêté.")
    except ChildFailed as exc:
        typer.echo(f"Erreur : {exc}", err=True)
        supervisor.stop_all()
        typer.echo("Les autres processus ont été arrêtés.", err=True)
        raise typer.Exit(1) from None
    except (HomeError, accounts.AccountError) as exc:
        supervisor.stop_all()
        fail(str(exc))
    finally:
        supervisor.stop_all()


@app.command()
def init(
    ctx: typer.Context,
    synapse_port: SynapsePort = None,
    service_port: ServicePort = None,
    server_name: ServerName = None,
    demo: Demo = True,
    postgres: Postgres = None,
    compose_env: Annotated[
        bool,
        typer.Option(
            "--compose",
            help="Déploiement Docker Compose : écrire seulement <home>/compose.env (noms d'hôtes "
            "publics et secrets partagés, 0600), à passer à `docker compose --env-file`.",
        ),
    ] = False,
    compose_configs: Annotated[
        bool,
        typer.Option(
            "--compose-configs",
            help="Dans le conteneur init de docker-compose.yml : préparer l'instance et écrire les "
            "configurations des workers, de nginx, d'Element Web, de LiveKit et de coturn.",
        ),
    ] = False,
    oidc_issuer: Annotated[
        str | None,
        typer.Option(
            help="Connexion unique : URL de l'émetteur OpenID Connect (Pro Santé Connect, portail régional)."
        ),
    ] = None,
    oidc_client_id: Annotated[str | None, typer.Option(help="Identifiant du client OpenID Connect.")] = None,
    oidc_client_secret_file: Annotated[
        Path | None,
        typer.Option(help="Fichier contenant le secret du client OpenID Connect (jamais en clair ici)."),
    ] = None,
    oidc_claim: Annotated[
        str, typer.Option(help="Revendication portant le numéro RPPS/ADELI (identifiant national).")
    ] = "SubjectNameID",
    oidc_name: Annotated[str, typer.Option(help="Nom du bouton de connexion montré aux professionnels.")] = (
        "Pro Santé Connect"
    ),
    oidc_scope: Annotated[
        list[str] | None,
        typer.Option(help="Portées demandées (répéter l'option) ; défaut : openid scope_all."),
    ] = None,
    password_login: Annotated[
        bool,
        typer.Option(
            "--password-login/--no-password-login",
            help="Avec la connexion unique : garder (défaut) ou couper la connexion par mot de passe.",
        ),
    ] = True,
    terms: Annotated[
        bool | None,
        typer.Option(
            "--terms/--no-terms",
            help="Exiger l'acceptation des conditions d'utilisation (défaut : oui en production).",
        ),
    ] = None,
    smtp_host: Annotated[
        str | None,
        typer.Option(help="Serveur SMTP des courriels d'activation (sans lui : lien montré à l'admin)."),
    ] = None,
    smtp_port: Annotated[int, typer.Option(help="Port SMTP.")] = 587,
    smtp_starttls: Annotated[
        bool, typer.Option("--smtp-starttls/--no-smtp-starttls", help="STARTTLS.")
    ] = True,
    smtp_from: Annotated[str | None, typer.Option(help="Expéditeur des courriels.")] = None,
    smtp_user: Annotated[str | None, typer.Option(help="Identifiant SMTP.")] = None,
    smtp_password_file: Annotated[
        Path | None, typer.Option(help="Fichier contenant le mot de passe SMTP.")
    ] = None,
    signup_trusted_domain: Annotated[
        list[str] | None,
        typer.Option(
            help="Domaine e-mail dont les inscriptions sont validées sans administrateur (répéter)."
        ),
    ] = None,
    signup_auto_approve_structure_domain: Annotated[
        bool | None,
        typer.Option(
            "--signup-auto-approve-structure-domain/--no-signup-auto-approve-structure-domain",
            help="Valider aussi quand le domaine e-mail est celui de la structure choisie (annuaire).",
        ),
    ] = None,
) -> None:
    """Prépare l'instance sans rien démarrer (secrets, configuration, schéma, annuaire de démo).

    Pour les déploiements où Synapse et le service tournent sous un autre superviseur
    (docker-compose.yml, systemd). `azurezo up` fait la même chose avant de démarrer.
    Avec --oidc-issuer, --oidc-client-id et --oidc-client-secret-file, les professionnels se
    connectent par Pro Santé Connect (ou le portail régional), liés à l'annuaire par leur numéro.
    """
    from azurezo_cli import compose

    if compose_env:
        if server_name is None:
            fail("--compose demande --server-name (le domaine de la région, ex. soins.exemple.fr).")
        env_file = compose.write_env(ctx.obj, compose.Hosts.for_server(server_name))
        typer.echo(f"Fichier d'environnement : {env_file} (secrets : ne le versionnez jamais)")
        typer.echo(f"Puis : docker compose --env-file {env_file} up -d")
        return
    try:
        accounts_settings = AccountSettings(
            oidc_issuer=oidc_issuer,
            oidc_client_id=oidc_client_id,
            oidc_client_secret_file=oidc_client_secret_file,
            oidc_claim=oidc_claim,
            oidc_name=oidc_name,
            oidc_scopes=tuple(oidc_scope or ("openid", "scope_all")),
            password_login=password_login,
            terms=terms,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            smtp_starttls=smtp_starttls,
            smtp_sender=smtp_from,
            smtp_username=smtp_user,
            smtp_password_file=smtp_password_file,
            signup_trusted_domains=tuple(signup_trusted_domain)
            if signup_trusted_domain is not None
            else None,
            signup_auto_approve_structure_domain=signup_auto_approve_structure_domain,
        )
        home = _prepare(
            ctx.obj,
            synapse_port,
            service_port,
            server_name,
            demo=demo,
            postgres=postgres,
            check_ports=False,
        )
        if compose_configs:
            for path in compose.render_configs(home):
                typer.echo(f"Écrit : {path}")
        home = apply_account_settings(home, accounts_settings)
    except HomeError as exc:
        fail(str(exc))
    ctx.obj = home
    typer.echo(f"Synapse : {home.synapse_config}")
    typer.echo(f"Service : azurezo --home {home.path} service run")


def _prepare(
    path: Path,
    synapse_port: int | None,
    service_port: int | None,
    server_name: str | None,
    *,
    demo: bool,
    postgres: str | None = None,
    check_ports: bool = True,
    bot_port: int | None = None,
) -> Home:
    synapse_database_url = database_url = None
    if postgres is not None:
        # The databases are named after the instance: its server name must be known first.
        name = server_name or (load_home(path).server_name if (path / HOME_FILE).exists() else None)
        synapse_db, synapse_database_url, service_db, database_url = postgres_database_urls(
            postgres, name or DEFAULT_SERVER_NAME
        )
    home, created = init_home(
        path,
        server_name=server_name,
        synapse_port=synapse_port,
        service_port=service_port,
        database_url=database_url,
        synapse_database_url=synapse_database_url,
        demo=demo,
    )
    if postgres is not None:
        for db in (synapse_db, service_db):
            if asyncio.run(create_postgres_database(postgres, db)):
                typer.echo(f"Base PostgreSQL « {db} » créée.")
    if bot_port is not None and bot_port != home.bot_port:
        home = replace(home, bot_port=bot_port)
        save_home(home)
    if created:
        typer.echo(f"Nouvelle instance « {home.server_name} » initialisée dans {home.path}")
    else:
        typer.echo(f"Instance « {home.server_name} » reprise depuis {home.path}")
    ports = (
        (home.synapse_port, "--synapse-port"),
        (home.service_port, "--service-port"),
        (home.bot_port, "--bot-port"),
    )
    for port, option in ports if check_ports else ():
        if not port_is_free(port, LOOPBACK):
            raise HomeError(
                f"le port {port} est déjà utilisé (une autre instance tourne-t-elle ?) : arrêtez-la, "
                f"ou choisissez un autre port avec {option}."
            )
    render_synapse_config(home)
    swept = sweep_stale_import_files(home.path / "tmp")
    if swept:
        typer.echo(f"{swept} dossier(s) temporaire(s) laissé(s) par un import interrompu supprimé(s).")
    typer.echo("Mise à jour du schéma de la base de coordination…")
    bootstrap.migrate(home.database_url)
    if home.demo_enabled and not home.demo_imported:
        typer.echo("Import de l'annuaire de démonstration (fictif)…")
        home = bootstrap.import_demo_directory(home)
    return home


def _demo_accounts(home: Home) -> list[bootstrap.DemoAccount]:
    if not home.demo_enabled:
        return []
    try:
        return bootstrap.load_demo_accounts()
    except (OSError, ValueError) as exc:
        raise HomeError(f"comptes de démonstration illisibles : {exc}") from exc


def _start_children(home: Home, supervisor: Supervisor, *, workers: int = 0) -> None:
    """The service, then Synapse: one process, or (``workers``: the number of event persisters)
    its main process, workers and nginx."""
    python = sys.executable
    if workers:
        worker_topology.require_postgres(home)  # before anything starts: a French refusal
        worker_topology.check_redis()
        worker_topology.nginx_binary()
    typer.echo(f"Démarrage du service de coordination sur {home.service_url}…")
    service = supervisor.start(
        ChildSpec(
            name="service",
            argv=[python, "-m", "azurezo_cli", "--home", str(home.path), "service", "run"],
            log_path=home.logs_dir / "service.log",
            ready_url=f"{home.service_url}/health",
        )
    )
    supervisor.wait_ready(service, timeout=READY_TIMEOUT_SERVICE)
    if workers:
        typer.echo(f"Démarrage de Synapse (workers, derrière nginx) sur {home.synapse_url}…")
        topology = worker_topology.start_workers(
            home, supervisor, python, timeout=READY_TIMEOUT_SYNAPSE, event_persisters=workers
        )
        typer.echo("\n".join(worker_topology.describe(topology)))
        return
    typer.echo(f"Démarrage de Synapse sur {home.synapse_url}…")
    synapse = supervisor.start(
        ChildSpec(
            name="synapse",
            argv=synapse_command(home, python),
            log_path=home.logs_dir / "synapse.log",
            ready_url=f"{home.synapse_url}/_matrix/client/versions",
        )
    )
    supervisor.wait_ready(synapse, timeout=READY_TIMEOUT_SYNAPSE)


def _start_bot(home: Home, supervisor: Supervisor) -> None:
    typer.echo("Démarrage du robot de coordination…")
    bot = supervisor.start(
        ChildSpec(
            name="bot",
            argv=[sys.executable, "-m", "azurezo_cli", "--home", str(home.path), "bot", "run"],
            log_path=home.logs_dir / "bot.log",
            ready_url=bot_health_url(home),
        )
    )
    supervisor.wait_ready(bot, timeout=READY_TIMEOUT_BOT)


def _print_ready(home: Home, demo: list[bootstrap.DemoAccount], *, workers: bool = False) -> None:
    lines = [
        "",
        f"AZUREZO est prêt — serveur Matrix « {home.server_name} ».",
        f"  Messagerie : {home.synapse_url}",
        "    (dans Element ou tout client Matrix : « Modifier » le serveur d'accueil et coller "
        "cette adresse)",
        f"  Service de coordination : {home.service_url}   documentation de l'API : {home.service_url}/docs",
        f"  Tableau de bord : {home.service_url}/app",
        f"  Robot de coordination : {home.bot_user_id}   (invitez-le dans un salon ; « !aide »)",
        f"  Journaux : {home.logs_dir}",
    ]
    if workers:
        lines.insert(4, "    (Synapse en workers derrière nginx, réplication par Redis)")
    if demo:
        lines.append("Comptes de démonstration (professionnels fictifs) :")
        width = max(len(home.user_id(a.localpart)) for a in demo)
        for account in demo:
            user_id = home.user_id(account.localpart)
            lines.append(
                f"  {user_id:<{width}}  mot de passe : {home.demo_passwords[account.localpart]}"
                + (f"   {account.description}" if account.description else "")
            )
    lines.append("Ctrl-C pour tout arrêter.")
    typer.echo("\n".join(lines))


def _read_password_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"impossible de lire le fichier de mot de passe {path} ({exc.strerror}).")
    lines = text.splitlines()
    password = lines[0].strip() if lines else ""
    if len(password) < 12:
        fail(
            f"le mot de passe lu dans {path} fait moins de 12 caractères : mettez un mot de passe "
            "plus long sur la première ligne du fichier, ou omettez --password-file pour en générer un."
        )
    return password


@account_app.command("create")
def account_create(
    ctx: typer.Context,
    national_id: Annotated[
        str, typer.Argument(help="Identifiant national du professionnel (RPPS 8… ou ADELI 0…).")
    ],
    localpart: Annotated[
        str, typer.Option("--localpart", help="Partie locale du compte Matrix (ex. jeanne.martin).")
    ],
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help="Fichier dont la première ligne est le mot de passe ; sans lui, un mot de passe "
            "robuste est généré et affiché une seule fois.",
        ),
    ] = None,
) -> None:
    """Crée le compte Matrix d'un professionnel actif de l'annuaire et affiche son identifiant.

    L'instance doit tourner (`azurezo up`) : le compte est créé sur son Synapse.
    """
    home: Home = ctx.obj
    generated = password_file is None
    password = new_password() if password_file is None else _read_password_file(password_file)
    try:
        user_id = asyncio.run(
            accounts.create_account(
                home=home, national_id=national_id.strip(), localpart=localpart, password=password
            )
        )
    except (accounts.AccountError, HomeError) as exc:
        fail(str(exc))
    typer.echo(user_id)
    if generated:
        typer.echo(
            f"Mot de passe généré (affiché une seule fois, transmettez-le au professionnel) : {password}"
        )


@service_app.command("run")
def service_run(ctx: typer.Context) -> None:
    """Lance le service de coordination au premier plan sur 127.0.0.1:<port du service>."""
    import uvicorn

    from coordination.app import create_app

    home: Home = ctx.obj
    uvicorn.run(
        create_app(home.service_settings()),
        host=LOOPBACK,
        port=home.service_port,
        log_level="info",
        log_config=logs.uvicorn_log_config() or uvicorn.config.LOGGING_CONFIG,
        # Access logs would record query strings, which may hold a searched patient's name.
        access_log=False,
    )


@app.command("backup")
def backup_command(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Dossier (nouveau ou vide) où écrire la sauvegarde.")],
) -> None:
    """Sauvegarde toute l'instance, même en fonctionnement : les deux bases (SQLite ou PostgreSQL),
    les médias, les documents, la clé de signature, le robot et le fichier d'instance."""
    from azurezo_cli import backup

    home: Home = ctx.obj
    try:
        manifest = backup.backup(home, directory)
    except HomeError as exc:
        fail(str(exc))
    kinds = ", ".join(f"{db['name']} ({db['kind']})" for db in manifest["databases"])
    typer.echo(f"Sauvegarde de « {home.server_name} » écrite dans {directory.resolve()}")
    typer.echo(f"  Bases : {kinds} ; fichiers : {manifest['files']}")


@app.command("restore")
def restore_command(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Dossier d'une sauvegarde faite par `azurezo backup`.")],
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            help="Serveur PostgreSQL où recréer les bases (défaut : celui de la sauvegarde).",
        ),
    ] = None,
) -> None:
    """Recrée une instance sauvegardée dans un dossier d'instance vide (--home), puis `azurezo up`."""
    from azurezo_cli import backup

    target: Path = ctx.obj
    try:
        home = backup.restore(directory, target, postgres=postgres)
    except HomeError as exc:
        fail(str(exc))
    typer.echo(f"Instance « {home.server_name} » restaurée dans {home.path}")
    typer.echo(f"Démarrez-la : azurezo --home {home.path} up")
