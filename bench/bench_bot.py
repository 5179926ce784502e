"""Coordination bot: command round trip in E2EE rooms, against a bare echo bot in the same run.

    .venv/bin/python bench/bench_bot.py [--rounds 40] [--users 20] [--burst 10]

Starts the real stack (service + Synapse with our module, test profile rate limits) and the real bot
(``azurezo bot run``) from a fresh home, plus a bare matrix-nio echo bot (its own process, the floor:
sync, decrypt, encrypt, send — no service call). ``--users`` professionals each create an encrypted
room with the coordination bot, linked to a patient of their own with 3 open tasks, and one with the
echo bot.

1. Round trip: the first professional sends ``!taches`` (reply: the decrypted task list) and, in
   turn, a message to the echo bot; ``--rounds`` of each, alternating so machine noise hits both
   alike, while the other professionals keep their rooms active (a message each every ``--chatter``
   seconds, default 5).
2. Burst: every professional sends ``--burst`` ``!taches`` at once (``users x burst`` commands);
   counts replies, errors and lost commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azurezo_cli.bot import health_url  # noqa: E402
from azurezo_cli.home import save_home  # noqa: E402
from azurezo_cli.supervisor import ChildSpec  # noqa: E402
from tests.support.stack import Stack, free_port, start_stack  # noqa: E402

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


# --- the echo bot (run as its own process: --echo) -------------------------------------------------
async def echo_bot(homeserver: str, user_id: str, password: str, store: str) -> None:
    client = AsyncClient(
        homeserver, user_id, store_path=store, config=AsyncClientConfig(encryption_enabled=True)
    )
    resp = await client.login(password, device_name="echo")
    assert isinstance(resp, LoginResponse), resp
    if client.should_upload_keys:
        await client.keys_upload()
    await client.sync(timeout=0)

    async def on_invite(room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == user_id and event.membership == "invite":
            await client.join(room.room_id)

    async def on_text(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == user_id:
            return
        await client.room_send(
            room.room_id,
            "m.room.message",
            {
                "msgtype": "m.notice",
                "body": event.body,
                "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
            },
            ignore_unverified_devices=True,
        )

    client.add_event_callback(on_invite, InviteMemberEvent)  # type: ignore[arg-type]
    client.add_event_callback(on_text, RoomMessageText)  # type: ignore[arg-type]
    print("echo ready", flush=True)
    await client.sync_forever(timeout=30000)


# --- professionals ----------------------------------------------------------------------------------
class Pro:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.replies: dict[str, float] = {}
        self.bodies: dict[str, str] = {}
        self.bot_room = ""
        self.echo_room = ""
        self.undecryptable: list[MegolmEvent] = []
        client.add_event_callback(self._on_notice, RoomMessageNotice)  # type: ignore[arg-type]
        client.add_event_callback(self._on_megolm, MegolmEvent)  # type: ignore[arg-type]

    async def _on_megolm(self, room: MatrixRoom, event: MegolmEvent) -> None:
        self.undecryptable.append(event)

    async def _on_notice(self, room: MatrixRoom, event: RoomMessageNotice) -> None:
        target = event.source["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        if target:
            self.replies[target] = time.monotonic()
            self.bodies[target] = event.body

    async def send(self, room_id: str, body: str) -> tuple[str, float]:
        started = time.monotonic()
        resp = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
        )
        assert isinstance(resp, RoomSendResponse), resp
        return resp.event_id, started

    async def wait(self, event_id: str, timeout: float = 60.0) -> float | None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if event_id in self.replies:
                return self.replies[event_id]
            await asyncio.sleep(0.005)
        return None


async def room_with(pro: Pro, invitee: str) -> str:
    resp = await pro.client.room_create(invite=[invitee], initial_state=[ENCRYPTION], room_version="11")
    assert isinstance(resp, RoomCreateResponse), resp
    for _ in range(600):
        room = pro.client.rooms.get(resp.room_id)
        if room is not None and invitee in room.users:
            return resp.room_id
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{invitee} did not join")


async def patient_with_tasks(stack: Stack, token: str, i: int) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.service_url, headers=headers, timeout=30) as http:
        resp = await http.post(
            "/api/v1/patients",
            json={
                "birth_name": f"BENCH{chr(65 + i // 26)}{chr(65 + i % 26)}",
                "birth_first_names": ["Test"],
                "birth_date": "1940-01-01",
                "sex": "F",
                "birth_place_code": "06088",
                "confirm_duplicate": True,
            },
        )
        resp.raise_for_status()
        patient_id = str(resp.json()["id"])
        for n in range(3):
            task = {"title": f"Tâche {n}", "type": "autre", "patient_id": patient_id}
            (await http.post("/api/v1/tasks", json=task)).raise_for_status()
    return patient_id


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(stack: Stack, args: argparse.Namespace, work: Path) -> None:
    echo_localpart = stack.unique_localpart("echo")
    echo_person = await stack.add_person(family_name="ECHO")
    echo_user, echo_password = await stack.create_account(echo_person.national_id, echo_localpart)
    echo = stack.supervisor.start(
        ChildSpec(
            name="echo",
            argv=[
                sys.executable,
                __file__,
                "--echo",
                stack.synapse_url,
                echo_user,
                echo_password,
                str(work / "echo"),
            ],
            log_path=stack.home.logs_dir / "echo.log",
            ready_url=health_url(stack.home),  # the bot's: the echo bot has no endpoint of its own
        )
    )
    (work / "echo").mkdir(exist_ok=True)
    async with contextlib.AsyncExitStack() as exits:
        pros: list[Pro] = []
        for i in range(args.users):
            person = await stack.add_person(family_name=f"PRO{i}")
            user_id, password = await stack.create_account(person.national_id)
            client = await exits.enter_async_context(stack.client(user_id, password))
            pros.append(Pro(client))
        # A large timeline limit: a client must not miss replies in a "limited" sync during the burst.
        full = {"room": {"timeline": {"limit": 500}}}
        syncers = [
            asyncio.ensure_future(p.client.sync_forever(timeout=30000, sync_filter=full)) for p in pros
        ]
        try:
            print(f"Préparation : {args.users} salons chiffrés avec le robot, liés à un patient (3 tâches)…")
            for i, pro in enumerate(pros):
                pro.bot_room = await room_with(pro, stack.bot_user_id)
                patient_id = await patient_with_tasks(stack, pro.client.access_token, i)
                async with httpx.AsyncClient(timeout=30) as http:
                    (
                        await http.post(
                            f"{stack.service_url}/api/v1/patients/{patient_id}/rooms",
                            headers={"Authorization": f"Bearer {pro.client.access_token}"},
                            json={"room_id": pro.bot_room},
                        )
                    ).raise_for_status()
            pros[0].echo_room = await room_with(pros[0], echo_user)
            # Warm up: the first message of a room shares its room key.
            for pro in pros:
                event_id, _ = await pro.send(pro.bot_room, "!taches")
                if await pro.wait(event_id) is None:
                    raise RuntimeError(
                        f"no reply while warming up ({len(pro.undecryptable)} undecryptable events: "
                        + ", ".join(f"{e.sender} {e.session_id}" for e in pro.undecryptable)
                        + ")"
                    )
            event_id, _ = await pros[0].send(pros[0].echo_room, "warm-up")
            assert await pros[0].wait(event_id) is not None, "the echo bot does not answer"

            stop_chatter = asyncio.Event()

            async def chatter(pro: Pro) -> None:
                while not stop_chatter.is_set():
                    await pro.send(pro.bot_room, "message ordinaire")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop_chatter.wait(), args.chatter)

            chatters = [asyncio.ensure_future(chatter(p)) for p in pros[1:]]
            bot_rtt: list[float] = []
            echo_rtt: list[float] = []
            me = pros[0]
            for _ in range(args.rounds):
                for room, into in ((me.bot_room, bot_rtt), (me.echo_room, echo_rtt)):
                    event_id, started = await me.send(room, "!taches")
                    done = await me.wait(event_id)
                    if done is None:
                        raise RuntimeError("a round-trip command got no reply")
                    into.append((done - started) * 1000)
            stop_chatter.set()
            await asyncio.gather(*chatters)

            print(
                f"\nAller-retour de « !taches » en salon chiffré, {args.users} salons actifs "
                f"({args.rounds} mesures) :"
            )
            for name, values in (("robot de coordination", bot_rtt), ("robot écho (plancher)", echo_rtt)):
                print(
                    f"  {name:<22} p50 {statistics.median(values):6.0f} ms   p95 {pct(values, 0.95):6.0f} ms"
                    f"   max {max(values):6.0f} ms"
                )

            total = args.users * args.burst
            print(f"\nRafale : {total} commandes « !taches » simultanées de {args.users} professionnels…")
            started = time.monotonic()

            async def fire(pro: Pro) -> list[tuple[str, float]]:
                return [await pro.send(pro.bot_room, "!taches") for _ in range(args.burst)]

            sent = await asyncio.gather(*(fire(p) for p in pros))
            latencies: list[float] = []
            lost = 0
            for pro, events in zip(pros, sent, strict=True):
                for event_id, t0 in events:
                    done = await pro.wait(event_id, timeout=max(5.0, 120 - (time.monotonic() - started)))
                    if done is None:
                        lost += 1
                    else:
                        latencies.append((done - t0) * 1000)
            elapsed = time.monotonic() - started
            errors = sum(
                1
                for pro, events in zip(pros, sent, strict=True)
                for event_id, _ in events
                if event_id in pro.bodies
                and not pro.bodies[event_id].startswith("Tâches ouvertes du patient")
            )
            print(
                f"  {total - lost} réponses / {total} en {elapsed:.1f} s ; perdues : {lost} ; "
                f"réponses d'erreur : {errors}"
            )
            if latencies:
                print(
                    f"  latence p50 {statistics.median(latencies):.0f} ms   p95 {pct(latencies, 0.95):.0f} ms"
                )
            log = (stack.home.logs_dir / "bot.log").read_text()
            handled = [float(m[1]) for m in re.finditer(r"answered in (\d+) ms", log)]
            if handled:
                print(
                    f"  traitement par le robot (son journal, toutes les commandes) : "
                    f"p50 {statistics.median(handled):.0f} ms   p95 {pct(handled, 0.95):.0f} ms"
                )
        finally:
            for task in syncers:
                task.cancel()
            await asyncio.gather(*syncers, return_exceptions=True)
    stack.supervisor.children.remove(echo)
    echo.process.terminate()
    echo.process.wait(timeout=10)
    echo.log_file.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--echo":
        asyncio.run(echo_bot(*sys.argv[2:6]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument(
        "--chatter", type=float, default=5.0, help="seconds between messages in each other room"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="azurezo-bench-bot-") as tmp:
        work = Path(tmp)
        print("Démarrage du service, de Synapse et du robot…")
        stack = start_stack(work)
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
            asyncio.run(bench(stack, args, work))
        except BaseException:
            sys.stderr.write(stack.log_tail("bot", 40) + "\n")
            raise
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
