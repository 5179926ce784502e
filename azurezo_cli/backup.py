"""``azurezo backup DIR`` and ``azurezo restore DIR``: a whole instance, consistent while it runs.

What a backup holds (``DIR/``)::

    manifest.json                  format, date, server name, how each database was saved
    databases/synapse.sqlite3      Synapse's database: SQLite backup API ...
    databases/synapse.pgdump       ... or pg_dump (custom format, one snapshot)
    databases/coordination.*       the service's database, the same way
    home/                          the home's files: azurezo.json, signing key, TURN secret,
                                   media store, document store, the bot's state and crypto store
                                   (its SQLite files through the backup API), conf.d overrides

Consistency while running: each database is read in one snapshot (pg_dump's transaction, SQLite's
online backup); the databases are saved *before* the files, and Synapse and the service write a
file before the row that points to it, so every media and document a saved row names is in the
backup (files written later are extra, and harmless). Generated files (homeserver.yaml, worker and
proxy configurations, logs, pid files, unfinished uploads) are left out: ``azurezo up`` writes them.

``restore`` recreates an instance in an empty home: the same server name, secrets, signing key,
accounts, rooms, documents and bot device (its keys: Element sessions keep decrypting).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url

from azurezo_cli.home import HOME_FILE, Home, HomeError, load_home, save_home

BACKUP_FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_HEADER = b"SQLite format 3\x00"
# Never copied: regenerated at every start, or transient.
SKIPPED_DIRS = {"logs", "tmp", "proxy", "workers", ".incoming"}
SKIPPED_FILES = {"homeserver.yaml", "log.config", "turnserver.conf", "turnserver.pid"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".pid", ".tmp", ".lock")

Kind = Literal["sqlite", "postgres"]


class BackupError(HomeError):
    """A backup or restore that cannot be done; the message is French and says what to do."""


@dataclass(frozen=True)
class SavedDatabase:
    name: str  # "synapse" or "coordination"
    kind: Kind
    file: str  # relative to the backup directory
    database: str  # PostgreSQL: the database's name when saved; SQLite: its path in the home


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == SQLITE_HEADER
    except OSError:
        return False


def sqlite_backup(source: Path, target: Path) -> None:
    """Copy a live SQLite database with SQLite's online backup API (a consistent snapshot)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.chmod(target, 0o600)


def _libpq(url: str) -> tuple[dict[str, str], str]:
    """Connection environment for pg_dump/pg_restore (the password never on a command line)."""
    parsed = make_url(url)
    env = {
        "PGHOST": parsed.host or "127.0.0.1",
        "PGPORT": str(parsed.port or 5432),
        "PGUSER": parsed.username or "postgres",
    }
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return env, parsed.database or ""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} est introuvable : installez le client PostgreSQL (`apt-get install postgresql-client`)."
        )
    return found


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} a échoué : {result.stderr.strip()[-500:]}")


def pg_dump(url: str, target: Path) -> None:
    env, database = _libpq(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", f"--file={target}", database],
        env,
        f"La sauvegarde de la base PostgreSQL « {database} » (pg_dump)",
    )
    os.chmod(target, 0o600)


def pg_restore(url: str, source: Path) -> None:
    env, database = _libpq(url)
    _run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            f"--dbname={database}",
            str(source),
        ],
        env,
        f"La restauration de la base PostgreSQL « {database} » (pg_restore)",
    )


def _sqlite_path(service_url: str) -> Path | None:
    parsed = make_url(service_url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        return Path(parsed.database)
    return None


def _home_files(home: Home, exclude: set[Path]) -> Iterator[Path]:
    for root, dirs, files in os.walk(home.path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(root) / name
            if name in SKIPPED_FILES or name.endswith(SKIPPED_SUFFIXES) or name.startswith("."):
                continue
            if path in exclude:
                continue
            yield path


def _check_empty_target(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(
            f"{directory} n'est pas vide : donnez un dossier nouveau ou vide pour la sauvegarde."
        )


def backup(home: Home, directory: Path) -> dict[str, Any]:
    """Save ``home`` (running or not) into ``directory``; returns the manifest."""
    directory = directory.resolve()
    if directory == home.path or home.path in directory.parents:
        raise BackupError("Le dossier de sauvegarde ne peut pas être dans l'instance elle-même.")
    _check_empty_target(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # secrets, keys and health data
    saved: list[SavedDatabase] = []
    exclude: set[Path] = set()
    # 1. the databases, each in one snapshot
    if home.synapse_database_url:
        pg_dump(home.synapse_database_url, directory / "databases" / "synapse.pgdump")
        saved.append(
            SavedDatabase(
                "synapse", "postgres", "databases/synapse.pgdump", _libpq(home.synapse_database_url)[1]
            )
        )
    else:
        sqlite_backup(home.synapse_database, directory / "databases" / "synapse.sqlite3")
        saved.append(
            SavedDatabase(
                "synapse",
                "sqlite",
                "databases/synapse.sqlite3",
                str(home.synapse_database.relative_to(home.path)),
            )
        )
        exclude.add(home.synapse_database)
    service_sqlite = _sqlite_path(home.database_url)
    if service_sqlite is None:
        pg_dump(home.database_url, directory / "databases" / "coordination.pgdump")
        saved.append(
            SavedDatabase(
                "coordination", "postgres", "databases/coordination.pgdump", _libpq(home.database_url)[1]
            )
        )
    else:
        if home.path not in service_sqlite.resolve().parents:
            raise BackupError(
                f"La base du service ({service_sqlite}) est hors de l'instance {home.path} : "
                "sauvegardez-la à part, ou remettez-la dans le dossier de l'instance."
            )
        sqlite_backup(service_sqlite, directory / "databases" / "coordination.sqlite3")
        relative = service_sqlite.resolve().relative_to(home.path)
        saved.append(SavedDatabase("coordination", "sqlite", "databases/coordination.sqlite3", str(relative)))
        exclude.add(service_sqlite.resolve())
    # 2. the files (after the databases: every file a saved row names already exists)
    files = 0
    for path in _home_files(home, exclude):
        target = directory / "home" / path.relative_to(home.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if _is_sqlite(path):
                sqlite_backup(path, target)  # the bot's crypto store and marks: live databases
            else:
                shutil.copy2(path, target)
        except FileNotFoundError:
            continue  # removed meanwhile (an expired temporary file): not part of the state
        files += 1
    manifest = {
        "format": BACKUP_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server_name": home.server_name,
        "databases": [db.__dict__ for db in saved],
        "files": files,
    }
    (directory / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"{path} est introuvable ou illisible : ce dossier n'est pas une sauvegarde AZUREZO."
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{path} : format de sauvegarde inconnu (attendu {BACKUP_FORMAT}).")
    return manifest


async def _create_empty_database(url: str) -> None:
    """Create the database of ``url`` (UTF8, C collation); refuse one that already has tables."""
    import asyncpg

    from azurezo_cli.home import create_postgres_database

    parsed = make_url(url)
    server = parsed.set(drivername="postgresql", database=None).render_as_string(hide_password=False)
    name = parsed.database or ""
    if not await create_postgres_database(server.rstrip("/") + "/", name):
        conn = await asyncpg.connect(
            user=parsed.username, password=parsed.password, host=parsed.host, port=parsed.port, database=name
        )
        try:
            tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()
        if tables:
            raise BackupError(
                f"La base PostgreSQL « {name} » existe déjà et n'est pas vide : supprimez-la (après "
                "avoir vérifié qu'elle n'est plus utilisée) ou restaurez vers un autre serveur avec "
                "--postgres."
            )


def restore(directory: Path, home_path: Path, *, postgres: str | None = None) -> Home:
    """Recreate the instance saved in ``directory`` in the empty home ``home_path``.

    PostgreSQL databases are recreated with their saved names, on the saved server or on
    ``postgres`` (a server URL, ``postgresql://user@host:5432/``); azurezo.json is updated to point
    at them.
    """
    import asyncio

    directory = directory.resolve()
    home_path = home_path.resolve()
    manifest = _read_manifest(directory)
    if (home_path / HOME_FILE).exists():
        raise BackupError(
            f"{home_path} contient déjà une instance : restaurez dans un dossier vide (--home), "
            "l'instance existante n'est jamais écrasée."
        )
    saved_home = directory / "home"
    if not (saved_home / HOME_FILE).is_file():
        raise BackupError(
            f"{directory} ne contient pas le fichier d'instance ({HOME_FILE}) : sauvegarde incomplète."
        )
    home_path.mkdir(parents=True, exist_ok=True)
    os.chmod(home_path, 0o700)
    shutil.copytree(saved_home, home_path, dirs_exist_ok=True)
    os.chmod(home_path, 0o700)  # copytree copied the saved folder's mode over it
    home = load_home(home_path)  # also rewrites nothing: paths are relative to the home
    changes: dict[str, Any] = {}
    for db in (SavedDatabase(**item) for item in manifest["databases"]):
        source = directory / db.file
        if db.kind == "sqlite":
            target = home_path / db.database
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            os.chmod(target, 0o600)
            if db.name == "coordination" and home.database_url_override:
                # An explicit SQLite URL named the old home's absolute path: point it here.
                changes["database_url_override"] = f"sqlite+aiosqlite:///{target}"
            continue
        current = home.synapse_database_url if db.name == "synapse" else home.database_url
        if current is None:
            raise BackupError(f"{HOME_FILE} de la sauvegarde ne nomme pas la base « {db.name} ».")
        url = make_url(current)
        if postgres is not None:
            server = make_url(postgres)
            url = url.set(
                host=server.host, port=server.port, username=server.username, password=server.password
            )
        url = url.set(database=db.database)
        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        asyncio.run(_create_empty_database(libpq))
        pg_restore(libpq, source)
        rendered = url.render_as_string(hide_password=False)
        if db.name == "synapse":
            changes["synapse_database_url"] = rendered
        else:
            changes["database_url_override"] = rendered
    if changes:
        home = replace(home, **changes)
        save_home(home)
    for sub in (home.logs_dir, home.media_store, home.documents_dir, home.synapse_overrides_dir):
        sub.mkdir(parents=True, exist_ok=True)
    return home
