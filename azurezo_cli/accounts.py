"""Matrix accounts bound to the directory: binding in the service database, then shared-secret
registration on the running Synapse (``POST /_synapse/admin/v1/register``).

The binding is written first because Synapse's registration runs our module's check, which asks the
service whether the new Matrix ID is bound to an active directory person.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

import httpx
from sqlalchemy import delete

from azurezo_cli import signin
from azurezo_cli.home import BOT_LOCALPART, NOTICES_LOCALPART, Home
from coordination.db import make_engine, make_sessionmaker
from coordination.directory import service as directory
from coordination.directory.models import AccountBinding
from coordination.directory.schemas import BindingStatus
from coordination.errors import ServiceError
from coordination.synapse_registration import register_with_shared_secret

logger = logging.getLogger(__name__)

# Localparts of new users (Matrix spec, "User identifiers": historical characters are not allowed).
_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")


# Service accounts: listed in the module's service_accounts, never bound to a professional.
RESERVED_LOCALPARTS = frozenset({BOT_LOCALPART, NOTICES_LOCALPART})


class AccountError(Exception):
    """An account that could not be created. The message is French and says what to do."""


class AccountExists(AccountError):
    """The Matrix ID is already taken on Synapse."""


@dataclass(frozen=True)
class Registered:
    user_id: str
    access_token: str | None


def check_localpart(localpart: str, server_name: str) -> str:
    if localpart in RESERVED_LOCALPARTS:
        raise AccountError(
            f"L'identifiant « {localpart} » est réservé aux comptes de service d'AZUREZO : "
            "choisissez-en un autre."
        )
    if not _LOCALPART.match(localpart) or len(f"@{localpart}:{server_name}") > 255:
        raise AccountError(
            f"Identifiant « {localpart} » invalide : utilisez seulement des minuscules, des chiffres "
            "et . _ = - / + (par exemple jeanne.martin)."
        )
    return localpart


async def register(
    client: httpx.AsyncClient,
    *,
    home: Home,
    localpart: str,
    password: str,
    admin: bool = False,
) -> Registered:
    """Register ``localpart`` on the home's Synapse; French ``AccountError`` on any refusal."""
    try:
        resp = await register_with_shared_secret(
            client,
            synapse_url=home.synapse_url,
            shared_secret=home.secrets.registration_shared_secret,
            localpart=localpart,
            password=password,
            admin=admin,
        )
    except httpx.HTTPError as exc:
        raise AccountError(
            f"Synapse ne répond pas sur {home.synapse_url} ({type(exc).__name__}) : vérifiez que "
            f"l'instance tourne (`azurezo --home {home.path} up`), puis recommencez."
        ) from exc
    if resp.status_code == 200:
        data = resp.json()
        return Registered(user_id=str(data["user_id"]), access_token=data.get("access_token"))
    errcode, error = _error_of(resp)
    if errcode == "M_USER_IN_USE":
        raise AccountExists(
            f"Le compte {home.user_id(localpart)} existe déjà sur Synapse : choisissez un autre --localpart."
        )
    if errcode == "M_INVALID_USERNAME":
        raise AccountError(f"Synapse refuse l'identifiant « {localpart} » : {error}.")
    # A refusal by our module's registration check reaches us as 429 "Rate limited" (Synapse maps
    # spam-checker refusals of registration that way).
    raise AccountError(
        f"Synapse a refusé la création de {home.user_id(localpart)} (HTTP {resp.status_code}, "
        f"{errcode or 'sans code'}) : {error or resp.text[:200]}. Consultez "
        f"{home.logs_dir / 'synapse.log'}."
    )


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        data = resp.json()
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("errcode", "")), str(data.get("error", ""))


async def check_synapse(client: httpx.AsyncClient, home: Home) -> None:
    try:
        resp = await client.get(f"{home.synapse_url}/_matrix/client/versions", timeout=5.0)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise AccountError(
            f"Synapse ne répond pas sur {home.synapse_url} : lancez l'instance "
            f"(`azurezo --home {home.path} up`, ou `make run`) dans un autre terminal, "
            "puis recommencez."
        ) from exc


async def bind(*, home: Home, national_id: str, user_id: str) -> bool:
    """Bind ``user_id`` to the directory person; False when that exact binding already exists.

    Refusals (unknown or inactive identity, identity already bound elsewhere) are the directory's
    ``ServiceError``s, whose French message is shown as is.
    """
    engine = make_engine(home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            existing = await directory.binding_for_user(session=session, user_id=user_id)
            if existing is not None and existing.national_id == national_id.strip().upper():
                return False
            try:
                await directory.bind_account(session=session, national_id=national_id, user_id=user_id)
                await session.commit()
            except ServiceError as exc:
                await session.rollback()
                raise AccountError(exc.message) from exc
            return True
    finally:
        await engine.dispose()


async def unbind(*, home: Home, national_id: str, user_id: str) -> None:
    """Undo a binding whose registration failed, so the identity can be bound again."""
    engine = make_engine(home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            await session.execute(
                delete(AccountBinding).where(
                    AccountBinding.user_id == user_id,
                    AccountBinding.national_id == national_id.strip().upper(),
                )
            )
            await session.commit()
    finally:
        await engine.dispose()


async def binding_of(*, home: Home, user_id: str) -> BindingStatus | None:
    """The directory identity bound to ``user_id`` (the directory's ``binding_for_user``), if any."""
    engine = make_engine(home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await directory.binding_for_user(session=session, user_id=user_id)
    finally:
        await engine.dispose()


async def create_account(
    *,
    home: Home,
    national_id: str,
    localpart: str,
    password: str,
    admin: bool = False,
    exist_ok: bool = False,
) -> str:
    """Create the Matrix account of a directory person and return its Matrix ID.

    Checks Synapse answers, writes the binding, registers the account; if registration fails the
    binding is removed again. With ``exist_ok``, an account already bound to this same person and
    present on Synapse is accepted as is (``azurezo up`` provisions demo accounts at every start).
    """
    check_localpart(localpart, home.server_name)
    user_id = home.user_id(localpart)
    async with httpx.AsyncClient() as client:
        await check_synapse(client, home)
        created_binding = await bind(home=home, national_id=national_id, user_id=user_id)
        try:
            await register(client, home=home, localpart=localpart, password=password, admin=admin)
        except AccountExists:
            if exist_ok and not created_binding:
                return user_id
            if created_binding:
                await unbind(home=home, national_id=national_id, user_id=user_id)
            raise
        except BaseException:
            if created_binding:
                await unbind(home=home, national_id=national_id, user_id=user_id)
            raise
    logger.info("account %s created for national id %s", user_id, national_id)
    return user_id


async def ensure_service_account(*, home: Home, localpart: str, password: str) -> str:
    """Register a service account (the bot): listed in the module's ``service_accounts``, unbound.

    It accepts the current terms of use at each start (a new version would otherwise silence it).
    """
    async with httpx.AsyncClient() as client:
        with contextlib.suppress(AccountExists):
            await register(client, home=home, localpart=localpart, password=password)
    await signin.accept_terms(home, localpart)
    return home.user_id(localpart)
