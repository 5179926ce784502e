"""The shared stack itself: what other integration tests rely on works end to end."""

from __future__ import annotations

import httpx
import pytest
from nio import JoinedRoomsResponse

from tests.support.stack import Stack

pytestmark = pytest.mark.synapse


async def test_service_authenticates_a_real_matrix_token_and_follows_the_directory(
    stack: Stack,
) -> None:
    person = await stack.add_person(family_name="LEROY", given_name="Anne", profession_code="60")
    user_id, password = await stack.create_account(person.national_id)
    token = await stack.login(user_id, password)
    headers = {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(base_url=stack.service_url, timeout=10) as client:
        me = await client.get("/api/v1/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == user_id
        assert me.json()["national_id"] == person.national_id
        assert me.json()["display_name"] == "Anne LEROY"

        await stack.set_active(person.national_id, False)
        refused = await client.get("/api/v1/me", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["errcode"] == "AZ_INACTIVE"

        await stack.set_active(person.national_id, True)
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 200


async def test_nio_clients_log_in_with_their_own_e2ee_store(stack: Stack) -> None:
    person = await stack.add_person()
    user_id, password = await stack.create_account(person.national_id)

    async with stack.client(user_id, password) as one, stack.client(user_id, password) as two:
        assert one.device_id and two.device_id and one.device_id != two.device_id
        assert one.olm is not None and not one.should_upload_keys
        assert isinstance(await one.joined_rooms(), JoinedRoomsResponse)


async def test_the_bot_account_exists_and_is_not_bound(stack: Stack) -> None:
    token = await stack.login(stack.bot_user_id, stack.bot_password)

    async with httpx.AsyncClient(base_url=stack.service_url, timeout=10) as client:
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 403
    assert me.json()["errcode"] == "AZ_NOT_IN_DIRECTORY"


async def test_set_active_refuses_an_unknown_person(stack: Stack) -> None:
    with pytest.raises(LookupError):
        await stack.set_active("899999999999", False)
