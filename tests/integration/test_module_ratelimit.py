"""The bot's message rate in a real Synapse: people keep the per-user limit, the bot does not.

The bot answers every professional of the region; under Synapse's per-user message rate (0.5/s,
burst 20 in production) its replies queued behind 429s (the 1,000-user load benchmark: 902 refused
sends, replies a minute late). Synapse's event-sending limiter only reads its per-user override
table, which the module fills for the service accounts when Synapse starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from azurezo_cli.home import Home
from tests.support.stack import Stack, start_stack
from tests.synapse_module.matrix import client_api, new_professional

pytestmark = pytest.mark.synapse

BURST = 3  # this stack's per-user burst of messages


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own with a per-user message rate tighter than production's."""

    def configure(home: Home) -> Home:
        home.synapse_overrides_dir.mkdir(parents=True, exist_ok=True)
        (home.synapse_overrides_dir / "rate.yaml").write_text(
            f"rc_message: {{per_second: 0.05, burst_count: {BURST}}}\n"
        )
        return home

    stack = start_stack(tmp_path_factory.mktemp("ratelimit"), configure=configure)
    try:
        yield stack
    finally:
        stack.stop()


async def _send_many(stack: Stack, token: str, count: int, prefix: str) -> list[int]:
    created = await client_api(stack, "POST", "/_matrix/client/v3/createRoom", token, json={})
    assert created.status_code == 200, created.text
    room_id = created.json()["room_id"]
    statuses = []
    for i in range(count):
        resp = await client_api(
            stack,
            "PUT",
            f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{prefix}-{i}",
            token,
            json={"msgtype": "m.text", "body": f"message {i}"},
        )
        statuses.append(resp.status_code)
    return statuses


async def test_people_are_rate_limited_but_not_the_bot(limited_stack: Stack) -> None:
    stack = limited_stack
    alice, alice_pw, _ = await new_professional(stack, "rate")
    person = await _send_many(stack, await stack.login(alice, alice_pw), BURST + 3, "p")
    # The limit of this stack applies to people (creating the room used some of the burst).
    assert person[0] == 200 and 429 in person

    bot_token = await stack.login(stack.home.bot_user_id, stack.home.bot_password)
    bot = await _send_many(stack, bot_token, 40, "b")
    assert bot == [200] * 40
