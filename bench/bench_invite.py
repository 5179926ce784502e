"""Invite latency through the Synapse module vs the same Synapse without it, in the same run.

    .venv/bin/python bench/bench_invite.py [--rooms 15] [--invitees 20]

Starts the coordination service (the directory) and two Synapse processes from one freshly
initialised home (test profile rate limits): one with ``synapse_module`` loaded with its production
cache TTL (30 s), one with ``modules: []``. Each gets the same accounts (bound in the directory),
then ``rooms x invitees`` invites are sent to each, ALTERNATING between the two servers so machine
noise hits both alike. Prints median, p95 and the module's overhead at the median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azurezo_cli import accounts, bootstrap  # noqa: E402
from azurezo_cli.home import Home, init_home, new_password  # noqa: E402
from azurezo_cli.supervisor import ChildSpec, Supervisor  # noqa: E402
from azurezo_cli.synapse_config import render_synapse_config  # noqa: E402
from coordination.db import make_engine, make_sessionmaker  # noqa: E402
from coordination.directory.models import Person  # noqa: E402
from tests.support.stack import fictitious_national_id, free_port  # noqa: E402


def derive_config(home: Home, name: str, *, with_module: bool) -> tuple[Path, int]:
    """A homeserver.yaml for one of the two Synapses: own port, database, media store, pid."""
    config: dict[str, Any] = yaml.safe_load(home.synapse_config.read_text())
    port = free_port()
    config["listeners"][0]["port"] = port
    config["public_baseurl"] = f"http://127.0.0.1:{port}/"
    config["database"]["args"]["database"] = str(home.synapse_dir / f"{name}.db")
    config["media_store_path"] = str(home.synapse_dir / f"media-{name}")
    config["pid_file"] = str(home.synapse_dir / f"{name}.pid")
    config.pop("log_config", None)  # log to stderr, captured by the supervisor
    if with_module:
        config["modules"][0]["config"]["cache_ttl_seconds"] = 30  # the production value
    else:
        config["modules"] = []
    path = home.synapse_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, port


async def add_people(database_url: str, count: int) -> list[str]:
    ids = [fictitious_national_id() for _ in range(count)]
    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as session:
        for i, nid in enumerate(ids):
            session.add(
                Person(
                    national_id=nid,
                    id_type="8",
                    family_name=f"BENCH{i}",
                    given_name="Pro",
                    search_name=f"BENCH{i} PRO",
                    profession_code="10",
                    active=True,
                    source="rpps",
                )
            )
        await session.commit()
    await engine.dispose()
    return ids


async def account(
    home: Home, client: httpx.AsyncClient, url: str, nid: str, localpart: str, *, bind: bool
) -> str:
    """Register ``localpart`` on the Synapse at ``url`` and return an access token."""
    if bind:
        await accounts.bind(home=home, national_id=nid, user_id=home.user_id(localpart))
    password = new_password()
    resp = await accounts.register_with_shared_secret(
        client,
        synapse_url=url,
        shared_secret=home.secrets.registration_shared_secret,
        localpart=localpart,
        password=password,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def start(workdir: Path, supervisor: Supervisor) -> tuple[Home, dict[str, str]]:
    """Initialise a home and start the service and both Synapses; return their URLs."""
    home, _ = init_home(
        workdir / "home",
        server_name="bench.test",
        synapse_port=free_port(),
        service_port=free_port(),
        profile="test",
    )
    render_synapse_config(home)
    bootstrap.migrate(home.database_url)
    service = supervisor.start(
        ChildSpec(
            name="service",
            argv=[sys.executable, "-m", "azurezo_cli", "--home", str(home.path), "service", "run"],
            log_path=home.logs_dir / "service.log",
            ready_url=f"{home.service_url}/health",
        )
    )
    urls: dict[str, str] = {}
    for name, with_module in (("module", True), ("baseline", False)):
        cfg, port = derive_config(home, name, with_module=with_module)
        urls[name] = f"http://127.0.0.1:{port}"
        child = supervisor.start(
            ChildSpec(
                name=name,
                argv=[sys.executable, "-m", "synapse.app.homeserver", "-c", str(cfg)],
                log_path=home.logs_dir / f"{name}.log",
                ready_url=f"{urls[name]}/_matrix/client/versions",
            )
        )
        supervisor.wait_ready(child, timeout=120)
    supervisor.wait_ready(service, timeout=120)
    return home, urls


async def measure(home: Home, urls: dict[str, str], rooms: int, invitees: int) -> dict[str, list[float]]:
    """Send the invites, alternating between the two servers; return the latencies (s)."""
    people = await add_people(home.database_url, invitees + 2)
    async with httpx.AsyncClient(timeout=60.0) as client:
        tokens: dict[str, str] = {}
        targets: list[str] = []
        for i, nid in enumerate(people):
            localpart = "inviter" if i == 0 else "warmup" if i == 1 else f"pro{i}"
            for name, url in urls.items():
                token = await account(home, client, url, nid, localpart, bind=(name == "module"))
                if i == 0:
                    tokens[name] = token
            if i >= 2:
                targets.append(home.user_id(localpart))

        async def create_room(name: str) -> str:
            resp = await client.post(
                f"{urls[name]}/_matrix/client/v3/createRoom",
                json={},
                headers={"Authorization": f"Bearer {tokens[name]}"},
            )
            resp.raise_for_status()
            return str(resp.json()["room_id"])

        async def invite(name: str, room_id: str, user_id: str) -> float:
            start = time.perf_counter()
            resp = await client.post(
                f"{urls[name]}/_matrix/client/v3/rooms/{quote(room_id)}/invite",
                json={"user_id": user_id},
                headers={"Authorization": f"Bearer {tokens[name]}"},
            )
            elapsed = time.perf_counter() - start
            resp.raise_for_status()
            return elapsed

        # Warm-up: connections, caches of Synapse itself (not measured).
        for name in urls:
            for _ in range(5):
                await invite(name, await create_room(name), home.user_id("warmup"))

        room_ids = {name: [await create_room(name) for _ in range(rooms)] for name in urls}
        timings: dict[str, list[float]] = {name: [] for name in urls}
        for r in range(rooms):
            for user_id in targets:
                for name in urls:  # alternate: same noise for both
                    timings[name].append(await invite(name, room_ids[name][r], user_id))
    return timings


def report(timings: dict[str, list[float]], rooms: int, invitees: int) -> None:

    def ms(values: list[float]) -> tuple[float, float]:
        return statistics.median(values) * 1000, statistics.quantiles(values, n=100)[94] * 1000

    med_m, p95_m = ms(timings["module"])
    med_b, p95_b = ms(timings["baseline"])
    overhead = (med_m / med_b - 1) * 100
    n = len(timings["module"])
    print(f"invites per server: {n} ({rooms} rooms x {invitees} invitees), sequential, alternating")
    print(f"{'':24}{'median':>10}{'p95':>10}")
    print(f"{'Synapse + module':24}{med_m:>8.1f}ms{p95_m:>8.1f}ms")
    print(f"{'Synapse without module':24}{med_b:>8.1f}ms{p95_b:>8.1f}ms")
    print(f"module overhead at the median: {overhead:+.1f}% (target <= 15%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=15)
    parser.add_argument("--invitees", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="azurezo-bench-invite-") as tmp:
        supervisor = Supervisor(stop_timeout=10.0, poll_interval=0.05)
        try:
            home, urls = start(Path(tmp), supervisor)
            timings = asyncio.run(measure(home, urls, args.rooms, args.invitees))
        finally:
            supervisor.stop_all()
    report(timings, args.rooms, args.invitees)


if __name__ == "__main__":
    main()
