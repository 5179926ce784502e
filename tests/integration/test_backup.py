"""`azurezo backup` under write load, `azurezo restore` into a fresh home: every write accepted before
the backup is there (and what is there is a consistent prefix), media and directory included, and
the bot comes back with its keys: a strict E2EE client's session with it still decrypts.

Runs on SQLite (sqlite backup API) and, with AZUREZO_TEST_POSTGRES_URL, on PostgreSQL (pg_dump /
pg_restore), and on Synapse workers in the workers pass.
"""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from azurezo_cli.home import load_home, save_home
from coordination.db import make_engine, make_sessionmaker
from coordination.directory.models import Person
from tests.coordination_bot.test_bot_e2ee import open_room, start_bot, trust_only_cross_signed
from tests.filetyping import samples
from tests.support.stack import Stack, fictitious_national_id, free_port, resume_stack, start_stack

pytestmark = [pytest.mark.synapse, pytest.mark.slow]


def azurezo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azurezo_cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


class Writer:
    """Sequential writes while the backup runs; each one's acknowledgement time is kept."""

    def __init__(self, stack: Stack, token: str, room_id: str) -> None:
        self.stack = stack
        self.token = token
        self.room_id = room_id
        self.messages: list[tuple[int, float]] = []  # (number, acknowledged at)
        self.people: list[tuple[str, float]] = []
        self.media: list[tuple[str, float]] = []
        self.stop = asyncio.Event()
        self.under_way = asyncio.Event()  # set after 5 writes

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.stack.synapse_url, headers=headers, timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                resp = await client.put(
                    f"/_matrix/client/v3/rooms/{quote(self.room_id)}/send/m.room.message/load{n}",
                    json={"msgtype": "m.text", "body": f"écriture {n}"},
                )
                assert resp.status_code == 200, resp.text
                self.messages.append((n, time.monotonic()))
                if n == 5:
                    self.under_way.set()
                person = await self.stack.add_person(fictitious_national_id(), family_name=f"CHARGE{n}")
                self.people.append((person.national_id, time.monotonic()))
                if n % 5 == 0:
                    upload = await client.post(
                        "/_matrix/media/v3/upload",
                        content=samples.pdf(),
                        headers={"Content-Type": "application/pdf"},
                    )
                    assert upload.status_code == 200, upload.text
                    self.media.append((upload.json()["content_uri"], time.monotonic()))


async def room_bodies(stack: Stack, token: str, room_id: str) -> list[str]:
    bodies: list[str] = []
    async with httpx.AsyncClient(
        base_url=stack.synapse_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        params: dict[str, str | int] = {"dir": "f", "limit": 1000}
        while True:
            page = await client.get(f"/_matrix/client/v3/rooms/{quote(room_id)}/messages", params=params)
            assert page.status_code == 200, page.text
            chunk = page.json()["chunk"]
            bodies += [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]
            if not chunk or "end" not in page.json():
                return bodies
            params["from"] = page.json()["end"]


async def directory_ids(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return set((await session.execute(select(Person.national_id))).scalars())
    finally:
        await engine.dispose()


@pytest.mark.timeout(1200)  # two stacks and two bots start (on workers: 2 x 6 Synapse processes)
async def test_backup_under_load_restores_every_accepted_write_and_the_bots_keys(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    workdir = tmp_path_factory.mktemp("backup")
    stack = await asyncio.to_thread(start_stack, workdir / "original")
    restored: Stack | None = None
    try:
        stack.home = replace(stack.home, bot_port=free_port())  # the bot's health port, ours alone
        save_home(stack.home)
        await asyncio.to_thread(start_bot, stack)
        user_id, password = await stack.create_account(stack.people[0].national_id)
        async with stack.client(user_id, password) as alice:
            await alice.sync(timeout=0, full_state=True)
            conversation = await open_room(stack, alice)
            reply, _ = await conversation.ask("!aide")
            assert "Commandes du robot de coordination" in reply
            [bot_device] = await trust_only_cross_signed(stack, alice)
            room = await alice.room_create(name="Charge")
            room_id = room.room_id  # type: ignore[union-attr]

            writer = Writer(stack, alice.access_token, room_id)
            load = asyncio.create_task(writer.run())
            await writer.under_way.wait()
            started = time.monotonic()
            target = workdir / "sauvegarde"
            result = await asyncio.to_thread(azurezo, stack.home.path, "backup", str(target))
            finished = time.monotonic()
            await asyncio.sleep(0.5)  # a few writes after the backup too
            writer.stop.set()
            await load
            assert result.returncode == 0, result.stdout + result.stderr
            assert "Sauvegarde de « " in result.stdout
            assert stat.S_IMODE(target.stat().st_mode) == 0o700
            assert len(writer.messages) > 5

            # The original is gone (its PostgreSQL databases dropped): restore into a fresh home.
            await asyncio.to_thread(stack.supervisor.stop_all)
            if stack.databases is not None:
                await stack.databases.drop()
            fresh = workdir / "restored" / "home"
            result = await asyncio.to_thread(azurezo, fresh, "restore", str(target))
            assert result.returncode == 0, result.stdout + result.stderr
            home = load_home(fresh)
            assert home.server_name == stack.server_name
            assert home.secrets == stack.home.secrets
            assert home.signing_key_path.read_bytes() == stack.home.signing_key_path.read_bytes()
            restored = await asyncio.to_thread(resume_stack, home, workdir / "restored", stack.databases)
            await asyncio.to_thread(start_bot, restored)

            # Every write acknowledged before the backup started is there; what is there is a
            # prefix of the sequence (one consistent snapshot), up to at most the backup's end.
            bodies = await room_bodies(restored, alice.access_token, room_id)
            numbers = [int(b.split()[-1]) for b in bodies if b.startswith("écriture ")]
            assert numbers == list(range(1, len(numbers) + 1)), numbers
            before = [n for n, at in writer.messages if at < started]
            assert set(before) <= set(numbers)
            assert all(at < finished for n, at in writer.messages if n in numbers)
            people = await directory_ids(home.database_url)
            assert {nid for nid, at in writer.people if at < started} <= people
            for uri, at in writer.media:
                if at < started:
                    download = await alice.download(uri)
                    assert getattr(download, "body", b"").startswith(b"%PDF"), download

            # The bot's device and keys came back: same cross-signed device, the room still decrypts.
            conversation.stack = restored
            assert await trust_only_cross_signed(restored, alice) == [bot_device]
            reply, _ = await conversation.ask("!aide", wait=60)
            assert "Commandes du robot de coordination" in reply
            assert not conversation.undecryptable

            # A backup never overwrites, a restore never replaces an instance.
            again = await asyncio.to_thread(azurezo, fresh, "restore", str(target))
            assert again.returncode == 1 and "contient déjà une instance" in again.stderr
            again = await asyncio.to_thread(azurezo, fresh, "backup", str(target))
            assert again.returncode == 1 and "n'est pas vide" in again.stderr
    finally:
        # In a thread: Stack.stop drops PostgreSQL databases with asyncio.run.
        await asyncio.to_thread(restored.stop if restored is not None else stack.stop)
