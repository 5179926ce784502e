"""Next-free-slot search at regional scale, through the API, with the raw-SQL floor in the same run.

Seeds a fresh database (schema from the Alembic migrations) with 1,000 agendas of professionals
(6 departments, 20 structures, 4 professions), each with two bookable types (consultation 30 min,
home visit 45 min) and weekday opening hours 09:00-12:00 and 14:00-18:00 written as RFC 5545 rules
(``FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL=...``: 3 months), expanded by the service's own code
(``agenda.rules``, the materialised openings), books 30 % of the consultation slots at random, and
materialises the free slots with the service's own function (``rules.materialised_slots``).

Each structure stands in a real commune of its department (``PLACES``): the agendas get that commune's
point (``latitude``, ``longitude``, from ``agenda.geo``) for the searches by distance from Nice.

Then, interleaved run by run with the same parameters, for each query shape (no filter, by department,
by profession, by profession and department, by city, within 20 km and 100 km of Nice, a profession
within 5 km of Nice), from a random moment of the next two months:

- **api**: ``GET /api/v1/slots`` on the real app in-process (httpx ASGI transport, lifespan run) as a
  directory professional: token check, directory identity, the search, the JSON;
- **api cpu**: the CPU time this process spent on that call (the app, the driver's threads): what the
  search costs whatever else the machine runs (the shared 2-core machine is often loaded 10x over);
- **sql**: the floor: the statement the search needs for its first page, hand-written and run on
  the same database through a bare connection (the materialised free slots of the bookable agendas
  in start order joined to their agenda and type, ``LIMIT 11``).

    .venv/bin/python bench/bench_agenda.py                                    # SQLite, bench/out/
    .venv/bin/python bench/bench_agenda.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_agenda
    .venv/bin/python bench/bench_agenda.py --no-seed                          # reuse the seeded base
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

import coordination.all_models  # noqa: F401  (registers every table)
from coordination.agenda import geo, rules, service
from coordination.agenda.models import Agenda, Appointment, Availability, EventType, FreeSlot, Opening
from coordination.app import create_app
from coordination.db import make_engine
from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.ids import UserId
from coordination.migrate import upgrade_to_head_async
from coordination.settings import Settings

OUT = Path(__file__).with_name("out")
SERVER = "bench.azurezo"
AGENDAS = 1000
DEPARTMENTS = ["04", "05", "06", "13", "83", "84"]
PROFESSIONS = ["10", "60", "40", "70"]  # médecin, infirmier, chirurgien-dentiste, masseur-kinésithérapeute
BOOKED = 0.30
WEEKS = 13
SEARCHER = "@searcher:" + SERVER
WINDOWS = (("09:00", 180), ("14:00", 240))
# The communes (INSEE codes) the structures stand in, by department, in the order structures take them
# (structure s: department s % 6, commune s // 6): Nice, Cagnes-sur-Mer and Grasse in 06, so « within
# 20 km of Nice » keeps 2 structures' agendas (100), « within 100 km » 7 structures' (350: those of
# Nice, Cagnes, Grasse, Draguignan, Fréjus, Digne-les-Bains and Barcelonnette); « profession 10 within
# 5 km » 7 (Nice's agendas k = 42 mod 140: the few-agendas path, ``agenda_id IN``).
PLACES = {
    "04": ["04070", "04112", "04088", "04019"],  # Digne-les-Bains, Manosque, Forcalquier, Barcelonnette
    "05": ["05061", "05023", "05046", "05179"],  # Gap, Briançon, Embrun, Veynes
    "06": ["06088", "06027", "06069", "06004"],  # Nice, Cagnes-sur-Mer, Grasse, Antibes
    "13": ["13055", "13001", "13004", "13103"],  # Marseille, Aix-en-Provence, Arles, Salon-de-Provence
    "83": ["83137", "83050", "83061", "83069"],  # Toulon, Draguignan, Fréjus, Hyères
    "84": ["84007", "84087", "84031", "84003"],  # Avignon, Orange, Carpentras, Apt
}


class BenchTokens:
    """A token is the Matrix ID itself (Synapse is not measured)."""

    async def user_for_token(self, token: str) -> UserId | None:
        return UserId(token)


def _remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)


async def fresh_database(url: str) -> None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        _remove_sqlite(u.database or "")
    else:
        import asyncpg

        dsn = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{u.database}"')
        finally:
            await admin.close()
    await upgrade_to_head_async(url)


def first_monday() -> datetime:
    today = datetime.now(rules.PARIS).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    return datetime(monday.year, monday.month, monday.day)


async def seed(url: str, *, rng_seed: int) -> None:
    """Directory, agendas, rules, materialised openings and 30 % booked consultations."""
    rnd = random.Random(rng_seed)
    engine = make_engine(url)
    monday = first_monday()
    until = (monday + timedelta(weeks=WEEKS) - timedelta(days=1)).strftime("%Y%m%dT235959")
    rule = f"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL={until}"
    horizon = (rules.to_utc(monday) - timedelta(days=1), rules.to_utc(monday) + timedelta(weeks=WEEKS + 1))
    persons, activities, structures, agendas, types, avs, openings, appts = [], [], [], [], [], [], [], []
    free: list[dict[str, Any]] = []
    # Materialised as far as the service keeps it (the rule itself ends after WEEKS weeks).
    openings_until = datetime.now(rules.PARIS) + timedelta(days=service.HORIZON_DAYS)
    points: list[tuple[float, float]] = []
    for s in range(20):
        dep = DEPARTMENTS[s % len(DEPARTMENTS)]
        commune = geo.by_code(PLACES[dep][s // len(DEPARTMENTS)])
        assert commune is not None
        points.append((commune.latitude, commune.longitude))
        structures.append(
            {
                "structure_id": f"finess:0{dep}{s:06d}",
                "name": f"Maison de santé {s}",
                "search_name": f"MAISON {s}",
                "city": f"Ville {s}",
                "postal_code": f"{dep}{s:03d}",
                "department": dep,
                "source": "rpps",
                "kind": "site",
            }
        )
    for k in range(AGENDAS):
        nid = f"8{k:010d}"
        st = structures[k % len(structures)]
        latitude, longitude = points[k % len(structures)]
        profession = PROFESSIONS[k % len(PROFESSIONS)] if k % 7 else PROFESSIONS[0]
        persons.append(
            {
                "national_id": nid,
                "id_type": "8",
                "family_name": f"NOM{k}",
                "given_name": "Pro",
                "search_name": f"NOM{k} PRO",
                "profession_code": profession,
                "active": True,
                "source": "rpps",
            }
        )
        activities.append(
            {
                "national_id": nid,
                "structure_id": st["structure_id"],
                "profession_code": profession,
                "city": st["city"],
                "department": st["department"],
                "source": "rpps",
            }
        )
        aid = uuid.uuid4()
        agendas.append(
            {
                "id": aid,
                "version": 1,
                "owner_kind": "professionnel",
                "owner_national_id": nid,
                "structure_id": st["structure_id"],
                "name": f"Agenda {k}",
                "visibility": "annuaire",
                "booking": "annuaire",
                "requires_confirmation": False,
                "profession_code": profession,
                "city": st["city"],
                "postal_code": st["postal_code"],
                "department": st["department"],
                "latitude": latitude,
                "longitude": longitude,
                "created_by": nid,
                "openings_until": openings_until,
            }
        )
        consult, visit = uuid.uuid4(), uuid.uuid4()
        types.append(
            {
                "id": consult,
                "agenda_id": aid,
                "name": "Consultation",
                "category": "consultation",
                "duration_minutes": 30,
                "colour": "#2266aa",
                "bookable": True,
            }
        )
        types.append(
            {
                "id": visit,
                "agenda_id": aid,
                "name": "Visite",
                "category": "visite_domicile",
                "duration_minutes": 45,
                "colour": "#22aa66",
                "bookable": True,
            }
        )
        agenda_openings: list[tuple[uuid.UUID | None, datetime, datetime]] = []
        busy: list[rules.Interval] = []
        for hhmm, minutes in WINDOWS:
            start_local = f"{monday.date().isoformat()}T{hhmm}"
            avs.append(
                {
                    "id": uuid.uuid4(),
                    "agenda_id": aid,
                    "event_type_id": None,
                    "start_local": start_local,
                    "duration_minutes": minutes,
                    "rrule": rule,
                    "exdates": [],
                    "label": "",
                }
            )
            for o_start, o_end in rules.occurrences(
                start_local=rules.parse_local(start_local),
                duration=timedelta(minutes=minutes),
                rule=rule,
                exdates=[],
                window=horizon,
            ):
                openings.append(
                    {"agenda_id": aid, "event_type_id": None, "start_at": o_start, "end_at": o_end}
                )
                agenda_openings.append((None, o_start, o_end))
                for slot in rules.free_slots(
                    window=(o_start, o_end), duration=timedelta(minutes=30), busy=[], not_before=o_start
                ):
                    if rnd.random() < BOOKED:
                        busy.append(slot)
                        appts.append(
                            {
                                "id": uuid.uuid4(),
                                "version": 1,
                                "agenda_id": aid,
                                "event_type_id": consult,
                                "start_at": slot[0],
                                "end_at": slot[1],
                                "status": "reserve",
                                "note": "",
                                "participants": [],
                                "booked_by_national_id": "89999999999",
                                "booked_by_user_id": SEARCHER,
                            }
                        )
        # The service's own computation of the materialised free slots.
        free.extend(
            {"agenda_id": aid, "event_type_id": type_id, "start_at": start, "end_at": end}
            for type_id, start, end in rules.materialised_slots(
                openings=agenda_openings, types=[(consult, 30), (visit, 45)], busy=busy
            )
        )
    persons.append(
        {
            "national_id": "89999999999",
            "id_type": "8",
            "family_name": "CHERCHEUR",
            "given_name": "Bench",
            "search_name": "CHERCHEUR BENCH",
            "profession_code": "10",
            "active": True,
            "source": "rpps",
        }
    )
    async with engine.begin() as conn:
        for model, rows in (
            (Structure, structures),
            (Person, persons),
            (Activity, activities),
            (Agenda, agendas),
            (EventType, types),
            (Availability, avs),
            (Opening, openings),
            (Appointment, appts),
            (FreeSlot, free),
        ):
            for i in range(0, len(rows), 5000):
                await conn.execute(insert(model), rows[i : i + 5000])
        await conn.execute(insert(AccountBinding), [{"user_id": SEARCHER, "national_id": "89999999999"}])
        if engine.dialect.name == "postgresql":
            await conn.commit()
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    print(
        f"seeded {len(agendas)} agendas, {len(openings)} openings, {len(appts)} appointments "
        f"({len(appts) / (len(appts) / BOOKED):.0%} of consultation slots), {len(free)} free slots"
    )


@dataclass
class Shape:
    name: str
    params: dict[str, str]
    api_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    api_cpu_ms: list[float] = field(default_factory=list)


def shapes() -> list[Shape]:
    base = {"category": "consultation", "limit": "10", "per_agenda": "3"}
    return [
        Shape("consultation, no filter", base),
        Shape("consultation, department 06", base | {"department": "06"}),
        Shape("consultation, profession 40", base | {"profession_code": "40"}),
        Shape("consultation, profession 40 in 83", base | {"profession_code": "40", "department": "83"}),
        Shape("home visit, city", {"category": "visite_domicile", "city": "Ville 7", "limit": "10"}),
        Shape("consultation, 20 km from Nice", base | {"near": "Nice", "within_km": "20"}),
        Shape("consultation, 100 km from Nice", base | {"near": "Nice", "within_km": "100"}),
        Shape(
            "prof. 10, 5 km from Nice",
            base | {"profession_code": "10", "near": "Nice", "within_km": "5"},
        ),
    ]


def floor_sql(params: dict[str, str]) -> str:
    """The statement of the first page: the materialised free slots bookable by everyone, in start
    order, joined to their agenda (filters) and type (category), ``LIMIT 11`` (a page of 10 and one
    to know there is more). ``:since`` / ``:until`` are bound by the caller."""
    conditions = [
        "f.start_at >= :since",
        "f.start_at < :until",
        "f.end_at <= :until",
        "a.booking = 'annuaire'",
        "t.category = :category",
    ]
    for key in ("department", "profession_code", "city"):
        if key in params:
            conditions.append(f"a.{key} = :{key}")
    if "near" in params:  # the bounding box alone, written in (as the service does: see _search_query)
        origin = geo.find(params["near"])
        south, north, west, east = geo.bounding_box(
            origin.latitude, origin.longitude, float(params["within_km"])
        )
        conditions.append(
            f"a.latitude BETWEEN {math.floor(south * 1e4) / 1e4} AND {math.ceil(north * 1e4) / 1e4} "
            f"AND a.longitude BETWEEN {math.floor(west * 1e4) / 1e4} AND {math.ceil(east * 1e4) / 1e4}"
        )
    return (
        "SELECT f.agenda_id, f.event_type_id, f.start_at, f.end_at, a.name, a.owner_national_id, "
        "a.structure_id, a.city, a.department, t.name, t.category FROM agenda_free_slots f "
        "JOIN agendas a ON a.id = f.agenda_id JOIN agenda_event_types t ON t.id = f.event_type_id "
        f"WHERE {' AND '.join(conditions)} ORDER BY f.start_at, f.agenda_id, f.event_type_id LIMIT 11"
    )


@asynccontextmanager
async def running_service(url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=url,
        synapse_url="http://127.0.0.1:9",
        server_name=SERVER,
        internal_api_secret="bench-" + "b" * 42,
        documents_dir=OUT / "documents",
    )
    app = create_app(settings, token_verifier=BenchTokens())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client,
    ):
        yield client


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]


async def run_floor(conn: Any, params: dict[str, str], since: datetime) -> int:
    binds: dict[str, Any] = {
        "since": since,
        "until": since + timedelta(days=31),
        "category": params["category"],
    }
    binds.update({k: params[k] for k in ("department", "profession_code", "city") if k in params})
    return len((await conn.execute(text(floor_sql(params)), binds)).all())


async def measure(url: str, *, runs: int, warmup: int, rng_seed: int) -> list[Shape]:
    rnd = random.Random(rng_seed + 1)
    monday = rules.to_utc(first_monday())
    cases = shapes()
    engine = make_engine(url)
    async with running_service(url) as client, engine.connect() as conn:
        headers = {"Authorization": f"Bearer {SEARCHER}"}
        for i in range(warmup + runs):
            for shape in cases:
                since = monday + timedelta(minutes=rnd.randrange(0, 60 * 24 * 7 * 8, 15))
                params = shape.params | {"from": since.isoformat()}
                t0, c0 = time.perf_counter(), time.process_time()
                resp = await client.get("/api/v1/slots", params=params, headers=headers)
                api = (time.perf_counter() - t0) * 1000
                cpu = (time.process_time() - c0) * 1000
                assert resp.status_code == 200, resp.text
                assert resp.json()["items"], (shape.name, params)
                t0 = time.perf_counter()
                await run_floor(conn, shape.params, since)
                await conn.rollback()
                sql = (time.perf_counter() - t0) * 1000
                if i >= warmup:
                    shape.api_ms.append(api)
                    shape.sql_ms.append(sql)
                    shape.api_cpu_ms.append(cpu)
    await engine.dispose()
    return cases


def report(cases: list[Shape], dialect: str) -> None:
    print(f"\nnext free slots over {AGENDAS} agendas, {WEEKS} weeks, {BOOKED:.0%} booked ({dialect}); ms")
    head = ["api p50", "api p95", "sql p50", "sql p95", "api/sql p95", "api cpu p50", "api cpu p95"]
    print(f"{'shape':36} " + " ".join(f"{h:>11}" for h in head))
    for c in cases:
        a50, a95 = statistics.median(c.api_ms), percentile(c.api_ms, 95)
        s50, s95 = statistics.median(c.sql_ms), percentile(c.sql_ms, 95)
        c50, c95 = statistics.median(c.api_cpu_ms), percentile(c.api_cpu_ms, 95)
        row = [a50, a95, s50, s95, a95 / s95, c50, c95]
        print(f"{c.name:36} " + " ".join(f"{v:11.1f}" for v in row))
    print("(api cpu: CPU time of this process per API call, app + driver threads; on PostgreSQL the")
    print(" server's own CPU is not in it. Wall-clock figures include waiting for the other processes.)")
    worst = max(percentile(c.api_ms, 95) for c in cases)
    print(f"worst api p95: {worst:.1f} ms (target <= 50 ms): {'OK' if worst <= 50 else 'OVER'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=f"sqlite+aiosqlite:///{OUT / 'bench_agenda.db'}")
    ap.add_argument("--no-seed", action="store_true")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    url = args.database_url
    if make_url(url).get_backend_name() == "postgresql" and not make_url(url).database:
        url = make_url(url).set(database="bench_agenda").render_as_string(hide_password=False)
    if not args.no_seed:
        t0 = time.perf_counter()
        asyncio.run(fresh_database(url))
        asyncio.run(seed(url, rng_seed=args.seed))
        print(f"seeded in {time.perf_counter() - t0:.0f} s")
    print(f"load average before measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cases = asyncio.run(measure(url, runs=args.runs, warmup=args.warmup, rng_seed=args.seed))
    report(cases, make_url(url).get_backend_name())
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
