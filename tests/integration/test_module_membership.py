"""The module in a real Synapse: invites, joins, DMs, admins, deactivation and reactivation."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from nio import (
    JoinError,
    JoinResponse,
    RoomCreateError,
    RoomCreateResponse,
    RoomInviteError,
    RoomInviteResponse,
)

from tests.support.polling import eventually
from tests.support.stack import Stack
from tests.synapse_module.matrix import client_api, login_raw, new_professional

pytestmark = pytest.mark.synapse

NOT_IN_DIRECTORY = (
    "Cette personne n'est pas inscrite dans l'annuaire des professionnels (RPPS/ROR) : "
    "elle ne peut pas être invitée."
)
NO_LONGER_ACTIVE = "Cette personne n'est plus inscrite comme professionnel actif"


async def test_professionals_invite_each_other_and_join(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "alice")
    bob, bob_pw, _ = await new_professional(stack, "bob")
    async with stack.client(alice, alice_pw) as a, stack.client(bob, bob_pw) as b:
        created = await a.room_create(name="Parcours de Mme X")
        assert isinstance(created, RoomCreateResponse), created
        invited = await a.room_invite(created.room_id, bob)
        assert isinstance(invited, RoomInviteResponse), invited
        joined = await b.join(created.room_id)
        assert isinstance(joined, JoinResponse), joined


async def test_dm_with_a_professional_is_created(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "dma")
    bob, _, _ = await new_professional(stack, "dmb")
    async with stack.client(alice, alice_pw) as a:
        dm = await a.room_create(is_direct=True, invite=[bob])
        assert isinstance(dm, RoomCreateResponse), dm


async def test_inviting_someone_outside_the_directory_is_refused_in_french(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "inviter")
    stranger = f"@{stack.unique_localpart('stranger')}:{stack.server_name}"
    async with stack.client(alice, alice_pw) as a:
        room = await a.room_create(name="Salon")
        assert isinstance(room, RoomCreateResponse)
        refused = await a.room_invite(room.room_id, stranger)
        assert isinstance(refused, RoomInviteError)
        assert refused.status_code == "M_FORBIDDEN"
        assert refused.message == NOT_IN_DIRECTORY


async def test_inviting_an_inactive_professional_is_refused(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "inv2")
    bob, _, bob_nid = await new_professional(stack, "soonoff")
    await stack.set_active(bob_nid, False)
    async with stack.client(alice, alice_pw) as a:
        room = await a.room_create(name="Salon")
        assert isinstance(room, RoomCreateResponse)

        async def refused() -> bool:
            resp = await a.room_invite(room.room_id, bob)
            return isinstance(resp, RoomInviteError) and NO_LONGER_ACTIVE in resp.message

        await eventually(refused, within=10)


async def test_dm_with_someone_outside_the_directory_is_refused_before_the_room_exists(
    stack: Stack,
) -> None:
    alice, alice_pw, _ = await new_professional(stack, "dmref")
    stranger = f"@{stack.unique_localpart('nobody')}:{stack.server_name}"
    async with stack.client(alice, alice_pw) as a:
        before = await client_api(stack, "GET", "/_matrix/client/v3/joined_rooms", a.access_token)
        refused = await a.room_create(is_direct=True, invite=[stranger])
        assert isinstance(refused, RoomCreateError)
        assert refused.status_code == "M_FORBIDDEN"
        assert refused.message == NOT_IN_DIRECTORY
        after = await client_api(stack, "GET", "/_matrix/client/v3/joined_rooms", a.access_token)
        assert after.json()["joined_rooms"] == before.json()["joined_rooms"]


async def test_server_admin_gets_no_bypass(stack: Stack) -> None:
    admin, admin_pw, _ = await new_professional(stack, "admin", admin=True)
    token = await stack.login(admin, admin_pw)
    whoami_admin = await client_api(stack, "GET", f"/_synapse/admin/v1/users/{quote(admin)}/admin", token)
    assert whoami_admin.json() == {"admin": True}
    stranger = f"@{stack.unique_localpart('outsider')}:{stack.server_name}"
    async with stack.client(admin, admin_pw) as a:
        # Invites (Synapse skips the spam checker for admins; the event rule still applies).
        room = await a.room_create(name="Salon admin")
        assert isinstance(room, RoomCreateResponse)
        refused = await a.room_invite(room.room_id, stranger)
        assert isinstance(refused, RoomInviteError)
        assert (refused.status_code, refused.message) == ("M_FORBIDDEN", NOT_IN_DIRECTORY)
        # DMs.
        dm = await a.room_create(is_direct=True, invite=[stranger])
        assert isinstance(dm, RoomCreateError)
        assert (dm.status_code, dm.message) == ("M_FORBIDDEN", NOT_IN_DIRECTORY)


async def test_admin_api_cannot_force_an_inactive_professional_into_a_room(stack: Stack) -> None:
    admin, admin_pw, _ = await new_professional(stack, "admjoin", admin=True)
    bob, _, bob_nid = await new_professional(stack, "forced")
    token = await stack.login(admin, admin_pw)
    room = await client_api(
        stack, "POST", "/_matrix/client/v3/createRoom", token, json={"preset": "public_chat"}
    )
    room_id = room.json()["room_id"]
    await stack.set_active(bob_nid, False)

    async def forced_join_refused() -> bool:
        resp = await client_api(
            stack,
            "POST",
            f"/_synapse/admin/v1/join/{quote(room_id)}",
            token,
            json={"user_id": bob},
        )
        return resp.status_code == 403 and "plus inscrit" in resp.json()["error"]

    await eventually(forced_join_refused, within=10)


async def test_third_party_invites_are_refused(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "threepid")
    token = await stack.login(alice, alice_pw)
    room = await client_api(stack, "POST", "/_matrix/client/v3/createRoom", token, json={})
    resp = await client_api(
        stack,
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room.json()['room_id'])}/invite",
        token,
        json={
            "medium": "email",
            "address": "x@example.org",
            "id_server": "id.example.org",
            "id_access_token": "t",
        },
    )
    assert resp.status_code == 403
    assert "adresse e-mail" in resp.json()["error"]


async def test_deactivation_cuts_sessions_logins_and_invites_then_reactivation_restores_them(
    stack: Stack,
) -> None:
    alice, alice_pw, _ = await new_professional(stack, "colleague")
    bob, bob_pw, bob_nid = await new_professional(stack, "leaving")
    bob_token = await stack.login(bob, bob_pw)
    alice_token = await stack.login(alice, alice_pw)
    room = await client_api(stack, "POST", "/_matrix/client/v3/createRoom", alice_token, json={})
    room_id = room.json()["room_id"]
    ttl = 1.0  # the test profile's cache_ttl_seconds
    bound = 2 * ttl + 2 + 1.5  # freshness bound + directory timeout + polling margin

    async def session_works() -> bool:
        r = await client_api(stack, "GET", "/_matrix/client/v3/account/whoami", bob_token)
        return r.status_code == 200

    async def session_cut() -> bool:
        r = await client_api(stack, "GET", "/_matrix/client/v3/account/whoami", bob_token)
        return r.status_code == 403 and r.json()["errcode"] == "ORG_MATRIX_EXPIRED_ACCOUNT"

    assert await session_works()
    await stack.set_active(bob_nid, False)
    await eventually(session_cut, within=bound)

    login = await login_raw(stack, bob, bob_pw)
    assert login.status_code == 403
    assert login.json()["errcode"] == "M_FORBIDDEN"
    assert "la connexion est refusée" in login.json()["error"]
    invite = await client_api(
        stack,
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        alice_token,
        json={"user_id": bob},
    )
    assert invite.status_code == 403
    assert NO_LONGER_ACTIVE in invite.json()["error"]

    await stack.set_active(bob_nid, True)
    await eventually(session_works, within=bound)
    assert (await login_raw(stack, bob, bob_pw)).status_code == 200
    invite = await client_api(
        stack,
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        alice_token,
        json={"user_id": bob},
    )
    assert invite.status_code == 200, invite.text
    join = await client_api(stack, "POST", f"/_matrix/client/v3/join/{quote(room_id)}", bob_token)
    assert join.status_code == 200, join.text


async def test_invited_then_deactivated_professional_cannot_join(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "host")
    bob, bob_pw, bob_nid = await new_professional(stack, "guest")
    async with stack.client(alice, alice_pw) as a, stack.client(bob, bob_pw) as b:
        room = await a.room_create(name="Salon", invite=[bob])
        assert isinstance(room, RoomCreateResponse), room
        await stack.set_active(bob_nid, False)

        async def join_refused() -> bool:
            resp = await b.join(room.room_id)
            return isinstance(resp, JoinError)

        await eventually(join_refused, within=10)
