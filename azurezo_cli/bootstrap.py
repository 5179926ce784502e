"""First-start steps shared by ``azurezo up`` and the test harness: migrate the service database,
import the bundled demo directory, provision the demo accounts and the bot."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from azurezo_cli import accounts
from azurezo_cli.home import Home, HomeError, new_password, save_home
from azurezo_cli.synapse_config import CONFIG_DIR

logger = logging.getLogger(__name__)

DEMO_DIR = CONFIG_DIR / "demo"
DEMO_RPPS = DEMO_DIR / "rpps_demo.txt"
DEMO_FHIR = DEMO_DIR / "ror_demo_bundle.json"
DEMO_ACCOUNTS = DEMO_DIR / "accounts.yaml"


def _run(function: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async function from sync code (no event loop runs during these steps)."""
    result = function(*args)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def migrate(database_url: str) -> None:
    """Bring the service database to the latest schema (Alembic, through ``coordination.migrate``)."""
    from coordination.migrate import upgrade_to_head

    upgrade_to_head(database_url)


def import_demo_directory(home: Home) -> Home:
    """Import the bundled FICTITIOUS directory once per home; later starts keep what is there
    (an operator's real import must not be overwritten by the demo)."""
    if home.demo_imported:
        return home
    _require_demo_files()
    from ror_sync.importer import import_fhir, import_rpps

    _run(import_rpps, home.database_url, DEMO_RPPS)
    _run(import_fhir, home.database_url, [str(DEMO_FHIR)])
    home = replace(home, demo_imported=True)
    save_home(home)
    return home


def _require_demo_files() -> None:
    missing = [p for p in (DEMO_RPPS, DEMO_FHIR, DEMO_ACCOUNTS) if not p.is_file()]
    if missing:
        raise HomeError(
            f"annuaire de démonstration incomplet ({', '.join(str(p) for p in missing)} "
            "manquant) : restaurez le dossier config/demo/ du dépôt, ou créez l'instance avec "
            "--no-demo."
        )


@dataclass(frozen=True)
class DemoAccount:
    localpart: str
    national_id: str
    description: str


def load_demo_accounts(path: Path = DEMO_ACCOUNTS) -> list[DemoAccount]:
    """Read ``config/demo/accounts.yaml``: a list (or ``accounts:`` list) of localpart, national_id,
    description."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(raw, dict):
        raw = raw.get("accounts")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of accounts")
    result = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not item.get("localpart") or not item.get("national_id"):
            raise ValueError(f"{path}: account #{index + 1} needs localpart and national_id")
        result.append(
            DemoAccount(
                localpart=str(item["localpart"]),
                national_id=str(item["national_id"]),
                description=str(item.get("description", "")),
            )
        )
    return result


def ensure_demo_passwords(home: Home, demo: list[DemoAccount]) -> Home:
    """Generate each demo account's password once; stored in azurezo.json (0600)."""
    missing = [a.localpart for a in demo if a.localpart not in home.demo_passwords]
    if not missing:
        return home
    passwords = dict(home.demo_passwords)
    for localpart in missing:
        passwords[localpart] = new_password()
    home = replace(home, demo_passwords=passwords)
    save_home(home)
    return home


@dataclass(frozen=True)
class Skipped:
    """A demo account that could not be created, and why (a French sentence)."""

    account: DemoAccount
    reason: str


async def provision_accounts(home: Home, demo: list[DemoAccount]) -> list[Skipped]:
    """Create the bot account and the demo accounts on the running stack (idempotent).

    A demo account that cannot be created (its person deactivated by a real import, for example)
    is skipped and returned with the reason: the demo must never stop an instance from starting
    (issue 6, item 10). The bot's account is required.
    """
    await accounts.ensure_service_account(home=home, localpart=home.bot_localpart, password=home.bot_password)
    skipped = []
    for account in demo:
        status = await accounts.binding_of(home=home, user_id=home.user_id(account.localpart))
        if status is not None and not status.active:
            skipped.append(
                Skipped(
                    account,
                    f"{status.display_name} ({status.national_id}) n'est plus actif dans l'annuaire "
                    "national (un import l'a désactivé) : son compte reste bloqué tant qu'un import "
                    "ne le réactive pas.",
                )
            )
            continue
        try:
            await accounts.create_account(
                home=home,
                national_id=account.national_id,
                localpart=account.localpart,
                password=home.demo_passwords[account.localpart],
                exist_ok=True,
            )
        except accounts.AccountError as exc:
            skipped.append(Skipped(account, " ".join(str(exc).split())))
    return skipped
