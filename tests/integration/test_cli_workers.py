"""`azurezo up --workers` end to end, as an operator runs it: Synapse's main process, its workers and
nginx on PostgreSQL + Redis; each endpoint served by its worker; delisting cuts access within 60 s
in every process (each keeps its own directory cache). Runs in CI's workers pass (make test-workers).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from azurezo_cli.home import postgres_database_urls
from synapse_module.french_refusals import WRONG_CREDENTIALS
from tests.filetyping import samples
from tests.integration.test_cli_up import LOGIN, READY_LINE, Up, alive, children_of, deactivate, login
from tests.support.service import PG_ENV
from tests.support.stack import free_port, workers_mode

pytestmark = [
    pytest.mark.synapse,
    pytest.mark.slow,
    pytest.mark.skipif(not workers_mode(), reason="workers pass only (AZUREZO_TEST_WORKERS=1)"),
]


async def _drop(server_url: str, names: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{server_url}postgres")
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def accept_terms(consent_uri: str) -> None:
    """What the professional does in the browser: open the link, press « J'accepte »."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(consent_uri)
        assert page.status_code == 200, page.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        accepted = browser.post(consent_uri.split("?", 1)[0], data=fields)
        assert accepted.status_code == 200, accepted.text


def _processed(log: Path, method_path: str) -> bool:
    """Synapse's access log line for a request this process handled."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return any("Processed request" in line and method_path in line for line in text.splitlines())


def test_up_workers_routes_each_endpoint_to_its_worker_and_delisting_cuts_every_process(
    tmp_path: Path,
) -> None:
    pg = os.environ[PG_ENV].replace("postgresql+asyncpg://", "postgresql://", 1).rstrip("/") + "/"
    server = f"w{uuid.uuid4().hex[:8]}.cli.test"
    synapse_db, _, service_db, _ = postgres_database_urls(pg, server)
    synapse_port, service_port, bot_port = free_port(), free_port(), free_port()
    home = tmp_path / "var"
    base = f"http://127.0.0.1:{synapse_port}"
    up = Up(
        home,
        "--workers",
        "--postgres",
        pg,
        "--server-name",
        server,
        "--synapse-port",
        str(synapse_port),
        "--service-port",
        str(service_port),
        "--bot-port",
        str(bot_port),
    )
    try:
        up.wait_for(READY_LINE, timeout=400)
        out = up.output
        assert f"Messagerie : {base}" in out
        assert "Synapse en workers derrière nginx" in out
        for name in ("persister1", "sync1", "client1", "media1"):
            assert f"    {name} : http://127.0.0.1:" in out
        children = children_of(up.process.pid)
        assert len(children) == 8  # service, Synapse main + 4 workers, nginx, bot

        well_known = httpx.get(f"{base}/.well-known/matrix/client", timeout=10)
        assert well_known.status_code == 200
        assert well_known.json()["m.homeserver"]["base_url"] == base
        assert well_known.headers["access-control-allow-origin"] == "*"
        assert httpx.get(f"{base}/.well-known/matrix/server", timeout=10).json() == {
            "m.server": f"127.0.0.1:{synapse_port}"
        }

        logins = dict(m.groups() for line in up.lines if (m := LOGIN.match(line)))
        user_id = f"@jmartin:{server}"
        # The module's French refusals hold behind nginx, on the worker that serves /login.
        wrong = login(base, user_id, "pas-le-bon")
        assert wrong.status_code == 403 and wrong.json()["error"] == WRONG_CREDENTIALS, wrong.text
        resp = login(base, user_id, logins[user_id])
        assert resp.status_code == 200, resp.text
        headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            assert client.get("/_matrix/client/v3/sync", params={"timeout": 0}).status_code == 200
            # A production instance asks for the terms of use first (served through the proxy too).
            room = client.post("/_matrix/client/v3/createRoom", json={})
            assert room.status_code == 403 and room.json()["errcode"] == "M_CONSENT_NOT_GIVEN", room.text
            accept_terms(room.json()["consent_uri"])
            # The main process records the acceptance; the worker serving createRoom learns it by
            # replication a moment later (Element shows the terms again until then).
            deadline = time.monotonic() + 15
            room = client.post("/_matrix/client/v3/createRoom", json={})
            while room.status_code == 403 and time.monotonic() < deadline:
                time.sleep(0.2)
                room = client.post("/_matrix/client/v3/createRoom", json={})
            assert room.status_code == 200, room.text
            sent = client.put(
                f"/_matrix/client/v3/rooms/{room.json()['room_id']}/send/m.room.message/t1",
                json={"msgtype": "m.text", "body": "bonjour"},
            )
            assert sent.status_code == 200, sent.text
            uploaded = client.post(
                "/_matrix/media/v3/upload",
                content=samples.pdf(),
                headers={"Content-Type": "application/pdf"},
            )
            assert uploaded.status_code == 200, uploaded.text
        logs = home / "logs"
        assert _processed(logs / "synapse-sync1.log", "GET /_matrix/client/v3/sync")
        assert _processed(logs / "synapse-client1.log", "POST /_matrix/client/v3/login")
        assert _processed(logs / "synapse-client1.log", "PUT /_matrix/client/v3/rooms/")
        assert _processed(logs / "synapse-media1.log", "POST /_matrix/media/v3/upload")
        assert not _processed(logs / "synapse.log", "GET /_matrix/client/v3/sync")
        persister = (logs / "synapse-persister1.log").read_text(errors="replace")
        assert "Processed request" in persister and "/_synapse/replication/send_event" in persister

        # Delisting: the production cache (30 s) of each process expires; within 60 s both the
        # client worker (whoami) and the sync worker refuse the session.
        deactivate(home, _national_id("jmartin"))
        refused = _wait_refused(base, headers, within=60)
        assert refused == {"whoami": 403, "sync": 403}, refused

        up.process.send_signal(signal.SIGINT)
        assert up.drain(timeout=120) == 0, up.output
        assert not [pid for pid in children if alive(pid)]
    finally:
        up.kill()
        asyncio.run(_drop(pg, [synapse_db, service_db]))


def _national_id(localpart: str) -> str:
    from azurezo_cli.bootstrap import load_demo_accounts

    return next(a.national_id for a in load_demo_accounts() if a.localpart == localpart)


def _wait_refused(base: str, headers: dict[str, str], *, within: float) -> dict[str, int]:
    """Poll whoami (client worker) and /sync (sync worker) until both refuse, or ``within`` s."""
    start = time.monotonic()
    last: dict[str, int] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        while time.monotonic() - start < within:
            last = {
                "whoami": client.get("/_matrix/client/v3/account/whoami").status_code,
                "sync": client.get("/_matrix/client/v3/sync", params={"timeout": 0}).status_code,
            }
            if all(code == 403 for code in last.values()):
                return last
            time.sleep(1)
    return last
