"""Filtered task lists at scale, in-process (service functions, real database, no HTTP).

Seeds a fresh database with (by default) 1,000,000 tasks, 100,000 patients and 300,000 circle
members, then times ``coordination.tasks.service.list_tasks`` for the dashboard's lists (first page of
50, audit entries included) and prints p50 / p95 per query. A baseline in the same run: a plain primary
key lookup of one task, to show the machine's floor.

    .venv/bin/python bench/bench_tasks.py                       # SQLite file in a temp dir
    .venv/bin/python bench/bench_tasks.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_tasks
    .venv/bin/python bench/bench_tasks.py --tasks 100000 --patients 10000 --members 30000  # quick
    .venv/bin/python bench/bench_tasks.py --no-seed --database-url URL --audit core   # see below

Every list records one audit entry per patient on the page (up to 50), through
``coordination.audit.service.record_many``. ``--audit core`` swaps in a Core ``INSERT`` executemany
for it and ``--audit none`` skips it, to show how much of each figure is the audit write.
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
from sqlalchemy.ext.asyncio import AsyncSession

import coordination.all_models  # noqa: F401
from coordination.audit.models import AuditEntry
from coordination.circle.models import CircleMember
from coordination.db import Base, make_engine, make_sessionmaker, utcnow
from coordination.directory.models import Person, Structure
from coordination.dossiers.models import Patient
from coordination.ids import NationalId, PatientId, StructureId, UserId
from coordination.security import Actor
from coordination.tasks import rules
from coordination.tasks import service as tasks
from coordination.tasks.models import Task, TaskAssignee

BATCH = 20_000
STATUSES = list(rules.TASK_STATUSES)
TYPES = list(rules.TASK_TYPES)


def nid(i: int) -> str:
    return f"8{i:011d}"


def sid(i: int) -> str:
    return f"finess:{i:09d}"


async def seed(
    url: str, *, n_tasks: int, n_patients: int, n_members: int, n_pros: int, n_structs: int
) -> None:
    rnd = random.Random(42)
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    now = utcnow()

    async def bulk(table: object, rows: list[dict[str, object]]) -> None:
        async with engine.begin() as conn:
            for i in range(0, len(rows), BATCH):
                await conn.execute(insert(table), rows[i : i + BATCH])  # type: ignore[arg-type]

    await bulk(
        Structure.__table__,
        [
            {
                "structure_id": sid(i),
                "name": f"Structure {i}",
                "search_name": f"STRUCTURE {i}",
                "is_dac": False,
                "active": True,
                "source": "rpps",
                "updated_at": now,
            }
            for i in range(n_structs)
        ],
    )
    await bulk(
        Person.__table__,
        [
            {
                "national_id": nid(i),
                "family_name": f"NOM{i}",
                "given_name": "P",
                "search_name": f"NOM{i} P",
                "active": True,
                "source": "rpps",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n_pros)
        ],
    )
    patient_ids = [uuid.UUID(int=rnd.getrandbits(128)) for _ in range(n_patients)]
    await bulk(
        Patient.__table__,
        [
            {
                "id": p,
                "version": 1,
                "birth_name": "X",
                "birth_given_names": ["Y"],
                "first_birth_given_name": "Y",
                "birth_date": date(1950, 1, 1),
                "sex": "F",
                "birthplace_code": "06088",
                "search_birth_name": "X",
                "search_first_given_name": "Y",
                "identity_status": "provisoire",
                "homonyme": False,
                "douteuse": False,
                "fictive": False,
                "status": "active",
                "created_by": nid(0),
                "created_at": now,
                "updated_at": now,
            }
            for p in patient_ids
        ],
    )
    members: list[dict[str, object]] = []
    per_patient = max(1, n_members // n_patients)
    for p in patient_ids:
        seen: set[int] = set()
        for _ in range(per_patient):
            k = rnd.randrange(n_pros)
            if k in seen:
                continue
            seen.add(k)
            members.append(
                {
                    "id": uuid.uuid4(),
                    "patient_id": p,
                    "kind": "professional",
                    "national_id": nid(k),
                    "role": "médecin",
                    "habilite": True,
                    "added_at": now,
                    "added_by": nid(0),
                }
            )
    await bulk(CircleMember.__table__, members)
    del members

    base = date(2030, 1, 1)
    for start in range(0, n_tasks, 100_000):
        trows: list[dict[str, object]] = []
        arows: list[dict[str, object]] = []
        for _ in range(start, min(n_tasks, start + 100_000)):
            tid = uuid.UUID(int=rnd.getrandbits(128))
            status = rnd.choices(STATUSES, weights=[4, 2, 3, 1])[0]
            due = base + timedelta(days=rnd.randrange(365)) if rnd.random() < 0.8 else None
            sd = rules.sort_due(due)
            trows.append(
                {
                    "id": tid,
                    "version": 1,
                    "patient_id": rnd.choice(patient_ids) if rnd.random() < 0.8 else None,
                    "title": "Tâche",
                    "description": "",
                    "type": rnd.choice(TYPES),
                    "status": status,
                    "priority": None,
                    "due_date": due,
                    "sort_due": sd,
                    "creator_user_id": "@x:bench",
                    "creator_national_id": nid(rnd.randrange(n_pros)),
                    "created_at": now,
                    "updated_at": now,
                }
            )
            keys = {rules.person_key(nid(rnd.randrange(n_pros)))}
            if rnd.random() < 0.5:
                # A few big structures (hospitals) get a large share of structure assignments.
                s = rnd.randrange(10) if rnd.random() < 0.3 else rnd.randrange(n_structs)
                keys.add(rules.structure_key(sid(s)))
            arows += [{"task_id": tid, "key": k, "status": status, "sort_due": sd} for k in keys]
        await bulk(Task.__table__, trows)
        await bulk(TaskAssignee.__table__, arows)
        print(f"  seeded {start + len(trows):,} tasks", flush=True)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def _core_record_many(
    *, session: AsyncSession, actor: Actor, action: str, object_type: str, patient_ids: list[uuid.UUID]
) -> None:
    await session.execute(
        insert(AuditEntry),
        [
            {
                "actor_user_id": actor.user_id,
                "actor_national_id": actor.national_id,
                "via_bot": actor.via_bot,
                "action": action,
                "patient_id": p,
                "object_type": object_type,
                "object_id": str(p),
                "at": utcnow(),
            }
            for p in patient_ids
        ],
    )


async def _no_record_many(**_kwargs: object) -> None:
    return None


async def measure(url: str, *, n_pros: int, n_structs: int, runs: int, audit_mode: str) -> None:
    if audit_mode == "core":
        tasks.audit.record_many = _core_record_many  # type: ignore[assignment]
    elif audit_mode == "none":
        tasks.audit.record_many = _no_record_many  # type: ignore[assignment]
    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    rnd = random.Random(7)
    async with maker() as s:
        patient_sample = list(
            (await s.scalars(select(Task.patient_id).where(Task.patient_id.is_not(None)).limit(5000))).all()
        )
        task_sample = list((await s.scalars(select(Task.id).limit(5000))).all())

    def actor(k: int, structures: tuple[int, ...] = ()) -> Actor:
        return Actor(
            user_id=UserId(f"@p{k}:bench"),
            national_id=NationalId(nid(k)),
            display_name="P",
            profession_code="10",
            structure_ids=frozenset(StructureId(sid(x)) for x in structures),
        )

    async def patient_member(s: AsyncSession) -> tuple[Actor, PatientId]:
        pid = rnd.choice(patient_sample)
        n = await s.scalar(select(CircleMember.national_id).where(CircleMember.patient_id == pid).limit(1))
        assert n is not None and pid is not None
        return actor(int(n[1:])), PatientId(pid)

    async def q_patient_open(s: AsyncSession) -> None:
        a, pid = await patient_member(s)
        t0 = time.perf_counter()
        await tasks.list_tasks(
            session=s, actor=a, filters=tasks.TaskFilters(patient_id=pid, statuses=rules.OPEN_STATUSES)
        )
        timings["patient, open statuses"].append(time.perf_counter() - t0)

    async def q_mine(s: AsyncSession) -> None:
        a = actor(rnd.randrange(n_pros))
        t0 = time.perf_counter()
        await tasks.list_tasks(session=s, actor=a, filters=tasks.TaskFilters(scope="mine"))
        timings["my tasks, all statuses"].append(time.perf_counter() - t0)

    async def q_mine_type(s: AsyncSession) -> None:
        a = actor(rnd.randrange(n_pros))
        t0 = time.perf_counter()
        await tasks.list_tasks(
            session=s,
            actor=a,
            filters=tasks.TaskFilters(
                scope="mine", statuses=("à_faire",), type="concertation_pluriprofessionnelle"
            ),
        )
        timings["my tasks, à_faire + type"].append(time.perf_counter() - t0)

    async def q_structure(s: AsyncSession) -> None:
        a = actor(rnd.randrange(n_pros), (rnd.randrange(10), rnd.randrange(n_structs)))
        t0 = time.perf_counter()
        await tasks.list_tasks(
            session=s, actor=a, filters=tasks.TaskFilters(scope="structure", statuses=rules.OPEN_STATUSES)
        )
        timings["my structures (one big), open"].append(time.perf_counter() - t0)

    async def q_patient_assignee(s: AsyncSession) -> None:
        a, pid = await patient_member(s)
        t0 = time.perf_counter()
        await tasks.list_tasks(
            session=s,
            actor=a,
            filters=tasks.TaskFilters(patient_id=pid, assignee_national_id=a.national_id),
        )
        timings["patient + assignee filter"].append(time.perf_counter() - t0)

    async def q_baseline(s: AsyncSession) -> None:
        tid = rnd.choice(task_sample)
        t0 = time.perf_counter()
        await s.get(Task, tid, populate_existing=True)
        timings["baseline: one task by id"].append(time.perf_counter() - t0)

    queries: list[Callable[[AsyncSession], Awaitable[None]]] = [
        q_baseline,
        q_patient_open,
        q_mine,
        q_mine_type,
        q_structure,
        q_patient_assignee,
    ]
    timings: dict[str, list[float]] = {
        "baseline: one task by id": [],
        "patient, open statuses": [],
        "my tasks, all statuses": [],
        "my tasks, à_faire + type": [],
        "my structures (one big), open": [],
        "patient + assignee filter": [],
    }
    for _ in range(20):  # warm-up (caches, statement compilation)
        for q in queries:
            async with maker() as s:
                await q(s)
    for v in timings.values():
        v.clear()
    for _ in range(runs):
        for q in queries:
            async with maker() as s:
                await q(s)
    await engine.dispose()
    print(f"\n{engine.dialect.name}: {runs} runs per query, first page of 50 (ms), audit={audit_mode}")
    print(f"{'query':34} {'p50':>8} {'p95':>8} {'max':>8}")
    for name, v in timings.items():
        v.sort()
        p95 = v[int(0.95 * (len(v) - 1))]
        print(f"{name:34} {statistics.median(v) * 1000:8.2f} {p95 * 1000:8.2f} {v[-1] * 1000:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url")
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--members", type=int, default=300_000)
    ap.add_argument("--pros", type=int, default=20_000)
    ap.add_argument("--structures", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--no-seed", action="store_true", help="reuse an already seeded database")
    ap.add_argument(
        "--audit",
        choices=["orm", "core", "none"],
        default="orm",
        help="orm: the real audit.record_many (default); core/none: see above",
    )
    args = ap.parse_args()
    url = args.database_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-tasks-')}/bench.db"
    if not args.no_seed:
        t0 = time.perf_counter()
        asyncio.run(
            seed(
                url,
                n_tasks=args.tasks,
                n_patients=args.patients,
                n_members=args.members,
                n_pros=args.pros,
                n_structs=args.structures,
            )
        )
        print(f"seeded in {time.perf_counter() - t0:.0f} s: {url}")
    asyncio.run(
        measure(url, n_pros=args.pros, n_structs=args.structures, runs=args.runs, audit_mode=args.audit)
    )


if __name__ == "__main__":
    main()
