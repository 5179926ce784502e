"""Notifications from the outbox: latency from a write to the message in the patient's room (issue 9).

    .venv/bin/python bench/bench_notify.py [--rate 50] [--seconds 20]
    AZUREZO_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432 \
        .venv/bin/python bench/bench_notify.py   # service and Synapse on fresh PostgreSQL databases

Starts the real stack (service + Synapse with our module, test-profile rate limits) and the real bot
(``azurezo bot run``) from a fresh home. A professional asks the bot for a patient room, a second one
is added to the care circle (the bot invites them) and both join; the second one's matrix-nio client
syncs all along and timestamps every decrypted message.

1. Baseline (the floor, same run): the first professional sends encrypted messages straight into the
   room at ``--rate`` per second for ``--seconds``: latency = send -> decrypted on the other client.
2. Notifications: the first professional creates tasks assigned to the second one through the API at
   ``--rate`` writes per second: latency = the write committed (the API's 201) -> the bot's message
   « Nouvelle tâche … » decrypted on the assignee's client (outbox read, the page's tasks read through
   the API at once, encrypt, send — a burst's notifications combined per room —, sync).

Prints p50 / p95 / max and how many never arrived, for both; and how long the service takes to answer a
write, one at a time first (its ceiling: a write holds SQLite's write lock throughout), then at the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from nio import AsyncClient, RoomMessageText

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azurezo_cli.bot import health_url  # noqa: E402
from azurezo_cli.home import save_home  # noqa: E402
from azurezo_cli.supervisor import ChildSpec  # noqa: E402
from tests.support.stack import Stack, free_port, start_stack  # noqa: E402

SEQUENTIAL_WRITES = 50
TAG = re.compile(r"(base|task)-(\d{6})")


class Receiver:
    """The assignee's client: syncs continuously, timestamps each tagged message once."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.task_messages = 0  # bot messages carrying task notifications
        client.add_event_callback(self._on_text, RoomMessageText)

    async def _on_text(self, room: Any, event: RoomMessageText) -> None:
        now = time.monotonic()
        tags = [found.group(0) for found in TAG.finditer(event.body)]
        if any(t.startswith("task-") for t in tags):
            self.task_messages += 1
        for tag in tags:  # the bot combines the notifications of a burst into one message, a line each
            if tag in self.arrived:
                self.duplicates += 1
                continue
            self.arrived[tag] = now

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.client.sync(timeout=200, sync_filter={"room": {"timeline": {"limit": 500}}})


def _figures(name: str, sent: dict[str, float], arrived: dict[str, float]) -> None:
    latencies = sorted((arrived[k] - t) * 1000 for k, t in sent.items() if k in arrived)
    lost = len(sent) - len(latencies)
    if not latencies:
        print(f"{name}: nothing arrived ({len(sent)} sent)")
        return
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(
        f"{name}: {len(sent)} sent, {lost} not arrived, p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
    )


def _figures_of(name: str, seconds: list[float]) -> None:
    if seconds:
        ms = sorted(s * 1000 for s in seconds)
        p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
        print(
            f"{name}: {len(ms)} answered, p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, "
            f"max {ms[-1]:.0f} ms"
        )


async def _paced(rate: float, seconds: float, write: Any) -> None:
    """Start ``write(i)`` at ``rate`` per second for ``seconds``, without waiting for each other."""
    started = time.monotonic()
    tasks = []
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(write(i)))
    await asyncio.gather(*tasks)


async def _wait(done: Any, within: float) -> None:
    for _ in range(int(within / 0.2)):
        if done():
            return
        await asyncio.sleep(0.2)


async def _setup(stack: Stack) -> tuple[AsyncClient, AsyncClient, str, str, str]:
    """Two professionals in a bot-created patient room: (sender, assignee, room, patient, assignee nid)."""
    people = [await stack.add_person(family_name=n) for n in ("BENCHA", "BENCHB")]
    accounts = [await stack.create_account(p.national_id) for p in people]
    clients = []
    for user_id, password in accounts:
        cm = stack.client(user_id, password)
        clients.append(await cm.__aenter__())
    alice, erin = clients
    for c in clients:
        await c.sync(timeout=0, full_state=True)
    async with httpx.AsyncClient(
        base_url=stack.service_url, headers={"Authorization": f"Bearer {alice.access_token}"}
    ) as api:
        patient = await api.post(
            "/api/v1/patients",
            json={
                "birth_name": "BENCH",
                "birth_first_names": ["Rose"],
                "birth_date": "1940-01-01",
                "sex": "F",
                "birth_place_code": "06088",
            },
        )
        patient_id = patient.json()["id"]
        await api.post(f"/api/v1/patients/{patient_id}/rooms", json={"create": True})
        await api.post(
            f"/api/v1/patients/{patient_id}/circle",
            json={
                "kind": "professional",
                "national_id": people[1].national_id,
                "role": "IDE",
                "habilite": True,
            },
        )
    room_id = ""
    for c in clients:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not c.invited_rooms:
            await c.sync(timeout=300)
        room_id = next(iter(c.invited_rooms))
        await c.join(room_id)
        await c.sync(timeout=300)
    return alice, erin, room_id, patient_id, people[1].national_id


async def main(rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        stack = await asyncio.to_thread(start_stack, Path(tmp))
        try:
            stack.home = replace(stack.home, bot_port=free_port())
            save_home(stack.home)
            bot = stack.supervisor.start(
                ChildSpec(
                    name="bot",
                    argv=[sys.executable, "-m", "azurezo_cli", "--home", str(stack.home.path), "bot", "run"],
                    log_path=stack.home.logs_dir / "bot.log",
                    ready_url=health_url(stack.home),
                )
            )
            stack.supervisor.wait_ready(bot, timeout=90)
            alice, erin, room_id, patient_id, erin_nid = await _setup(stack)
            receiver = Receiver(erin)
            stop = asyncio.Event()
            syncing = asyncio.ensure_future(receiver.run(stop))
            await asyncio.sleep(2)  # the bot posts the header for each newcomer: let it pass

            base_sent: dict[str, float] = {}
            # One message first: it shares the room key, which concurrent sends must not race for.
            await alice.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "warm-up"},
                ignore_unverified_devices=True,
            )

            share = asyncio.Lock()

            async def direct(i: int) -> None:
                tag = f"base-{i:06d}"
                base_sent[tag] = time.monotonic()
                async with share:  # the key rotates every 100 messages: one sharing at a time
                    if alice.olm is not None and alice.olm.should_share_group_session(room_id):
                        await alice.share_group_session(room_id, ignore_unverified_devices=True)
                await alice.room_send(
                    room_id,
                    "m.room.message",
                    {"msgtype": "m.text", "body": tag},
                    ignore_unverified_devices=True,
                )

            await _paced(rate, seconds, direct)
            await _wait(lambda: all(k in receiver.arrived for k in base_sent), 30)

            task_sent: dict[str, float] = {}
            write_seconds: list[float] = []  # how long the service took to answer each write
            sequential: list[float] = []
            errors: dict[int, int] = {}
            # aiohttp rather than httpx for the paced writes: httpcore's pool compares every queued
            # request with every connection on each hand-off, so once the service lags, the load
            # generator itself took most of a core (py-spy) from the 2 it shares with what it measures.
            async with aiohttp.ClientSession(
                base_url=stack.service_url,
                headers={"Authorization": f"Bearer {alice.access_token}"},
                timeout=aiohttp.ClientTimeout(total=60),
                connector=aiohttp.TCPConnector(limit=100),
            ) as api:

                async def write(i: int) -> None:
                    tag = f"task-{i:06d}"
                    body = {
                        "title": tag,
                        "type": "autre",
                        "patient_id": patient_id,
                        "assignee_national_ids": [erin_nid],
                    }
                    for _ in range(3):  # a dropped keep-alive connection: the same write again
                        try:
                            posted = time.monotonic()
                            async with api.post(
                                "/api/v1/tasks", json=body, headers={"Idempotency-Key": tag}
                            ) as resp:
                                await resp.read()
                            write_seconds.append(time.monotonic() - posted)
                        except aiohttp.ClientConnectionError:
                            errors[0] = errors.get(0, 0) + 1
                            continue
                        if resp.status == 201:
                            task_sent[tag] = time.monotonic()
                        else:
                            errors[resp.status] = errors.get(resp.status, 0) + 1
                        return

                # The service's ceiling: the same write, one at a time (a write's transaction holds
                # SQLite's single write lock from start to end: 1 / this time is the most writes a
                # second it can take). Their notifications pass before the paced writes start.
                for i in range(SEQUENTIAL_WRITES):
                    posted = time.monotonic()
                    async with api.post(
                        "/api/v1/tasks",
                        json={
                            "title": f"seq-{i}",
                            "type": "autre",
                            "patient_id": patient_id,
                            "assignee_national_ids": [erin_nid],
                        },
                    ) as resp:
                        resp.raise_for_status()
                        await resp.read()
                    sequential.append(time.monotonic() - posted)
                await asyncio.sleep(5)
                load = os.getloadavg()[0]
                await _paced(rate, seconds, write)
            await _wait(lambda: all(k in receiver.arrived for k in task_sent), 60)
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(syncing, 5)
            after = os.getloadavg()[0]
            print(f"rate {rate:.0f} writes/s for {seconds:.0f} s, load average {load:.1f} -> {after:.1f}")
            _figures("baseline: direct encrypted message", base_sent, receiver.arrived)
            _figures("task assigned -> bot message", task_sent, receiver.arrived)
            # The clock of a notification starts at the write's 201: a saturated service answers late.
            _figures_of("task write, one at a time (no load)", sequential)
            _figures_of(f"task write at {rate:.0f}/s: POST /api/v1/tasks -> 201", write_seconds)
            # status 0: connection dropped (the write is retried with the same Idempotency-Key)
            print(f"write errors by status: {errors or 'none'}, duplicate messages: {receiver.duplicates}")
            print(f"bot messages carrying the {len(task_sent)} task notifications: {receiver.task_messages}")
            for c in (alice, erin):
                await c.close()
        finally:
            await asyncio.to_thread(stack.stop)  # its PostgreSQL clean-up runs its own event loop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each phase writes")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds))
