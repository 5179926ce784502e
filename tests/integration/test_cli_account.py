"""`azurezo account create` against the real stack: directory refusals, a working account."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from azurezo_cli.main import app
from tests.support.stack import Stack, fictitious_national_id

pytestmark = pytest.mark.synapse


def run_cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--home", str(stack.home.path), *args])
    return result.exit_code, result.stdout, result.stderr


def user_exists(stack: Stack, user_id: str) -> bool:
    resp = httpx.get(f"{stack.synapse_url}/_matrix/client/v3/profile/{user_id}", timeout=10)
    return resp.status_code == 200


def test_refuses_a_national_id_not_in_the_directory(stack: Stack) -> None:
    localpart = stack.unique_localpart("inconnu")
    national_id = fictitious_national_id()

    code, out, err = run_cli(stack, "account", "create", national_id, "--localpart", localpart)

    assert code == 1
    assert out == ""
    assert err.startswith("Erreur : ")
    assert "annuaire" in err.lower()
    assert not user_exists(stack, f"@{localpart}:{stack.server_name}")


def test_refuses_an_inactive_professional(stack: Stack) -> None:
    inactive = asyncio.run(stack.add_person(family_name="RETRAITE", given_name="Marc", active=False))
    localpart = stack.unique_localpart("inactif")

    code, out, err = run_cli(stack, "account", "create", inactive.national_id, "--localpart", localpart)

    assert code == 1
    assert out == ""
    assert err.startswith("Erreur : ")
    assert "actif" in err.lower()
    assert not user_exists(stack, f"@{localpart}:{stack.server_name}")


def test_creates_a_working_account_with_a_generated_password(stack: Stack) -> None:
    person = asyncio.run(stack.add_person(family_name="MOREAU", given_name="Lucie"))
    localpart = stack.unique_localpart("lucie")

    code, out, err = run_cli(stack, "account", "create", person.national_id, "--localpart", localpart)

    assert code == 0, err
    first, second = out.strip().splitlines()
    assert first == f"@{localpart}:{stack.server_name}"
    password = second.rsplit(" : ", 1)[1]
    assert len(password) >= 20
    token = asyncio.run(stack.login(first, password))
    assert token


def test_uses_the_password_file_and_prints_no_password(stack: Stack, tmp_path: Path) -> None:
    person = asyncio.run(stack.add_person(family_name="GARCIA", given_name="Ines"))
    localpart = stack.unique_localpart("ines")
    secret_file = tmp_path / "pw"
    secret_file.write_text("un-mot-de-passe-choisi-42\n")

    code, out, err = run_cli(
        stack,
        "account",
        "create",
        person.national_id,
        "--localpart",
        localpart,
        "--password-file",
        str(secret_file),
    )

    assert code == 0, err
    assert out.strip() == f"@{localpart}:{stack.server_name}"
    assert asyncio.run(stack.login(out.strip(), "un-mot-de-passe-choisi-42"))


def test_a_refused_registration_leaves_the_identity_free(stack: Stack) -> None:
    """If Synapse refuses the account after the binding was written, the binding is undone."""
    person = asyncio.run(stack.add_person(family_name="ROUX", given_name="Hugo"))

    # Synapse reserves localparts starting with "_" (our own check leaves Synapse's rules to it).
    code, out, err = run_cli(stack, "account", "create", person.national_id, "--localpart", "_hugo")
    assert code == 1
    assert out == ""
    assert "Synapse refuse l'identifiant « _hugo »" in err

    retry = stack.unique_localpart("hugo")
    code, out, err = run_cli(stack, "account", "create", person.national_id, "--localpart", retry)
    assert code == 0, err
    assert out.splitlines()[0] == f"@{retry}:{stack.server_name}"


def test_an_identity_already_bound_is_refused(stack: Stack) -> None:
    person = asyncio.run(stack.add_person(family_name="FAURE", given_name="Ana"))
    asyncio.run(stack.create_account(person.national_id))

    code, out, err = run_cli(
        stack, "account", "create", person.national_id, "--localpart", stack.unique_localpart()
    )

    assert code == 1
    assert out == ""
    assert err.startswith("Erreur : ")


@pytest.mark.parametrize("localpart", ["azurezo-bot", "notices"])
def test_service_account_names_are_reserved(stack: Stack, localpart: str) -> None:
    person = asyncio.run(stack.add_person())

    code, _, err = run_cli(stack, "account", "create", person.national_id, "--localpart", localpart)

    assert code == 1
    assert "réservé" in err
    user_id, _ = asyncio.run(stack.create_account(person.national_id))  # still free to bind
    assert user_exists(stack, user_id)


def test_refuses_an_invalid_localpart_before_touching_anything(stack: Stack) -> None:
    person = asyncio.run(stack.add_person())

    code, _out, err = run_cli(stack, "account", "create", person.national_id, "--localpart", "Jean Dupont")

    assert code == 1
    assert "minuscules" in err
    # The identity is still free.
    user_id, _ = asyncio.run(stack.create_account(person.national_id))
    assert user_exists(stack, user_id)


def test_shared_secret_registration_needs_the_right_secret(stack: Stack) -> None:
    """The harness's raw registration really is Synapse's HMAC check: a wrong key is refused."""
    from azurezo_cli.accounts import register_with_shared_secret

    async def attempt() -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await register_with_shared_secret(
                client,
                synapse_url=stack.synapse_url,
                shared_secret="x" * 48,
                localpart=stack.unique_localpart("faux"),
                password="whatever-password-1",
            )

    assert asyncio.run(attempt()).status_code == 403
