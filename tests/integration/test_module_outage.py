"""Directory outage: new invites are refused with a clear French error, sessions keep working."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.support.stack import Stack, start_stack
from tests.synapse_module.matrix import client_api, eventually, login_raw, new_professional

pytestmark = pytest.mark.synapse


@pytest.fixture(scope="module")
def frozen_directory_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the tests freeze its coordination service (SIGSTOP)."""
    started = start_stack(tmp_path_factory.mktemp("outage"))
    try:
        yield started
    finally:
        service = next(c for c in started.supervisor.children if c.name == "service")
        os.kill(service.pid, signal.SIGCONT)
        started.stop()


async def test_frozen_directory_refuses_invites_but_keeps_sessions_and_logins(
    frozen_directory_stack: Stack,
) -> None:
    stack = frozen_directory_stack
    alice, alice_pw, _ = await new_professional(stack, "outa")
    bob, _, _ = await new_professional(stack, "outb")
    token = await stack.login(alice, alice_pw)
    room = await client_api(stack, "POST", "/_matrix/client/v3/createRoom", token, json={})
    room_id = room.json()["room_id"]
    service = next(c for c in stack.supervisor.children if c.name == "service")

    os.kill(service.pid, signal.SIGSTOP)  # accepts connections, never answers: the timeout path
    try:
        # Past 2 x TTL (1 s in the test profile), every answer must be asked again, and times out.
        await asyncio.sleep(3.0)
        whoami = await client_api(stack, "GET", "/_matrix/client/v3/account/whoami", token)
        assert whoami.status_code == 200, whoami.text  # last known active: the session works
        assert (await login_raw(stack, alice, alice_pw)).status_code == 200

        invite = await client_api(
            stack,
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
            token,
            json={"user_id": bob},
        )
        assert invite.status_code == 403, invite.text
        assert invite.json()["errcode"] == "M_FORBIDDEN"
        assert invite.json()["error"].startswith(
            "L'annuaire des professionnels est momentanément injoignable"
        )
        registration = await stack.register_raw(stack.unique_localpart("during"))
        assert registration.status_code == 403
        assert "injoignable" in registration.json()["error"]
    finally:
        os.kill(service.pid, signal.SIGCONT)

    async def invite_works() -> bool:
        resp = await client_api(
            stack,
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
            token,
            json={"user_id": bob},
        )
        return resp.status_code == 200

    await eventually(invite_works, within=15)
