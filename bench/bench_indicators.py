"""DAC indicators at scale: the service's SQL aggregates against fetching the rows into Python.

Seeds a fresh database (schema from the Alembic migrations) with one busy DAC: ``--requests`` requests
sent to it over two years (plus three times as many to other DACs), 3,000 requesters at 1,500
structures, ``--tasks`` tasks (a third about patients the DAC follows, a fifth assigned to it). Then,
interleaved run by run, for one year of that DAC:

- **indicators**: ``coordination.indicators.service.dac_indicators`` (every figure, the coordinator
  check, the audit entry and its commit);
- **rows to Python** (baseline): one ``SELECT`` of the period's requests of the DAC (urgency, status,
  decision, the three timestamps) fetched into Python, which counts urgencies and outcomes and takes
  the two medians (``statistics.median``): what the page would cost without aggregates, and still
  without the directory look-ups, the patients and the tasks.

The baseline's figures are checked against the service's (counts and both medians), so the bench also
checks the SQL medians on a large set. Prints p50 and max per side and their ratio.

    .venv/bin/python bench/bench_indicators.py                                 # SQLite, bench/out/
    .venv/bin/python bench/bench_indicators.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_indicators
    .venv/bin/python bench/bench_indicators.py --no-seed [--database-url ...]  # measure again
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

import coordination.all_models  # noqa: F401  (registers every table)
from coordination.circle.models import CircleMember
from coordination.dac_requests.models import DacRequest
from coordination.db import make_engine, make_sessionmaker
from coordination.directory.models import Activity, Person, Structure
from coordination.ids import NationalId, StructureId, UserId
from coordination.indicators import rules
from coordination.indicators import service as indicators
from coordination.migrate import upgrade_to_head_async
from coordination.patients.models import Patient
from coordination.security import Actor
from coordination.tasks.models import Task, TaskAssignee

DAC = "finess:069999999"
START = datetime(2024, 1, 1, tzinfo=UTC)
PROFESSIONS = [
    ("10", "Médecin"),
    ("60", "Infirmier"),
    ("70", "Masseur-kinésithérapeute"),
    ("21", "Pharmacien"),
]
MODES = ["Libéral", "Salarié", "Bénévole", None]
URGENCIES = ["normale", "normale", "normale", "urgente", "tres_urgente"]
DECISIONS = ["acceptee", "acceptee", "reorientee", "refusee", "information"]


def _pg_dsn(url: str, *, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


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

        admin = await asyncpg.connect(_pg_dsn(url, database="postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{u.database}"')
        finally:
            await admin.close()
    await upgrade_to_head_async(url)


def _request(rng: random.Random, dac: str, requester: tuple[str, str | None]) -> dict[str, Any]:
    sent = START + timedelta(seconds=rng.randrange(2 * 365 * 86400))
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "version": 1,
        "dac_structure_id": dac,
        "status": "envoyee",
        "reason": "Maintien à domicile",
        "description": "",
        "urgency": rng.choice(URGENCIES),
        "requester_user_id": f"@p{requester[0]}:bench",
        "requester_national_id": requester[0],
        "requester_structure_id": requester[1],
        "actions": [],
        "alerts": [],
        "patient_included": False,
        "created_at": sent,
        "updated_at": sent,
        "received_at": sent,
        "sent_at": sent,
        "taken_at": None,
        "answered_at": None,
        "decision": None,
    }
    fate = rng.random()
    if fate < 0.8:
        row["taken_at"] = sent + timedelta(seconds=rng.randrange(60, 5 * 86400))
        row["status"] = "en_cours"
    if fate < 0.65:
        row["answered_at"] = row["taken_at"] + timedelta(seconds=rng.randrange(60, 10 * 86400))
        row["decision"] = rng.choice(DECISIONS)
        row["status"] = "refusee" if row["decision"] == "refusee" else "cloturee"
    elif fate > 0.97:
        row["status"] = "annulee"
    return row


async def _insert(session: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 5000):
        await session.execute(insert(table), rows[i : i + 5000])


async def seed(url: str, *, requests: int, tasks: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        structures = [f"finess:0600{i:05d}" for i in range(1500)]
        await _insert(
            session,
            Structure,
            [
                {
                    "structure_id": DAC,
                    "name": "DAC bench",
                    "search_name": "DAC BENCH",
                    "is_dac": True,
                    "source": "rpps",
                }
            ]
            + [
                {"structure_id": s, "name": f"Site {s}", "search_name": f"SITE {s}", "source": "rpps"}
                for s in structures
            ],
        )
        people = [
            (f"81{i:010d}", rng.choice(structures) if rng.random() < 0.9 else None) for i in range(3000)
        ]
        persons, activities = [], []
        for nid, sid in people:
            code, label = rng.choice(PROFESSIONS)
            persons.append(
                {
                    "national_id": nid,
                    "family_name": "BENCH",
                    "search_name": "BENCH",
                    "profession_code": code,
                    "profession": label,
                    "source": "rpps",
                }
            )
            if sid:
                activities.append({"national_id": nid, "structure_id": sid, "mode": rng.choice(MODES)})
        await _insert(session, Person, persons)
        await _insert(session, Activity, activities)
        rows = [_request(rng, DAC, rng.choice(people)) for _ in range(requests)]
        rows += [_request(rng, rng.choice(structures), rng.choice(people)) for _ in range(3 * requests)]
        await _insert(session, DacRequest, rows)
        patients = [uuid.uuid4() for _ in range(tasks // 5)]
        await _insert(
            session,
            Patient,
            [
                {
                    "id": pid,
                    "version": 1,
                    "birth_name": "BENCH",
                    "birth_first_names": ["Marie"],
                    "first_birth_first_name": "Marie",
                    "birth_date": date(1940, 1, 1),
                    "sex": "F",
                    "birth_place_code": "06088",
                    "search_birth_name": "BENCH",
                    "search_first_given_name": "MARIE",
                    "homonym_rank": rank,
                    "identity_status": "provisoire",
                    "created_by": "810000000000",
                }
                for rank, pid in enumerate(patients)
            ],
        )
        followed = patients[: len(patients) // 3]
        await _insert(
            session,
            CircleMember,
            [
                {
                    "id": uuid.uuid4(),
                    "patient_id": pid,
                    "kind": "structure",
                    "structure_id": DAC,
                    "role": "coordinateur DAC",
                    "habilite": True,
                    "added_by": "system",
                }
                for pid in followed
            ],
        )
        task_rows, assignees = [], []
        now = datetime.now(UTC)
        for n in range(tasks):
            tid = uuid.uuid4()
            status = rng.choice(["a_faire", "en_cours", "terminee", "terminee"])
            created = now - timedelta(seconds=rng.randrange(200 * 86400))
            task_rows.append(
                {
                    "id": tid,
                    "version": 1,
                    "patient_id": rng.choice(patients),
                    "number": n,
                    "number_scope": "bench",
                    "title": "Tâche",
                    "description": "",
                    "type": "appel",
                    "status": status,
                    "sort_due": date(9999, 12, 31),
                    "creator_user_id": "@bench:bench",
                    "creator_national_id": "810000000000",
                    "created_at": created,
                    "updated_at": created,
                }
            )
            if rng.random() < 0.2:
                assignees.append(
                    {
                        "task_id": tid,
                        "key": f"st:{DAC}",
                        "status": status,
                        "type": "appel",
                        "sort_due": date(9999, 12, 31),
                    }
                )
        await _insert(session, Task, task_rows)
        await _insert(session, TaskAssignee, assignees)
        await session.commit()
        if make_url(url).get_backend_name() != "sqlite":
            async with engine.connect() as conn:
                await (await conn.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql(
                    "VACUUM ANALYZE"
                )
    await engine.dispose()


async def _baseline(session: Any, period: rules.Period) -> dict[str, Any]:
    stmt = select(
        DacRequest.urgency, DacRequest.status, DacRequest.decision, DacRequest.sent_at, DacRequest.taken_at,
        DacRequest.answered_at,
    ).where(
        DacRequest.dac_structure_id == DAC,
        DacRequest.sent_at >= period.start_utc,
        DacRequest.sent_at < period.end_utc,
    )  # fmt: skip
    rows = (await session.execute(stmt)).all()
    take = [(r.taken_at - r.sent_at).total_seconds() for r in rows if r.taken_at]
    answer = [(r.answered_at - r.sent_at).total_seconds() for r in rows if r.answered_at]
    return {
        "total": len(rows),
        "urgency": Counter(r.urgency for r in rows),
        "outcome": Counter(rules.outcome(status=r.status, decision=r.decision) for r in rows),
        "take": round(statistics.median(take)) if take else None,
        "answer": round(statistics.median(answer)) if answer else None,
    }


async def measure(url: str, *, runs: int) -> None:
    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    actor = Actor(
        user_id=UserId("@coord:bench"),
        national_id=NationalId("819999999999"),
        display_name="Coordinatrice",
        profession_code="10",
        structure_ids=frozenset({StructureId(DAC)}),
    )
    period = rules.Period(date(2024, 7, 1), date(2025, 7, 1))
    times: dict[str, list[float]] = {"indicators": [], "rows to Python": []}
    for _ in range(runs):
        async with maker() as session:
            t = time.perf_counter()
            ind = await indicators.dac_indicators(
                session=session, actor=actor, dac_id=StructureId(DAC), period=period
            )
            times["indicators"].append(time.perf_counter() - t)
        async with maker() as session:
            t = time.perf_counter()
            base = await _baseline(session, period)
            times["rows to Python"].append(time.perf_counter() - t)
    await engine.dispose()
    assert ind.requests_received == base["total"], (ind.requests_received, base["total"])
    assert {c.code: c.count for c in ind.by_urgency if c.count} == dict(base["urgency"])
    assert {c.code: c.count for c in ind.by_outcome if c.count} == dict(base["outcome"])
    # SQLite's julianday differences are exact to about 50 microseconds: allow one second of rounding.
    assert abs((ind.take_delay.median_seconds or 0) - (base["take"] or 0)) <= 1, (
        ind.take_delay,
        base["take"],
    )
    assert abs((ind.answer_delay.median_seconds or 0) - (base["answer"] or 0)) <= 1
    print(
        f"period {period.start} .. {period.last_day}: {ind.requests_received} requests, "
        f"median take {ind.take_delay.median_label}, answer {ind.answer_delay.median_label}, "
        f"{ind.patients_included} patients included, {ind.open_tasks} open tasks "
        "(figures equal to the baseline's)"
    )
    p50 = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        worst = max(values) * 1000
        print(f"{name:>15}: p50 {p50[name] * 1000:8.1f} ms, max {worst:8.1f} ms ({len(values)} runs)")
    print(f"ratio indicators / rows to Python (p50): {p50['indicators'] / p50['rows to Python']:.2f}")
    print(f"load average: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default=f"sqlite+aiosqlite:///{Path('bench/out/indicators.db').resolve()}"
    )
    parser.add_argument(
        "--requests", type=int, default=50_000, help="requests sent to the DAC over two years"
    )
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument(
        "--no-seed", action="store_true", help="measure the database seeded by a previous run"
    )
    args = parser.parse_args()
    if not args.no_seed:
        started = time.perf_counter()
        asyncio.run(fresh_database(args.database_url))
        asyncio.run(seed(args.database_url, requests=args.requests, tasks=args.tasks, seed=args.seed))
        backend = make_url(args.database_url).get_backend_name()
        print(f"seeded in {time.perf_counter() - started:.0f} s ({backend})")
    asyncio.run(measure(args.database_url, runs=args.runs))


if __name__ == "__main__":
    main()
