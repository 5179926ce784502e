"""Registration through the module in a real Synapse: shared-secret path and client /register."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from synapse_module.french_refusals import (
    GUEST_ACCESS_CLOSED,
    REGISTRATION_CLOSED,
    WRONG_CREDENTIALS,
)
from tests.support.stack import Stack, fictitious_national_id, start_stack

pytestmark = pytest.mark.synapse

REGISTRATION_OPEN = """\
# Test only: open client registration, to check that the module still gates it.
enable_registration: true
enable_registration_without_verification: true
"""


@pytest.fixture(scope="module")
def open_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second stack whose Synapse has client registration switched on (an operator override)."""
    workdir = tmp_path_factory.mktemp("open-registration")
    overrides = workdir / "home" / "synapse" / "conf.d"
    overrides.mkdir(parents=True)
    (overrides / "registration.yaml").write_text(REGISTRATION_OPEN)
    started = start_stack(workdir)
    try:
        yield started
    finally:
        started.stop()


async def test_shared_secret_registration_of_an_unbound_localpart_is_refused_in_french(
    stack: Stack,
) -> None:
    localpart = stack.unique_localpart("unbound")
    resp = await stack.register_raw(localpart)
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["errcode"] == "M_FORBIDDEN"
    assert body["error"].startswith("Aucun professionnel de l'annuaire (RPPS/ROR)")
    assert f"@{localpart}:{stack.server_name}" in body["error"]


async def test_shared_secret_registration_of_an_admin_is_gated_too(stack: Stack) -> None:
    resp = await stack.register_raw(stack.unique_localpart("rootish"), admin=True)
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "M_FORBIDDEN"


async def test_account_of_an_active_professional_is_created(stack: Stack) -> None:
    person = await stack.add_person(national_id=fictitious_national_id())
    localpart = stack.unique_localpart("newpro")
    user_id, password = await stack.create_account(person.national_id, localpart)
    assert user_id == f"@{localpart}:{stack.server_name}"
    assert await stack.login(user_id, password)


async def test_a_refused_localpart_can_be_created_right_after_its_binding(stack: Stack) -> None:
    """Registration asks the directory afresh: a "not bound" answer cached a moment ago (by this
    refusal) must not block the operator's `account create` that binds then registers."""
    localpart = stack.unique_localpart("late")
    refused = await stack.register_raw(localpart)
    assert refused.status_code == 403
    person = await stack.add_person(national_id=fictitious_national_id())
    user_id, _ = await stack.create_account(person.national_id, localpart)
    assert user_id == f"@{localpart}:{stack.server_name}"


async def _client_register(stack: Stack, localpart: str) -> httpx.Response:
    body: dict[str, Any] = {
        "username": localpart,
        "password": "Mot-de-passe-solide-2024",
        "auth": {"type": "m.login.dummy"},
    }
    async with httpx.AsyncClient(timeout=30.0) as client:
        first = await client.post(f"{stack.synapse_url}/_matrix/client/v3/register", json=body)
        if first.status_code == 401 and "session" in first.json():  # user-interactive auth round
            body["auth"]["session"] = first.json()["session"]
            return await client.post(f"{stack.synapse_url}/_matrix/client/v3/register", json=body)
        return first


async def test_client_registration_of_an_unbound_localpart_is_refused(open_stack: Stack) -> None:
    resp = await _client_register(open_stack, open_stack.unique_localpart("walkin"))
    assert resp.status_code == 403, resp.text
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    assert "annuaire (RPPS/ROR)" in resp.json()["error"]


async def test_client_registration_of_an_inactive_professional_is_refused(
    open_stack: Stack,
) -> None:
    from azurezo_cli import accounts

    person = await open_stack.add_person(national_id=fictitious_national_id())
    localpart = open_stack.unique_localpart("retired")
    await accounts.bind(
        home=open_stack.home,
        national_id=person.national_id,
        user_id=f"@{localpart}:{open_stack.server_name}",
    )
    await open_stack.set_active(person.national_id, False)
    resp = await _client_register(open_stack, localpart)
    assert resp.status_code == 403, resp.text
    assert "n'est pas actif" in resp.json()["error"]


async def test_client_registration_of_a_bound_active_professional_succeeds(
    open_stack: Stack,
) -> None:
    from azurezo_cli import accounts

    person = await open_stack.add_person(national_id=fictitious_national_id())
    localpart = open_stack.unique_localpart("selfserve")
    await accounts.bind(
        home=open_stack.home,
        national_id=person.national_id,
        user_id=f"@{localpart}:{open_stack.server_name}",
    )
    resp = await _client_register(open_stack, localpart)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_id"] == f"@{localpart}:{open_stack.server_name}"


def test_open_stack_really_has_registration_on(open_stack: Stack) -> None:
    """Guards the two tests above: without the override they would pass for the wrong reason."""
    flows = httpx.post(f"{open_stack.synapse_url}/_matrix/client/v3/register", json={}, timeout=30)
    assert flows.status_code == 401
    assert Path(open_stack.home.synapse_overrides_dir / "registration.yaml").exists()


# --- Synapse's own refusals, in French (issue 6, item 14) ------------------------------------------


@pytest.mark.parametrize("version", ["r0", "v3"])
async def test_closed_client_registration_is_refused_in_french(stack: Stack, version: str) -> None:
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=30) as client:
        resp = await client.post(f"/_matrix/client/{version}/register", json={})
        available = await client.get(
            f"/_matrix/client/{version}/register/available", params={"username": "quelquun"}
        )
    for answer in (resp, available):
        assert answer.status_code == 403, answer.text
        assert answer.json()["errcode"] == "M_FORBIDDEN"
        assert answer.json()["error"] == REGISTRATION_CLOSED
        assert answer.headers["access-control-allow-origin"] == "*"


async def test_guest_access_is_refused_in_french(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=30) as client:
        resp = await client.post("/_matrix/client/v3/register", params={"kind": "guest"}, json={})
    assert resp.status_code == 403, resp.text
    assert resp.json() == {"errcode": "M_FORBIDDEN", "error": GUEST_ACCESS_CLOSED}


async def test_a_wrong_password_is_refused_in_french(stack: Stack) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "personne-inconnue"},
        "password": "pas-le-bon",
    }
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=30) as client:
        resp = await client.post("/_matrix/client/v3/login", json=body)
    assert resp.status_code == 403, resp.text
    assert resp.json() == {"errcode": "M_FORBIDDEN", "error": WRONG_CREDENTIALS}


async def test_the_rest_of_the_client_api_is_still_synapse(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=30) as client:
        versions = await client.get("/_matrix/client/versions")
        flows = await client.get("/_matrix/client/v3/login")
        preflight = await client.options("/_matrix/client/v3/register")
        unknown = await client.get("/_matrix/nothing-here")
    assert versions.status_code == 200 and "versions" in versions.json()
    assert flows.status_code == 200 and flows.json()["flows"]
    assert preflight.status_code in (200, 204)
    assert unknown.status_code in (400, 404) and unknown.json()["errcode"] == "M_UNRECOGNIZED"
