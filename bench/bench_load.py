"""Load: simulated professionals (Locust) on `azurezo up --workers`, then on the single-process default.

    .venv/bin/python bench/bench_load.py [--users 1000] [--rooms 200] [--minutes 10]
        [--topology both|workers|single] [--postgres postgresql://postgres@127.0.0.1:5432/]

For each topology, in the same invocation (workers first, then the single process on SQLite):

1. ``azurezo --home <fresh> up --no-demo`` (with ``--workers --postgres URL`` for the worker
   topology: main process, generic workers, event persister, media worker, Redis, nginx), as an
   operator runs it: production profile (terms of use, production rate limits), its bot.
2. Setup, before the clock starts: ``--users`` professionals in the directory (as an import would),
   each bound and registered by shared-secret registration (our module checks each one with the
   service), terms of use accepted; ``--rooms`` private rooms of ``users / rooms`` professionals each,
   half of them encrypted (``m.room.encryption``), the bot invited into all of them (it joins by
   itself; an admin lifts the bot's join rate limit during the setup only, then removes it).
3. Locust (``bench/locustfile_load.py``, headless, one process): every professional keeps a /sync
   long poll open and sends a message every ``--message-interval`` seconds; ``--commands-per-minute``
   ``!taches`` commands (round trip to the bot's reply seen in /sync) and ``--uploads-per-minute``
   uploads in all. Users start at ``--spawn-rate`` a second; the clock runs ``--minutes`` after the
   last one started.
4. psutil samples every process of the instance (and Locust, PostgreSQL, Redis) every 2 s: CPU
   (share of one core, averaged over the run) and memory (RSS: mean and peak).

Prints Locust's figures (count, failures, p50/p95/p99/max per request), the processes, and the ratio
single process / workers for the p95s. Writes the figures to ``bench/out/load-<topology>.json`` and
keeps the instance's logs in ``bench/out/logs-<topology>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azurezo_cli import signin  # noqa: E402
from azurezo_cli.home import Home, load_home, postgres_database_urls  # noqa: E402
from coordination.db import make_engine, make_sessionmaker  # noqa: E402
from coordination.directory import service as directory  # noqa: E402
from coordination.synapse_registration import register_with_shared_secret  # noqa: E402
from tests.support.stack import DirectoryPerson, _insert_people, free_port  # noqa: E402

OUT = ROOT / "bench" / "out"
LOCUSTFILE = ROOT / "bench" / "locustfile_load.py"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
SETUP_CONCURRENCY = 16
READY_TEXT = "AZUREZO est prêt"


# --- the instance ------------------------------------------------------------------------------
class Instance:
    """``azurezo up`` as a child process (its own process group), stopped with Ctrl-C (SIGINT)."""

    def __init__(self, work: Path, topology: str, postgres: str) -> None:
        self.topology = topology
        self.home_path = work / "home"
        self.server_name = f"load{uuid.uuid4().hex[:6]}.azurezo.test"
        self.postgres = postgres
        self.log_path = work / "azurezo-up.log"
        argv = [
            sys.executable,
            "-m",
            "azurezo_cli",
            "--home",
            str(self.home_path),
            "up",
            "--no-demo",
            "--server-name",
            self.server_name,
            "--synapse-port",
            str(free_port()),
            "--service-port",
            str(free_port()),
            "--bot-port",
            str(free_port()),
        ]
        if topology == "workers":
            argv += ["--workers", "--postgres", postgres]
        # Setup only: shared-secret registration hashes each password with bcrypt (12 rounds by
        # default, ~0.25 s of CPU each: 1,000 accounts would take most of the setup on a busy 2-core
        # machine). Nobody logs in while the clock runs, so the measured load is unchanged.
        overrides = self.home_path / "synapse" / "conf.d"
        overrides.mkdir(parents=True)
        (overrides / "bench-load.yaml").write_text("bcrypt_rounds: 4\n")
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 600.0) -> Home:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if READY_TEXT in text:
                return load_home(self.home_path)
            if self.process.poll() is not None:
                raise RuntimeError(f"azurezo up s'est arrêté :\n{text[-3000:]}")
            time.sleep(1)
        raise RuntimeError(f"azurezo up n'est pas prêt en {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        if self.topology == "workers":
            asyncio.run(_drop_databases(self.postgres, self.server_name))


async def _drop_databases(postgres: str, server_name: str) -> None:
    import asyncpg

    synapse_db, _, service_db, _ = postgres_database_urls(postgres, server_name)
    conn = await asyncpg.connect(postgres.rstrip("/") + "/postgres")
    try:
        for name in (synapse_db, service_db):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- setup: directory, accounts, rooms ---------------------------------------------------------
def national_id(i: int) -> str:
    from coordination.directory.rules import luhn_key

    body = f"97{i:08d}"
    return "8" + body + luhn_key(body)


async def _register(
    http: httpx.AsyncClient, home: Home, localpart: str, admin: bool = False
) -> dict[str, Any]:
    resp = await register_with_shared_secret(
        http,
        synapse_url=home.synapse_url,
        shared_secret=home.secrets.registration_shared_secret,
        localpart=localpart,
        password=uuid.uuid4().hex,
        admin=admin,
    )
    if resp.status_code != 200:
        raise RuntimeError(f"registration of {localpart}: HTTP {resp.status_code} {resp.text[:300]}")
    data: dict[str, Any] = resp.json()
    return data


async def _checked(resp_coro: Any, what: str) -> dict[str, Any]:
    resp: httpx.Response = await resp_coro
    if resp.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {resp.status_code} {resp.text[:300]}")
    data: dict[str, Any] = resp.json()
    return data


async def setup(home: Home, users: int, rooms: int) -> list[dict[str, Any]]:
    """Directory, accounts (bound, registered, terms accepted), rooms with the bot; the accounts."""
    started = time.monotonic()
    people = [DirectoryPerson(national_id(i), f"CHARGE{i}", "Camille") for i in range(users + 1)]
    await _insert_people(home.database_url, people)
    localparts = [f"pro{i:05d}" for i in range(users)] + ["admin-charge"]
    engine = make_engine(home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            for person, localpart in zip(people, localparts, strict=True):
                await directory.bind_account(
                    session=session, national_id=person.national_id, user_id=home.user_id(localpart)
                )
            await session.commit()
    finally:
        await engine.dispose()
    print(
        f"  annuaire et rattachements : {users + 1} personnes ({time.monotonic() - started:.0f} s)",
        flush=True,
    )

    limits = httpx.Limits(max_connections=SETUP_CONCURRENCY * 2)
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=home.synapse_url, timeout=120.0, limits=limits) as http:

        async def register(localpart: str, admin: bool = False) -> dict[str, Any]:
            async with gate:
                data = await _register(http, home, localpart, admin)
                if not admin:
                    await signin.accept_terms(home, localpart)
                return data

        registered = await asyncio.gather(*(register(lp) for lp in localparts[:-1]))
        admin = await register(localparts[-1], admin=True)
        print(f"  comptes enregistrés : {users} ({time.monotonic() - started:.0f} s)", flush=True)
        admin_auth = {"Authorization": f"Bearer {admin['access_token']}"}
        bot_override = f"/_synapse/admin/v1/users/{home.bot_user_id}/override_ratelimit"
        # The bot joins every room: without this, its production join rate (0.2/s) would stretch the
        # setup by 15 minutes. Put back as it was (the module's message rate for the bot) before the
        # clock starts.
        own_rate = await _checked(http.get(bot_override, headers=admin_auth), "override_ratelimit (get)")
        await _checked(
            http.post(bot_override, json={"messages_per_second": 0, "burst_count": 0}, headers=admin_auth),
            "override_ratelimit",
        )
        accounts = [
            {
                "user_id": data["user_id"],
                "token": data["access_token"],
                "device_id": data["device_id"],
                "room": i % rooms,
            }
            for i, data in enumerate(registered)
        ]

        async def make_room(r: int) -> None:
            members = [a for a in accounts if a["room"] == r]
            creator, others = members[0], members[1:]
            encrypted = r % 2 == 0
            body: dict[str, Any] = {
                "preset": "private_chat",
                "name": f"Charge {r}",
                "invite": [m["user_id"] for m in others] + [home.bot_user_id],
                # The bot may redact (file rules): otherwise it posts a notice in each encrypted room
                # it joins, 100 rate-limited messages while the clock would already run.
                "power_level_content_override": {"users": {home.bot_user_id: 50}},
                "initial_state": [ENCRYPTION] if encrypted else [],
            }
            async with gate:
                created = await _checked(
                    http.post(
                        "/_matrix/client/v3/createRoom",
                        json=body,
                        headers={"Authorization": f"Bearer {creator['token']}"},
                    ),
                    f"room {r}",
                )
            for m in members:
                m["room_id"] = created["room_id"]
                m["encrypted"] = encrypted
            for m in others:
                async with gate:
                    await _checked(
                        http.post(
                            f"/_matrix/client/v3/join/{created['room_id']}",
                            json={},
                            headers={"Authorization": f"Bearer {m['token']}"},
                        ),
                        f"join {r}",
                    )

        await asyncio.gather(*(make_room(r) for r in range(rooms)))
        print(f"  salons créés : {rooms} ({time.monotonic() - started:.0f} s)", flush=True)
        waiting = {a["room_id"]: a["token"] for a in accounts}
        deadline = time.monotonic() + 900
        while waiting and time.monotonic() < deadline:
            for room_id, token in list(waiting.items()):
                data = await _checked(
                    http.get(
                        f"/_matrix/client/v3/rooms/{room_id}/joined_members",
                        headers={"Authorization": f"Bearer {token}"},
                    ),
                    "joined_members",
                )
                if home.bot_user_id in data["joined"]:
                    del waiting[room_id]
            if waiting:
                await asyncio.sleep(2)
        if waiting:
            raise RuntimeError(f"le robot n'a pas rejoint {len(waiting)} salons en 15 minutes")
        if own_rate:
            await _checked(http.post(bot_override, json=own_rate, headers=admin_auth), "override_ratelimit")
        else:
            await _checked(http.delete(bot_override, headers=admin_auth), "override_ratelimit (delete)")
        print(f"  robot dans les {rooms} salons ({time.monotonic() - started:.0f} s)", flush=True)
        # The clock starts once the bot has worked through its joins: a command in the last room
        # created is answered.
        probe = next(a for a in reversed(accounts) if not a["encrypted"])
        auth = {"Authorization": f"Bearer {probe['token']}"}
        sent = await _checked(
            http.put(
                f"/_matrix/client/v3/rooms/{probe['room_id']}/send/m.room.message/{uuid.uuid4().hex}",
                json={"msgtype": "m.text", "body": "!taches"},
                headers=auth,
            ),
            "probe",
        )
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            page = await _checked(
                http.get(
                    f"/_matrix/client/v3/rooms/{probe['room_id']}/messages",
                    params={"dir": "b", "limit": 20},
                    headers=auth,
                ),
                "probe reply",
            )
            if any(
                e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                == sent["event_id"]
                for e in page["chunk"]
            ):
                break
            await asyncio.sleep(2)
        else:
            raise RuntimeError("le robot ne répond pas à la commande de contrôle en 15 minutes")
        print(f"  robot prêt, il répond ({time.monotonic() - started:.0f} s)", flush=True)
    return accounts


# --- processes ---------------------------------------------------------------------------------
def label(proc: psutil.Process, database_marker: str) -> str | None:
    """The name a process is reported under; None for processes that are not this instance's."""
    try:
        cmd = proc.cmdline()
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    line = " ".join(cmd)
    if "locust" in line:
        return "locust (générateur de charge)"
    if "generic_worker" in line or "media_repository" in line:
        return "synapse " + Path(cmd[-1]).stem
    if "synapse.app.homeserver" in line:
        return "synapse (principal)"
    if name.startswith("nginx"):
        return "nginx"
    if "service run" in line or "uvicorn" in line:
        return "service de coordination"
    if "bot run" in line:
        return "robot"
    if "azurezo_cli" in line and " up" in line:
        return "azurezo up (superviseur)"
    if name.startswith("postgres"):
        # Only the backends connected to this instance's databases: the server is shared.
        return "PostgreSQL (connexions de l'instance)" if database_marker in line else None
    if name.startswith("redis-server"):
        return "Redis (partagé)"
    return None


@dataclass
class Usage:
    cpu_first: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)
    rss: list[int] = field(default_factory=list)


class Sampler(threading.Thread):
    """CPU time and RSS of each process of interest, every ``interval`` seconds, by label."""

    def __init__(self, roots: list[int], database_marker: str, interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.database_marker = database_marker
        self.interval = interval
        self.usage: dict[str, Usage] = {}
        self.machine_cpu: list[float] = []
        self.loads: list[float] = []
        self.stopped = threading.Event()
        self.started_at = self.ended_at = time.monotonic()

    def processes(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in self.roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                found[pid] = root
                for child in root.children(recursive=True):
                    found[child.pid] = child
        for proc in psutil.process_iter(["name"]):
            if (proc.info["name"] or "").startswith(("postgres", "redis-server")):
                found[proc.pid] = proc
        return list(found.values())

    def sample(self) -> None:
        rss: dict[str, int] = {}
        for proc in self.processes():
            name = label(proc, self.database_marker)
            if name is None:
                continue
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            usage = self.usage.setdefault(name, Usage())
            usage.cpu_first.setdefault(proc.pid, times.user + times.system)
            usage.cpu_last[proc.pid] = times.user + times.system
            rss[name] = rss.get(name, 0) + memory
        for name, total in rss.items():
            self.usage[name].rss.append(total)
        self.machine_cpu.append(psutil.cpu_percent(interval=None))
        self.loads.append(os.getloadavg()[0])

    def run(self) -> None:
        psutil.cpu_percent(interval=None)
        self.started_at = time.monotonic()
        while not self.stopped.wait(self.interval):
            self.sample()
        self.ended_at = time.monotonic()

    def report(self) -> list[dict[str, Any]]:
        wall = max(self.ended_at - self.started_at, 1e-9)
        rows = []
        for name, usage in sorted(self.usage.items()):
            cpu = sum(usage.cpu_last[pid] - usage.cpu_first[pid] for pid in usage.cpu_last)
            rows.append(
                {
                    "process": name,
                    "cpu_percent": 100 * cpu / wall,
                    "rss_mean_mb": sum(usage.rss) / max(len(usage.rss), 1) / 2**20,
                    "rss_max_mb": max(usage.rss, default=0) / 2**20,
                }
            )
        return rows


# --- one run -----------------------------------------------------------------------------------
def read_stats(prefix: Path) -> list[dict[str, Any]]:
    rows = []
    with (prefix.parent / f"{prefix.name}_stats.csv").open() as handle:
        for row in csv.DictReader(handle):
            rows.append(
                {
                    "type": row["Type"],
                    "name": row["Name"],
                    "count": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "p50": float(row["50%"] or 0),
                    "p95": float(row["95%"] or 0),
                    "p99": float(row["99%"] or 0),
                    "max": float(row["Max Response Time"] or 0),
                }
            )
    return rows


def read_failures(prefix: Path) -> list[dict[str, str]]:
    path = prefix.parent / f"{prefix.name}_failures.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def run(topology: str, args: argparse.Namespace) -> dict[str, Any]:
    title = "workers (PostgreSQL + Redis + nginx)" if topology == "workers" else "processus unique (SQLite)"
    print(
        f"\n=== {title} : {args.users} professionnels, {args.rooms} salons, {args.minutes} min ===",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix=f"azurezo-bench-load-{topology}-") as tmp:
        work = Path(tmp)
        instance = Instance(work, topology, args.postgres)
        try:
            home = instance.wait_ready()
            print(f"  instance prête : {home.synapse_url} (journaux : {home.logs_dir})", flush=True)
            accounts = asyncio.run(setup(home, args.users, args.rooms))
            state = work / "state.json"
            state.write_text(
                json.dumps(
                    {
                        "bot": home.bot_user_id,
                        "message_interval": args.message_interval,
                        "commands_per_minute": args.commands_per_minute,
                        "uploads_per_minute": args.uploads_per_minute,
                        "accounts": accounts,
                    }
                )
            )
            OUT.mkdir(exist_ok=True)
            prefix = OUT / f"load-{topology}"
            ramp = args.users / args.spawn_rate
            duration = round(ramp + args.minutes * 60)
            locust = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(LOCUSTFILE),
                    "--headless",
                    "--host",
                    home.synapse_url,
                    "--users",
                    str(args.users),
                    "--spawn-rate",
                    str(args.spawn_rate),
                    "--run-time",
                    f"{duration}s",
                    "--stop-timeout",
                    "5",
                    "--csv",
                    str(prefix),
                    "--only-summary",
                    "--loglevel",
                    "WARNING",
                ],
                env={**os.environ, "AZUREZO_BENCH_LOAD_STATE": str(state)},
                stdout=(work / "locust.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            marker = postgres_database_urls(args.postgres, instance.server_name)[0].removesuffix("_synapse")
            sampler = Sampler([instance.process.pid, locust.pid], marker)
            load_before = os.getloadavg()
            print(
                f"  Locust : {args.users} utilisateurs à {args.spawn_rate}/s, puis {args.minutes} min "
                f"({duration} s en tout) ; charge machine avant : {load_before[0]:.2f}",
                flush=True,
            )
            sampler.start()
            locust.wait()
            sampler.stopped.set()
            sampler.join()
            print((work / "locust.log").read_text(errors="replace")[-1500:])
            result = {
                "topology": topology,
                "users": args.users,
                "rooms": args.rooms,
                "minutes": args.minutes,
                "load_before": load_before[0],
                "load_during_mean": sum(sampler.loads) / max(len(sampler.loads), 1),
                "machine_cpu_mean": sum(sampler.machine_cpu) / max(len(sampler.machine_cpu), 1),
                "stats": read_stats(prefix),
                "failures": read_failures(prefix),
                "processes": sampler.report(),
            }
            (OUT / f"load-{topology}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
            print_result(result)
            return result
        except BaseException:
            sys.stderr.write(instance.log_path.read_text(errors="replace")[-3000:] + "\n")
            raise
        finally:
            instance.stop()
            # Kept for a look afterwards (the home is temporary): no patient data in them.
            shutil.rmtree(OUT / f"logs-{topology}", ignore_errors=True)
            shutil.copytree(instance.home_path / "logs", OUT / f"logs-{topology}", dirs_exist_ok=True)


def print_result(result: dict[str, Any]) -> None:
    print(
        f"\n  {'requête':<52} {'nombre':>7} {'échecs':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}  (ms)"
    )
    for row in result["stats"]:
        print(
            f"  {row['type'][:6] + ' ' + row['name']:<52.52} {row['count']:>7} {row['failures']:>6} "
            f"{row['p50']:>7.0f} {row['p95']:>7.0f} {row['p99']:>7.0f} {row['max']:>7.0f}"
        )
    for failure in result["failures"]:
        print(
            f"  ÉCHEC {failure.get('Method')} {failure.get('Name')} "
            f"x{failure.get('Occurrences')}: {failure.get('Error')}"
        )
    print(
        f"\n  charge machine : {result['load_before']:.2f} avant, "
        f"{result['load_during_mean']:.2f} en moyenne pendant ; "
        f"CPU machine (2 cœurs) {result['machine_cpu_mean']:.0f} % en moyenne"
    )
    print(f"  {'processus':<44} {'CPU (% d’un cœur)':>18} {'RSS moyen':>10} {'RSS max':>10}")
    for row in result["processes"]:
        print(
            f"  {row['process']:<44} {row['cpu_percent']:>17.1f}% {row['rss_mean_mb']:>8.0f} Mo "
            f"{row['rss_max_mb']:>7.0f} Mo"
        )


def _p95(result: dict[str, Any], name_start: str) -> float | None:
    for row in result["stats"]:
        if row["name"].startswith(name_start):
            return float(row["p95"])
    return None


def compare(workers: dict[str, Any], single: dict[str, Any]) -> None:
    print("\n=== processus unique (SQLite) / workers (PostgreSQL) ===")
    for what, start in (
        ("p95 envoi d'un message (en clair)", "envoi d'un message (en clair)"),
        ("p95 envoi d'un message (chiffré)", "envoi d'un message (m.room.encrypted)"),
        ("p95 aller-retour !taches → robot", "!taches"),
        ("p95 téléversement", "téléversement"),
    ):
        w, s = _p95(workers, start), _p95(single, start)
        if w and s:
            print(f"  {what:<40} {w:>7.0f} ms  {s:>7.0f} ms   x{s / w:.2f}")
    total_failures = {
        r["topology"]: sum(row["failures"] for row in r["stats"] if row["name"] != "Aggregated")
        for r in (workers, single)
    }
    print(f"  échecs : workers {total_failures['workers']}, processus unique {total_failures['single']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--message-interval", type=float, default=120.0, help="seconds between a user's messages"
    )
    parser.add_argument("--commands-per-minute", type=float, default=20)
    parser.add_argument("--uploads-per-minute", type=float, default=5)
    parser.add_argument("--spawn-rate", type=float, default=20, help="Locust users started per second")
    parser.add_argument("--topology", choices=("both", "workers", "single"), default="both")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/")
    args = parser.parse_args()
    if args.users < 2 * args.rooms:
        parser.error("--users doit valoir au moins 2 x --rooms (un créateur et un invité par salon)")
    results = {}
    for topology in ("workers", "single") if args.topology == "both" else (args.topology,):
        results[topology] = run(topology, args)
    if len(results) == 2:
        compare(results["workers"], results["single"])


if __name__ == "__main__":
    main()
