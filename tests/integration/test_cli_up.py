"""`azurezo up` end to end, as an operator runs it: a subprocess on free ports with its own home."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.stack import free_port

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

READY_LINE = "Ctrl-C pour tout arrêter."
LOGIN = re.compile(r"^\s+(@\S+)\s+mot de passe : (\S+)")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Up:
    """A running `azurezo up` whose output is read line by line in the background."""

    def __init__(self, home: Path, *args: str, preexec_fn: Callable[[], None] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "azurezo_cli", "--home", str(home), "up", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=preexec_fn,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} in the output of up:\n" + self.output)

    def drain(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def login(synapse_url: str, user_id: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{synapse_url}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        },
        timeout=30,
    )


def test_up_initialises_runs_stops_and_restarts_on_the_same_home(tmp_path: Path) -> None:
    up_home = tmp_path / "var"
    synapse_port, service_port, bot_port = free_port(), free_port(), free_port()
    ports = [
        "--synapse-port",
        str(synapse_port),
        "--service-port",
        str(service_port),
        "--bot-port",
        str(bot_port),
    ]
    synapse_url = f"http://127.0.0.1:{synapse_port}"

    # First start: initialises, prints the URLs and the demo logins.
    first = Up(up_home, *ports, "--server-name", "up.azurezo.test")
    try:
        first.wait_for(READY_LINE)
        out = first.output
        assert "Nouvelle instance « up.azurezo.test »" in out
        assert synapse_url in out
        assert f"http://127.0.0.1:{service_port}/docs" in out
        logins = [m.groups() for line in first.lines if (m := LOGIN.match(line))]
        assert logins, out
        user_id, password = logins[0]
        assert user_id.endswith(":up.azurezo.test")

        assert login(synapse_url, user_id, password).status_code == 200
        assert login(synapse_url, user_id, "wrong-password").status_code == 403
        assert httpx.get(f"http://127.0.0.1:{service_port}/health", timeout=10).status_code == 200
        assert "Robot de coordination : @azurezo-bot:up.azurezo.test" in out
        assert httpx.get(f"http://127.0.0.1:{bot_port}/health", timeout=10).status_code == 200

        children = children_of(first.process.pid)
        assert len(children) == 3  # service, Synapse, bot

        # Ctrl-C stops every child and up exits cleanly.
        first.process.send_signal(signal.SIGINT)
        assert first.drain() == 0, first.output
        assert "AZUREZO est arrêté." in first.output
        assert not [pid for pid in children if alive(pid)]
    finally:
        first.kill()

    settings = json.loads((up_home / "azurezo.json").read_text())
    bot_state = json.loads((up_home / "bot" / "state.json").read_text())
    assert (up_home / "bot" / "state.json").stat().st_mode & 0o777 == 0o600
    signing_key = (up_home / "synapse" / "up.azurezo.test.signing.key").read_text()

    # Second start: same home, same secrets and key, same passwords; a killed Synapse is reported.
    second = Up(up_home, *ports)
    try:
        second.wait_for(READY_LINE)
        assert "Instance « up.azurezo.test » reprise" in second.output
        assert json.loads((up_home / "azurezo.json").read_text())["secrets"] == settings["secrets"]
        assert (up_home / "synapse" / "up.azurezo.test.signing.key").read_text() == signing_key
        assert login(synapse_url, user_id, password).status_code == 200
        # The bot came back on the same device, with the same token and cross-signing seeds.
        again = json.loads((up_home / "bot" / "state.json").read_text())
        assert {k: again[k] for k in ("device_id", "access_token", "pickle_key", "cross_signing")} == {
            k: bot_state[k] for k in ("device_id", "access_token", "pickle_key", "cross_signing")
        }

        children = children_of(second.process.pid)
        [synapse_pid] = [pid for pid in children if b"synapse.app.homeserver" in cmdline(pid)]
        os.kill(synapse_pid, signal.SIGKILL)

        assert second.drain() != 0
        assert "« synapse » s'est arrêté (code de sortie -9)" in second.output
        assert "dernières lignes de son journal" in second.output
        assert not [pid for pid in children if alive(pid)]
    finally:
        second.kill()


def deactivate(home: Path, national_id: str) -> None:
    """Make a directory person inactive, as a real import without them does."""
    from sqlalchemy import update

    from azurezo_cli.home import load_home
    from coordination.db import make_engine, make_sessionmaker, utcnow
    from coordination.directory.models import Person

    async def run() -> None:
        engine = make_engine(load_home(home).database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await session.execute(
                    update(Person)
                    .where(Person.national_id == national_id)
                    .values(active=False, deactivated_at=utcnow(), updated_at=utcnow())
                )
                await session.commit()
                assert result.rowcount == 1  # type: ignore[attr-defined]
        finally:
            await engine.dispose()

    asyncio.run(run())


def ignore_sigint() -> None:
    """What a shell does to a command it starts in the background (`azurezo up &` in a script)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_up_skips_demo_accounts_of_inactive_people_and_stops_on_sigint_even_if_ignored(
    tmp_path: Path,
) -> None:
    """Issue 6 items 10 and 12: inactive demo people never stop `up`; SIGINT always stops it."""
    up_home = tmp_path / "var"
    synapse_port, service_port = free_port(), free_port()
    ports = ["--synapse-port", str(synapse_port), "--service-port", str(service_port)]
    up_ports = [*ports, "--bot-port", str(free_port())]  # never the default 8090 another run may hold
    synapse_url = f"http://127.0.0.1:{synapse_port}"
    server = "demo.azurezo.test"
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "azurezo_cli",
            "--home",
            str(up_home),
            "init",
            *ports,
            "--server-name",
            server,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert init.returncode == 0, init.stdout + init.stderr

    # An import before the first start made a demo person inactive: their account is never created.
    deactivate(up_home, "819990000101")  # kamrani
    first = Up(up_home, *up_ports)
    try:
        first.wait_for(READY_LINE)
        warnings = [line for line in first.lines if line.startswith("Attention :")]
        assert len(warnings) == 1, first.output
        assert f"@kamrani:{server}" in warnings[0] and "819990000101" in warnings[0]
        logins = dict(m.groups() for line in first.lines if (m := LOGIN.match(line)))
        assert f"@kamrani:{server}" not in logins
        assert login(synapse_url, f"@lgarnier:{server}", logins[f"@lgarnier:{server}"]).status_code == 200
        first.process.send_signal(signal.SIGINT)
        assert first.drain() == 0, first.output
    finally:
        first.kill()

    # A later import deactivates a demo person who has an account; the next start goes on, and
    # Ctrl-C still stops it although it was started with SIGINT ignored.
    deactivate(up_home, "0069900001")  # lgarnier
    second = Up(up_home, *up_ports, preexec_fn=ignore_sigint)
    try:
        second.wait_for(READY_LINE)
        warnings = [line for line in second.lines if line.startswith("Attention :")]
        assert len(warnings) == 2, second.output
        assert any(f"@lgarnier:{server}" in w and "n'est plus actif" in w for w in warnings)
        logins = dict(m.groups() for line in second.lines if (m := LOGIN.match(line)))
        assert f"@lgarnier:{server}" not in logins and f"@kamrani:{server}" not in logins
        assert login(synapse_url, f"@jmartin:{server}", logins[f"@jmartin:{server}"]).status_code == 200

        children = children_of(second.process.pid)
        second.process.send_signal(signal.SIGINT)
        assert second.drain() == 0, second.output
        assert "AZUREZO est arrêté." in second.output
        assert not [pid for pid in children if alive(pid)]
    finally:
        second.kill()
