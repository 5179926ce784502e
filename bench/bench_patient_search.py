"""Patient search at scale, in-process (service function, real database, no HTTP).

Seeds a fresh database with (by default) 100,000 patients (30% with a used name) and 300,000 circle
members, then times ``coordination.dossiers.service.search_patients`` (first page of 20, the
``is_member`` look-up and one audit entry per hit, committed) and prints p50 / p95 per query shape,
plus the query plan. Baseline in the same run: a primary-key lookup of one patient.

    .venv/bin/python bench/bench_patient_search.py
    .venv/bin/python bench/bench_patient_search.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_patients
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from sqlalchemy import insert, select, text

import coordination.all_models  # noqa: F401
from coordination.circle.models import CircleMember
from coordination.db import Base, make_engine, make_sessionmaker, utcnow
from coordination.dossiers import rules
from coordination.dossiers import service as dossiers
from coordination.dossiers.models import Patient
from coordination.ids import NationalId, UserId
from coordination.security import Actor

BATCH = 10_000
COMMON = [
    "MARTIN",
    "BERNARD",
    "THOMAS",
    "PETIT",
    "ROBERT",
    "RICHARD",
    "DURAND",
    "DUBOIS",
    "MOREAU",
    "LAURENT",
    "SIMON",
    "MICHEL",
    "LEFEBVRE",
    "LEROY",
    "ROUX",
    "DAVID",
    "BERTRAND",
    "MOREL",
    "FOURNIER",
    "GIRARD",
    "BONNET",
    "DUPONT",
    "LAMBERT",
    "FONTAINE",
    "ROUSSEAU",
    "VINCENT",
    "MULLER",
    "LEFEVRE",
    "FAURE",
    "ANDRE",
    "MERCIER",
    "BLANC",
    "GUERIN",
    "BOYER",
    "GARNIER",
    "CHEVALIER",
    "FRANCOIS",
    "LEGRAND",
    "GAUTHIER",
    "GARCIA",
    "PERRIN",
    "ROBIN",
    "CLEMENT",
    "MORIN",
    "NICOLAS",
    "HENRY",
    "ROUSSEL",
    "MATHIEU",
    "GAUTIER",
]
SYLLABLES = ["BA", "LE", "RO", "MI", "TA", "NU", "GO", "RI", "SE", "DA", "VO", "PU", "CHA", "TIN", "QUE"]
FIRST = ["Marie", "Jean", "Louise", "Paul", "Camille", "Lucas", "Emma", "Hugo", "Léa", "Jules"]


def _name(rnd: random.Random) -> str:
    if rnd.random() < 0.5:
        return rnd.choice(COMMON)
    return "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 4)))


async def seed(url: str, *, n_patients: int, n_members: int) -> list[uuid.UUID]:
    rnd = random.Random(7)
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    now = utcnow()
    ids = [uuid.UUID(int=rnd.getrandbits(128), version=4) for _ in range(n_patients)]
    async with engine.begin() as conn:
        rows: list[dict[str, object]] = []
        for pid in ids:
            birth = _name(rnd)
            used = _name(rnd) if rnd.random() < 0.3 else None
            first = rnd.choice(FIRST)
            rows.append(
                {
                    "id": pid,
                    "version": 1,
                    "birth_name": birth,
                    "birth_given_names": [first],
                    "first_birth_given_name": first,
                    "birth_date": date(1930, 1, 1) + timedelta(days=rnd.randint(0, 30_000)),
                    "sex": rnd.choice("FM"),
                    "birthplace_code": f"06{rnd.randint(1, 999):03d}",
                    "used_name": used,
                    "search_birth_name": rules.search_key(birth),
                    "search_used_name": rules.search_key(used) if used else None,
                    "search_first_given_name": rules.search_key(first),
                    "homonyme": False,
                    "douteuse": False,
                    "fictive": False,
                    "identity_status": "provisoire",
                    "status": "active",
                    "created_at": now,
                    "created_by": "800000000001",
                    "updated_at": now,
                }
            )
            if len(rows) == BATCH:
                await conn.execute(insert(Patient), rows)
                rows = []
        if rows:
            await conn.execute(insert(Patient), rows)
        members: list[dict[str, object]] = []
        seen: set[tuple[int, str]] = set()
        for i in range(n_members):
            nid = f"8{rnd.randint(1, 20_000):011d}"
            if (i % n_patients, nid) in seen:  # one row per (patient, professional)
                continue
            seen.add((i % n_patients, nid))
            members.append(
                {
                    "id": uuid.uuid4(),
                    "patient_id": ids[i % n_patients],
                    "kind": "professional",
                    "national_id": nid,
                    "role": "infirmier",
                    "habilite": True,
                    "added_at": now,
                    "added_by": "800000000001",
                }
            )
            if len(members) == BATCH:
                await conn.execute(insert(CircleMember), members)
                members = []
        if members:
            await conn.execute(insert(CircleMember), members)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()
    return ids


async def timed(label: str, fn: Callable[[], Awaitable[object]], *, runs: int) -> None:
    for _ in range(5):
        await fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{label:<48} p50 {statistics.median(samples):6.2f} ms   p95 {p95:6.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--skip-seed", action="store_true", help="reuse an already seeded --database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    t0 = time.perf_counter()
    if args.skip_seed:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            ids = list(await session.scalars(select(Patient.id).limit(1000)))
        await engine.dispose()
    else:
        ids = await seed(url, n_patients=args.patients, n_members=args.members)
    took = time.perf_counter() - t0
    print(f"seeded {args.patients} patients, {args.members} members in {took:.1f} s ({url.split(':')[0]})")

    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    actor = Actor(
        user_id=UserId("@bench:azurezo.local"),
        national_id=NationalId("800000000042"),  # a member of some patients
        display_name="Bench",
        profession_code="10",
    )

    async def search(q: str, birth: date | None = None) -> None:
        async with maker() as session:
            await dossiers.search_patients(session=session, actor=actor, q=q, birth_date=birth)

    async def pk() -> None:
        async with maker() as session:
            await session.get(Patient, ids[len(ids) // 2])

    rnd = random.Random(1)
    await timed("baseline: primary-key lookup", pk, runs=args.runs)
    await timed("q=MAR (common prefix, 20 hits + audit)", lambda: search("mar"), runs=args.runs)
    await timed("q=dupon (5 letters)", lambda: search("dupon"), runs=args.runs)
    await timed("q=zzz (no hit)", lambda: search("zzz"), runs=args.runs)
    await timed(
        "q=random 3-letter prefix of a real name",
        lambda: search(rnd.choice(COMMON)[:3]),
        runs=args.runs,
    )
    await timed("q=mar + birth_date", lambda: search("mar", date(1960, 5, 5)), runs=args.runs)

    key, upper = "MAR", rules.prefix_upper_bound("MAR")
    # The query the service runs per name column (birth name shown; the used name is the same).
    sql = (
        "SELECT * FROM patients WHERE search_birth_name >= :k AND search_birth_name < :u "
        "ORDER BY search_birth_name, birth_date LIMIT 21"
    )
    async with engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        plan = (await conn.execute(text(explain + sql), {"k": key, "u": upper})).all()
        print("plan:")
        for row in plan:
            print("   ", " | ".join(str(c) for c in row))
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
