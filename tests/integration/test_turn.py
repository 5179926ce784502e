"""Calls: Synapse hands out TURN credentials that the real coturn accepts (an allocation relays
packets on loopback), with the secret `azurezo init` generated; wrong credentials are refused."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from azurezo_cli import turn
from tests.support.polling import eventually
from tests.support.stack import Stack
from tests.synapse_module.matrix import client_api, new_professional

pytestmark = pytest.mark.synapse


def _uclient(port: int, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """turnutils_uclient (coturn): two clients allocate a relay each and exchange 5 packets."""
    return subprocess.run(
        ["turnutils_uclient", "-y", "-n", "5", "-m", "1", "-u", username, "-w", password, "-p", str(port),
         "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
async def coturn(stack: Stack) -> AsyncIterator[subprocess.Popen[bytes]]:
    if turn.turnserver_binary() is None:
        pytest.fail("coturn is not installed: `make test` installs it (Debian package coturn)")
    log_path = stack.home.logs_dir / "turn.log"
    log = log_path.open("ab")
    offset = log.tell()
    # Started once, before the test: nothing else runs on the event loop meanwhile.
    process = subprocess.Popen(  # noqa: ASYNC220
        turn.turnserver_command(stack.home), stdout=log, stderr=subprocess.STDOUT
    )

    async def listening() -> bool:
        with log_path.open("rb") as fh:
            fh.seek(offset)
            return b"Total General servers" in fh.read()

    try:
        await eventually(listening, within=20)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_the_turn_secret_is_generated_private_and_shared_with_coturn(stack: Stack) -> None:
    secret_file = turn.secret_path(stack.home)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    assert f"static-auth-secret={secret}\n" in turn.config_path(stack.home).read_text()
    assert stat.S_IMODE(turn.config_path(stack.home).stat().st_mode) == 0o600
    assert secret not in stack.home.synapse_config.read_text()  # Synapse reads it from its file


async def test_turn_credentials_from_synapse_allocate_a_relay_through_coturn(
    stack: Stack, coturn: subprocess.Popen[bytes]
) -> None:
    user_id, password, _ = await new_professional(stack, "caller")
    token = await stack.login(user_id, password)
    resp = await client_api(stack, "GET", "/_matrix/client/v3/voip/turnServer", token)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ttl"] == 3600
    assert body["username"].endswith(f":{user_id}")
    ports = {urlsplit(uri.replace("turn:", "turn://", 1)).port for uri in body["uris"]}
    assert ports == {stack.home.turn_port}

    good = _uclient(stack.home.turn_port, body["username"], body["password"])
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    assert "Total lost packets 0 " in good.stdout, good.stdout[-2000:]

    bad = _uclient(stack.home.turn_port, body["username"], "pas-le-bon-mot-de-passe")
    assert bad.returncode != 0
    assert "Cannot complete Allocation" in bad.stdout + bad.stderr
    assert coturn.poll() is None
