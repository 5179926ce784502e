"""Directory outage: new invites are refused with a clear French error, sessions keep working."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.support.polling import eventually
from tests.support.stack import Stack, start_stack
from tests.synapse_module.matrix import client_api, login_raw, new_professional

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
    carol, _, _ = await new_professional(stack, "outc")
    token = await stack.login(alice, alice_pw)
    room = await client_api(stack, "POST", "/_matrix/client/v3/createRoom", token, json={})
    room_id = room.json()["room_id"]
    service = next(c for c in stack.supervisor.children if c.name == "service")

    os.kill(service.pid, signal.SIGSTOP)  # accepts connections, never answers: the timeout path
    try:
        refusal: dict[str, object] = {}

        async def invite_refused_as_unreachable() -> bool:
            # Past 2 x TTL (1 s in the test profile) the module must ask the frozen service again,
            # and time out: poll for that instead of sleeping a fixed time.
            invite = await client_api(
                stack,
                "POST",
                f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                token,
                json={"user_id": carol},
            )
            refusal.update(status=invite.status_code, body=invite.json())
            return invite.status_code == 403

        await eventually(invite_refused_as_unreachable, within=20, step=0.3)
        body = refusal["body"]
        assert isinstance(body, dict)
        assert body["errcode"] == "M_FORBIDDEN"
        # The first check that needs the service answers: the directory's, or the patient-room rule's
        # (which cannot tell whether this room is a patient's): both fail closed, in French.
        assert "est momentanément injoignable" in str(body["error"]), body
        # Logged as what it is (Synapse's client turns the cancelled request into an IndexError).
        logs = "".join(p.read_text(errors="replace") for p in stack.home.logs_dir.glob("synapse*.log"))
        unavailable = [line for line in logs.splitlines() if "directory unavailable" in line]
        assert unavailable and all(line.endswith(": timeout") for line in unavailable), unavailable[-3:]
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
        assert "est momentanément injoignable" in (invite.json()["error"])
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
