"""Coordination service queries at scale: patient search and filtered task lists, through the API.

Seeds a fresh database (schema from the Alembic migrations) with 100,000 patients, 300,000 circle
members and 1,000,000 tasks (about 1.1 assignees each), with skewed, seeded distributions: a few
professionals follow thousands of patients, a few hospitals get a large share of structure members and
assignments, some patients have hundreds of tasks, most tasks are done. Then, for every query shape,
interleaved run by run with the same parameters:

- **api**: the real app in-process (``httpx.ASGITransport``, lifespan run), as an authorised
  professional: token check, directory identity, the query, the audit entries, the commit, the JSON;
- **sql**: the same page in hand-written SQL on a raw driver connection (aiosqlite / asyncpg) on the
  same database: one statement returning what the page shows (task rows with their assignees and
  labels; search hits with ``is_member``), using the same index access paths as the service;
- **sql+audit**: the same, plus the audit rows the service must write for that page, committed.

Every api answer is checked against the sql answer (same ids, same order). Prints p50 / p95 per shape,
the api / sql ratio at p95, and the query plans (EXPLAIN) of the statements the service ran.

    .venv/bin/python bench/bench_service.py                                   # SQLite, bench/out/
    .venv/bin/python bench/bench_service.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_service
    .venv/bin/python bench/bench_service.py --no-seed [--database-url ...]    # reuse a seeded base
    .venv/bin/python bench/bench_service.py --scale 0.1 --runs 50             # quick look

SQLite gets no ANALYZE (the service never runs one, so the plans are the ones production gets);
PostgreSQL gets VACUUM ANALYZE after the load, as autovacuum would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, insert, text
from sqlalchemy.engine import make_url

import coordination.all_models  # noqa: F401  (registers every table)
from coordination.app import create_app
from coordination.circle.models import CircleMember
from coordination.db import make_engine
from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.ids import UserId
from coordination.migrate import upgrade_to_head_async
from coordination.patients import rules as patient_rules
from coordination.patients.models import Patient
from coordination.settings import Settings
from coordination.tasks import rules as task_rules
from coordination.tasks.models import Task, TaskAssignee, TaskNumberCounter
from coordination.vocab import OPEN_TASK_STATUSES, TaskStatus

OUT = Path(__file__).with_name("out")
SERVER = "bench.azurezo"
BATCH = 20_000
TODAY = date(2026, 1, 15)  # fixed, so that a seed is the same whatever the day
SEARCH_PAGE = 20
TASK_PAGE = 50
BIG_STRUCTURES = 10  # hospitals: structure indexes 0..9
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
    "MASSON",
    "MARCHAND",
]
SYLLABLES = (
    "BA",
    "LE",
    "RO",
    "MI",
    "TA",
    "NU",
    "GO",
    "RI",
    "SE",
    "DA",
    "VO",
    "PU",
    "CHA",
    "TIN",
    "QUE",
    "ZO",
)
FIRST = ("Marie", "Jean", "Louise", "Paul", "Camille", "Lucas", "Emma", "Hugo", "Léa", "Jules", "Zoé", "Noé")
TASK_STATUSES: tuple[str, ...] = tuple(s.value for s in TaskStatus)
OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in OPEN_TASK_STATUSES)
STATUS_WEIGHTS = {"a_faire": 25, "en_cours": 10, "terminee": 55, "annulee": 10}
TYPE_WEIGHTS = {
    "visite": 25,
    "appel": 20,
    "soins": 20,
    "rendez_vous": 12,
    "evaluation": 8,
    "administratif": 8,
    "concertation_pluriprofessionnelle": 4,
    "autre": 3,
}


def nid(k: int) -> str:
    return f"8{k:011d}"


def sid(k: int) -> str:
    return f"finess:{k:09d}"


def skewed(rnd: random.Random, n: int, power: float) -> int:
    """An index in [0, n) where small indexes are much more likely (power > 1: more skew)."""
    return min(n - 1, int(n * rnd.random() ** power))


# --- seeding ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    patients: int
    members: int
    tasks: int
    pros: int
    structures: int


async def fresh_database(url: str) -> None:
    """Drop and recreate the database (SQLite file or PostgreSQL database), then migrate to head."""
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


def _remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def _pg_dsn(url: str, *, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def _names(rnd: random.Random) -> Callable[[], str]:
    # Zipf-like weights: MARTIN is about ten times as frequent as the 50th common name.
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(COMMON))]

    def name() -> str:
        if rnd.random() < 0.5:
            return rnd.choices(COMMON, weights)[0]
        return "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 4)))

    return name


async def seed(url: str, scale: Scale, *, rng_seed: int) -> None:
    """Fill a migrated, empty database. Core bulk inserts (executemany), one transaction per table."""
    rnd = random.Random(rng_seed)
    engine = make_engine(url)
    now = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    counts: dict[str, int] = {}

    async def bulk(table: Any, rows: Sequence[dict[str, Any]]) -> None:
        async with engine.begin() as conn:
            for i in range(0, len(rows), BATCH):
                await conn.execute(insert(table), rows[i : i + BATCH])
        counts[table.name] = counts.get(table.name, 0) + len(rows)

    # Directory: structures (10 hospitals first), professionals with one or two activities, accounts.
    await bulk(
        Structure.__table__,
        [
            {
                "structure_id": sid(s),
                "kind": "site",
                "name": f"{'Centre hospitalier' if s < BIG_STRUCTURES else 'Cabinet'} {s}",
                "search_name": f"{'CENTRE HOSPITALIER' if s < BIG_STRUCTURES else 'CABINET'} {s}",
                "is_dac": False,
                "active": True,
                "source": "rpps",
                "updated_at": now,
            }
            for s in range(scale.structures)
        ],
    )

    def any_structure() -> int:
        if rnd.random() < 0.3:
            return rnd.randrange(BIG_STRUCTURES)
        return skewed(rnd, scale.structures, 2)

    persons, activities, bindings = [], [], []
    for k in range(scale.pros):
        persons.append(
            {
                "national_id": nid(k),
                "id_type": "8",
                "family_name": f"NOM{k}",
                "given_name": rnd.choice(FIRST),
                "search_name": f"NOM{k}",
                "profession_code": "10" if k % 3 else "60",
                "active": True,
                "source": "rpps",
                "created_at": now,
                "updated_at": now,
            }
        )
        for s in {any_structure() for _ in range(1 if rnd.random() < 0.8 else 2)}:
            activities.append({"national_id": nid(k), "structure_id": sid(s), "source": "rpps"})
        bindings.append({"user_id": f"@pro{k}:{SERVER}", "national_id": nid(k), "created_at": now})
    await bulk(Person.__table__, persons)
    await bulk(Activity.__table__, activities)
    await bulk(AccountBinding.__table__, bindings)
    del persons, activities, bindings

    # Patients.
    name = _names(rnd)
    patient_ids = [uuid.UUID(int=rnd.getrandbits(128), version=4) for _ in range(scale.patients)]
    # The service refuses a second dossier with the same identity traits unless confirmed as a homonym
    # (then it takes the next homonym_rank): the seed does the same for the names it draws twice.
    ranks: dict[tuple[str, str, date], int] = {}
    for start in range(0, scale.patients, 50_000):
        rows = []
        for pid in patient_ids[start : start + 50_000]:
            birth = name()
            used = name() if rnd.random() < 0.3 else None
            first = rnd.choice(FIRST)
            born = date(1925, 1, 1) + timedelta(days=rnd.randrange(33_000))
            identity = (patient_rules.search_key(birth), patient_rules.search_key(first), born)
            rank = ranks.get(identity, -1) + 1
            ranks[identity] = rank
            rows.append(
                {
                    "id": pid,
                    "version": 1,
                    "birth_name": birth,
                    "birth_first_names": [first],
                    "first_birth_first_name": first,
                    "birth_date": born,
                    "sex": rnd.choice("FM"),
                    "birth_place_code": f"06{rnd.randint(1, 999):03d}",
                    "used_name": used,
                    "search_birth_name": patient_rules.search_key(birth),
                    "search_used_name": patient_rules.search_key(used) if used else None,
                    "search_first_given_name": patient_rules.search_key(first),
                    "homonym_rank": rank,
                    "homonyme": rank > 0,
                    "douteuse": False,
                    "fictive": False,
                    "identity_status": "provisoire",
                    "status": "active" if rnd.random() < 0.9 else "sortie",
                    "created_at": now,
                    "created_by": nid(0),
                    "updated_at": now,
                }
            )
        await bulk(Patient.__table__, rows)

    # Circle members: 1 to 5 per patient (exactly ``scale.members`` in all); professionals and
    # structures drawn with a strong skew (some follow thousands of patients).
    sizes = [rnd.choice((1, 2, 3, 3, 4, 5)) for _ in patient_ids]
    while (total := sum(sizes)) != scale.members:
        i = rnd.randrange(len(sizes))
        if total < scale.members and sizes[i] < 8:
            sizes[i] += 1
        elif total > scale.members and sizes[i] > 1:
            sizes[i] -= 1
    circle: list[tuple[list[str], str | None]] = []  # per patient: habilité professionals, structure
    members = []
    for pid, size in zip(patient_ids, sizes, strict=True):
        pros: list[str] = []
        allowed: list[str] = []
        structure: str | None = None
        while len(pros) + (structure is not None) < size:
            if structure is None and pros and rnd.random() < 0.15:
                structure = sid(any_structure())
                members.append(_member(rnd, pid, now, structure_id=structure))
                continue
            n = nid(skewed(rnd, scale.pros, 2))
            if n in pros:
                continue
            pros.append(n)
            habilite = len(pros) == 1 or rnd.random() < 0.95
            members.append(_member(rnd, pid, now, national_id=n, habilite=habilite))
            if habilite:
                allowed.append(n)
        circle.append((allowed, structure))
    await bulk(CircleMember.__table__, members)
    del members

    # Tasks: 85% about a patient (skewed: some patients have hundreds), created by a member and
    # assigned to another member (and, one time in four, to the patient's structure member).
    status_names, status_w = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    type_names, type_w = list(TYPE_WEIGHTS), list(TYPE_WEIGHTS.values())
    numbers: dict[str, int] = {}  # short numbers per scope, as the service gives them
    for start in range(0, scale.tasks, 100_000):
        trows, arows = [], []
        for _ in range(start, min(scale.tasks, start + 100_000)):
            tid = uuid.UUID(int=rnd.getrandbits(128), version=4)
            status = rnd.choices(status_names, status_w)[0]
            due = TODAY + timedelta(days=rnd.randint(-400, 120)) if rnd.random() < 0.85 else None
            keys: set[str] = set()
            if rnd.random() < 0.85:
                p = skewed(rnd, scale.patients, 1.5)
                patient_id: uuid.UUID | None = patient_ids[p]
                pros, structure = circle[p]
                creator = rnd.choice(pros)
                keys.add(task_rules.person_key(rnd.choice(pros)))
                if structure is not None and rnd.random() < 0.25:
                    keys.add(task_rules.structure_key(structure))
            else:
                patient_id = None
                creator = nid(skewed(rnd, scale.pros, 2))
                keys.add(task_rules.person_key(nid(skewed(rnd, scale.pros, 2))))
                if rnd.random() < 0.4:
                    keys.add(task_rules.structure_key(sid(any_structure())))
            created = now - timedelta(minutes=rnd.randrange(2 * 365 * 24 * 60))
            sort_due = task_rules.sort_due(due)
            scope = task_rules.number_scope(patient_id=patient_id, creator_national_id=creator)
            numbers[scope] = numbers.get(scope, 0) + 1
            task_type = rnd.choices(type_names, type_w)[0]
            trows.append(
                {
                    "id": tid,
                    "version": 1,
                    "number": numbers[scope],
                    "number_scope": scope,
                    "patient_id": patient_id,
                    "title": "Tâche de coordination",
                    "description": "",
                    "type": task_type,
                    "status": status,
                    "priority": rnd.choice((None, "normale", "haute")),
                    "due_date": due,
                    "sort_due": sort_due,
                    "creator_user_id": f"@pro{int(creator[1:])}:{SERVER}",
                    "creator_national_id": creator,
                    "created_at": created,
                    "updated_at": created,
                    "completed_at": created if status == "terminee" else None,
                }
            )
            arows += [
                {"task_id": tid, "key": k, "status": status, "type": task_type, "sort_due": sort_due}
                for k in keys
            ]
        await bulk(Task.__table__, trows)
        await bulk(TaskAssignee.__table__, arows)
        print(f"  {start + len(trows):>9,} tasks", flush=True)
    await bulk(TaskNumberCounter.__table__, [{"scope": k, "last": v} for k, v in numbers.items()])
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    print("  rows: " + ", ".join(f"{n} {t}" for t, n in counts.items()))


def _member(
    rnd: random.Random,
    patient_id: uuid.UUID,
    now: datetime,
    *,
    national_id: str | None = None,
    structure_id: str | None = None,
    habilite: bool = True,
) -> dict[str, Any]:
    return {
        "id": uuid.UUID(int=rnd.getrandbits(128), version=4),
        "patient_id": patient_id,
        "kind": "professional" if national_id else "structure",
        "national_id": national_id,
        "structure_id": structure_id,
        "role": "infirmier" if national_id else "structure de soins",
        "habilite": habilite,
        "added_at": now,
        "added_by": nid(0),
    }


# --- the raw-SQL side ------------------------------------------------------------------------------


class Raw:
    """A raw driver connection (aiosqlite or asyncpg) on the bench database; ``:name`` parameters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = make_url(url).get_backend_name() == "sqlite"
        self._conn: Any = None

    async def open(self) -> None:
        if self.sqlite:
            import aiosqlite

            self._conn = await aiosqlite.connect(make_url(self.url).database or "")
            # The service's engine sets the same pragmas on its connections (coordination.db).
            for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
                await self._conn.execute(f"PRAGMA {pragma}")
        else:
            import asyncpg

            self._conn = await asyncpg.connect(_pg_dsn(self.url))

    async def close(self) -> None:
        await self._conn.close()

    def value(self, v: Any) -> Any:
        """Python value -> what the driver gets (SQLAlchemy stores UUIDs as 32 hex digits on SQLite)."""
        if self.sqlite:
            if isinstance(v, uuid.UUID):
                return v.hex
            if isinstance(v, datetime):
                return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            if isinstance(v, date):
                return v.isoformat()
        return v

    def _positional(self, sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
        order: list[str] = []

        def number(m: re.Match[str]) -> str:
            if m.group(1) not in order:
                order.append(m.group(1))
            return f"${order.index(m.group(1)) + 1}"

        return re.sub(r"(?<![:\w]):(\w+)", number, sql), [self.value(params[n]) for n in order]

    async def fetch(self, sql: str, params: dict[str, Any]) -> list[Sequence[Any]]:
        if self.sqlite:
            async with self._conn.execute(sql, {k: self.value(v) for k, v in params.items()}) as cur:
                return list(await cur.fetchall())
        query, args = self._positional(sql, params)
        return list(await self._conn.fetch(query, *args))

    async def audit(
        self, actor: ActorInfo, action: str, object_type: str, patient_ids: Sequence[Any]
    ) -> None:
        """What ``audit.record_many`` writes for a page, in one transaction, committed."""
        if not patient_ids:
            return
        sql = (
            "INSERT INTO audit_entries (at, actor_user_id, actor_national_id, via_bot, action, patient_id, "
            "object_type, object_id) VALUES (:at, :u, :n, :b, :a, :p, :o, :i)"
        )
        at = datetime.now(UTC)
        rows = [
            {"at": at, "u": actor.user_id, "n": actor.national_id, "b": False, "a": action}
            | {"p": uuid.UUID(str(p)), "o": object_type, "i": str(uuid.UUID(str(p)))}
            for p in patient_ids
        ]
        if self.sqlite:
            await self._conn.executemany(sql, [{k: self.value(v) for k, v in r.items()} for r in rows])
            await self._conn.commit()
            return
        query, _ = self._positional(sql, rows[0])
        names = ["at", "u", "n", "b", "a", "p", "o", "i"]
        async with self._conn.transaction():
            await self._conn.executemany(query, [[r[k] for k in names] for r in rows])


def _depth(rows: Sequence[Sequence[Any]], row: Sequence[Any]) -> int:
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents:
        depth, parent = depth + 1, parents[parent]
    return depth


@dataclass(frozen=True)
class ActorInfo:
    national_id: str
    structures: tuple[str, ...]

    @property
    def user_id(self) -> str:
        return f"@pro{int(self.national_id[1:])}:{SERVER}"


def _auth(actor: ActorInfo, params: dict[str, Any], patient: str) -> str:
    """SQL: a circle row of ``patient`` grants the actor access (as ``circle._authorised_clause``)."""
    params["me"] = actor.national_id
    via_structure = ""
    if actor.structures:
        names = []
        for j, s in enumerate(actor.structures):
            params[f"ms{j}"] = s
            names.append(f":ms{j}")
        via_structure = f" OR (m.kind = 'structure' AND m.structure_id IN ({', '.join(names)}))"
    return (
        f"EXISTS (SELECT 1 FROM circle_members m WHERE m.patient_id = {patient} AND m.habilite "
        f"AND ((m.kind = 'professional' AND m.national_id = :me){via_structure}))"
    )


def search_sql(actor: ActorInfo, q: str, birth: date | None) -> tuple[str, dict[str, Any]]:
    key = patient_rules.search_key(q)
    params: dict[str, Any] = {"k": key, "u": patient_rules.prefix_upper_bound(key), "lim": SEARCH_PAGE + 1}
    on_birth = ""
    if birth is not None:
        params["b"] = birth
        on_birth = " AND birth_date = :b"
    branches = [
        f"SELECT * FROM (SELECT id, {col} AS k, birth_date AS b FROM patients WHERE {col} >= :k "
        f"AND {col} < :u{on_birth} ORDER BY {col}, birth_date LIMIT :lim) AS h{n}"
        for n, col in enumerate(("search_birth_name", "search_used_name"))
    ]
    sql = (
        f"WITH hits AS ({' UNION ALL '.join(branches)}), "
        "page AS (SELECT id, min(k) AS k, b FROM hits GROUP BY id, b ORDER BY 2, 3, 1 LIMIT :lim) "
        "SELECT p.id, p.birth_name, p.first_birth_first_name, p.used_name, p.used_first_name, "
        f"p.birth_date, p.sex, p.identity_status, p.status, {_auth(actor, params, 'p.id')} AS is_member "
        "FROM page JOIN patients p ON p.id = page.id ORDER BY page.k, page.b, page.id"
    )
    return sql, params


@dataclass(frozen=True)
class TaskQuery:
    """One task list: the API query string, and what the hand-written SQL needs for the same page."""

    actor: ActorInfo
    api: tuple[tuple[str, str], ...]
    statuses: tuple[str, ...] = TASK_STATUSES
    patient: uuid.UUID | None = None
    assignee_keys: tuple[str, ...] = ()  # scans of ix_task_assignees_key_status_due
    creator: str | None = None  # a scan of ix_tasks_creator_status_due
    type: str | None = None
    wanted_key: str | None = None  # "assigned to this key" filter


def tasks_sql(t: TaskQuery) -> tuple[str, dict[str, Any]]:
    """The page: one ordered, limited index scan per (source, status), merged, then the rows with their
    assignees and the assignees' names, in one statement."""
    params: dict[str, Any] = {"lim": TASK_PAGE + 1}
    on_task: list[str] = []  # conditions on the task row
    on_type = {"t": "", "a": ""}  # the type is on the task row and copied on the assignee row
    if t.type is not None:
        params["ty"] = t.type
        on_type = {"t": " AND t.type = :ty", "a": " AND a.type = :ty"}
    if t.patient is not None:
        params["pat"] = t.patient
        on_task.append("t.patient_id = :pat")
    if t.wanted_key is not None:
        params["w"] = t.wanted_key
        on_task.append("EXISTS (SELECT 1 FROM task_assignees w WHERE w.task_id = t.id AND w.key = :w)")
    branches: list[str] = []
    for j, status in enumerate(t.statuses):
        params[f"s{j}"] = status
        extra = "".join(f" AND {c}" for c in on_task)
        if t.patient is not None and not t.assignee_keys and t.creator is None:
            branches.append(
                f"SELECT t.sort_due AS d, t.id AS i FROM tasks t WHERE t.status = :s{j}{extra}{on_type['t']} "
                "ORDER BY t.sort_due, t.id LIMIT :lim"
            )
        if t.creator is not None:
            params["cr"] = t.creator
            branches.append(
                f"SELECT t.sort_due AS d, t.id AS i FROM tasks t WHERE t.creator_national_id = :cr "
                f"AND t.status = :s{j}{extra}{on_type['t']} ORDER BY t.sort_due, t.id LIMIT :lim"
            )
        for n, key in enumerate(t.assignee_keys):
            params[f"k{n}"] = key
            join = " JOIN tasks t ON t.id = a.task_id" if on_task else ""
            branches.append(
                f"SELECT a.sort_due AS d, a.task_id AS i FROM task_assignees a{join} WHERE a.key = :k{n} "
                f"AND a.status = :s{j}{extra}{on_type['a']} ORDER BY a.sort_due, a.task_id LIMIT :lim"
            )
    union = " UNION ".join(f"SELECT * FROM ({b}) AS b{n}" for n, b in enumerate(branches))
    where = f" WHERE {_auth(t.actor, params, ':pat')}" if t.patient is not None else ""
    sql = (
        f"WITH page AS (SELECT d, i FROM ({union}) AS u ORDER BY d, i LIMIT :lim) "
        "SELECT t.id, t.version, t.patient_id, t.title, t.description, t.type, t.status, t.priority, "
        "t.due_date, t.creator_national_id, t.creator_user_id, t.created_at, t.updated_at, "
        "t.completed_at, a.key, p.given_name, p.family_name, s.name "
        "FROM page JOIN tasks t ON t.id = page.i "
        "LEFT JOIN task_assignees a ON a.task_id = t.id "
        "LEFT JOIN directory_persons p ON p.national_id = substr(a.key, 4) "
        "LEFT JOIN directory_structures s ON s.structure_id = substr(a.key, 4)"
        f"{where} ORDER BY page.d, page.i, a.key"
    )
    return sql, params


# --- measuring -------------------------------------------------------------------------------------


@dataclass
class Case:
    actor: ActorInfo
    path: str
    query: tuple[tuple[str, str], ...]
    sql: str
    params: dict[str, Any]
    action: str  # the audit action the service records for this page


@dataclass
class Shape:
    name: str
    group: str  # "search" or "tasks"
    cases: list[Case]
    api: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    sql_audit: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)


class BenchTokens:
    """The token verifier: in this bench a token is the Matrix ID itself (Synapse is not measured)."""

    async def user_for_token(self, token: str) -> UserId | None:
        return UserId(token)


def _page_ids(shape: Shape, rows: Sequence[Sequence[Any]]) -> list[uuid.UUID]:
    ids = list(dict.fromkeys(uuid.UUID(str(r[0])) for r in rows))
    return ids[: SEARCH_PAGE if shape.group == "search" else TASK_PAGE]


def _page_patients(shape: Shape, rows: Sequence[Sequence[Any]]) -> list[Any]:
    if shape.group == "search":
        return list(dict.fromkeys(r[0] for r in rows))[:SEARCH_PAGE]
    by_task = dict.fromkeys(r[0] for r in rows)
    tasks = list(by_task)[:TASK_PAGE]
    patients = {r[0]: r[2] for r in rows}
    return sorted({patients[t] for t in tasks if patients[t] is not None}, key=str)


async def pick_cases(raw: Raw, *, runs: int, rng_seed: int) -> list[Shape]:
    """Query parameters for every shape, chosen from what the database holds (works with --no-seed)."""
    rnd = random.Random(rng_seed)
    activities: dict[str, list[str]] = {}
    for n, s in await raw.fetch("SELECT national_id, structure_id FROM directory_activities", {}):
        activities.setdefault(n, []).append(s)

    def actor(n: str) -> ActorInfo:
        return ActorInfo(n, tuple(sorted(set(activities.get(n, [])))))

    rows = await raw.fetch(
        "SELECT patient_id, national_id FROM circle_members WHERE kind = 'professional' AND habilite", {}
    )
    members: dict[uuid.UUID, list[str]] = {}
    for p, n in rows:
        members.setdefault(uuid.UUID(str(p)), []).append(n)
    typical = [n for _, n in rows]  # a professional drawn by circle row: weighted like real traffic
    heavy = [
        n
        for (n,) in await raw.fetch(
            "SELECT national_id FROM circle_members WHERE kind = 'professional' AND habilite "
            "GROUP BY national_id ORDER BY count(*) DESC LIMIT 20",
            {},
        )
    ]
    # Patients drawn by task (so busy patients come up as often as they would in use).
    by_task = [
        uuid.UUID(str(p))
        for (p,) in await raw.fetch(
            "SELECT patient_id FROM tasks WHERE patient_id IS NOT NULL ORDER BY id LIMIT 5000", {}
        )
    ]
    by_task = [p for p in by_task if p in members]
    hospital_staff = [
        n
        for (n,) in await raw.fetch(
            "SELECT national_id FROM directory_activities WHERE structure_id IN (:a, :b, :c)",
            {"a": sid(0), "b": sid(1), "c": sid(2)},
        )
    ]
    named = [
        (str(k), date.fromisoformat(str(b)))
        for k, b in await raw.fetch(
            "SELECT search_birth_name, birth_date FROM patients ORDER BY id LIMIT 5000", {}
        )
    ]
    common_named = [(k, b) for k, b in named if k in COMMON]
    rare_named = [k for k, _ in named if k not in COMMON and len(k) >= 6]
    created_pairs: dict[str, list[str]] = {}
    for n in heavy:
        keys = await raw.fetch(
            "SELECT DISTINCT a.key FROM tasks t JOIN task_assignees a ON a.task_id = t.id "
            "WHERE t.creator_national_id = :n AND a.key <> :me",
            {"n": n, "me": task_rules.person_key(n)},
        )
        created_pairs[n] = [str(k) for (k,) in keys if str(k).startswith("pp:")]
    creators = [n for n in heavy if created_pairs[n]]

    def search(name: str, make: Callable[[], tuple[str, date | None]]) -> Shape:
        cases = []
        for _ in range(runs):
            a = actor(rnd.choice(typical + heavy))
            q, birth = make()
            query = (("q", q),) + ((("birth_date", birth.isoformat()),) if birth else ())
            sql, params = search_sql(a, q, birth)
            cases.append(Case(a, "/api/v1/patients", query, sql, params, "patient.search_hit"))
        return Shape(name, "search", cases)

    def tasks(name: str, make: Callable[[], TaskQuery]) -> Shape:
        cases = []
        for _ in range(runs):
            t = make()
            sql, params = tasks_sql(t)
            cases.append(Case(t.actor, "/api/v1/tasks", t.api, sql, params, "task.list"))
        return Shape(name, "tasks", cases)

    def mine(n: str, **kw: Any) -> TaskQuery:
        return TaskQuery(actor(n), assignee_keys=(task_rules.person_key(n),), creator=n, **kw)

    open_ = OPEN_STATUSES

    def patient_tasks(statuses: tuple[str, ...]) -> TaskQuery:
        p = rnd.choice(by_task)
        a = actor(rnd.choice(members[p]))
        api = (("patient_id", str(p)), *tuple(("status", s) for s in statuses))
        return TaskQuery(a, api, statuses=statuses or TASK_STATUSES, patient=p)

    def created_assigned_to() -> TaskQuery:
        n = rnd.choice(creators)
        key = rnd.choice(created_pairs[n])
        api = (("scope", "created"), ("assignee_national_id", key[3:]))
        return TaskQuery(actor(n), api, creator=n, wanted_key=key)

    def structure(statuses: tuple[str, ...]) -> TaskQuery:
        a = actor(rnd.choice(hospital_staff))
        api = (("scope", "structure"), *tuple(("status", s) for s in statuses))
        keys = tuple(task_rules.structure_key(s) for s in a.structures)
        return TaskQuery(a, api, statuses=statuses or TASK_STATUSES, assignee_keys=keys)

    def common_prefix() -> tuple[str, None]:
        return rnd.choices(COMMON, [1 / (r + 1) ** 0.6 for r in range(len(COMMON))])[0][:3], None

    def with_birth_date() -> tuple[str, date | None]:
        name, birth = rnd.choice(common_named)
        return name[:3], birth

    def by_type() -> TaskQuery:
        task_type = rnd.choice(list(TYPE_WEIGHTS))
        return mine(rnd.choice(heavy), api=(("type", task_type),), type=task_type)

    return [
        search("search: common 3-letter prefix", common_prefix),
        search(
            "search: 4-5 letters of a common name", lambda: (rnd.choice(COMMON)[: rnd.randint(4, 5)], None)
        ),
        search("search: rare name, 3-5 letters", lambda: (rnd.choice(rare_named)[: rnd.randint(3, 5)], None)),
        search("search: 3 letters + birth date", with_birth_date),
        search("search: no hit", lambda: ("".join(rnd.choice("WXYZ") for _ in range(4)), None)),
        tasks("tasks: mine (default), typical pro", lambda: mine(rnd.choice(typical), api=())),
        tasks("tasks: mine, busiest pros", lambda: mine(rnd.choice(heavy), api=())),
        tasks(
            "tasks: mine, status open, busiest",
            lambda: mine(
                rnd.choice(heavy), api=(("status", "a_faire"), ("status", "en_cours")), statuses=open_
            ),
        ),
        tasks("tasks: mine, by type, busiest", by_type),
        tasks("tasks: by patient", lambda: patient_tasks(())),
        tasks("tasks: by patient + status", lambda: patient_tasks(("a_faire",))),
        tasks("tasks: created by me, by assignee", created_assigned_to),
        tasks("tasks: my structures, open", lambda: structure(open_)),
        tasks("tasks: my structures, all statuses", lambda: structure(())),
    ]


@asynccontextmanager
async def running_service(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = Settings(
        database_url=url,
        synapse_url="http://127.0.0.1:9",  # unused: BenchTokens answers for Synapse
        server_name=SERVER,
        internal_api_secret="bench-" + "b" * 42,
        documents_dir=OUT / "documents",
    )
    app = create_app(settings, token_verifier=BenchTokens())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client, app.state.engine


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]


async def measure(url: str, *, runs: int, warmup: int, rng_seed: int) -> list[Shape]:
    raw = Raw(url)
    await raw.open()
    try:
        shapes = await pick_cases(raw, runs=warmup + runs, rng_seed=rng_seed)
        async with running_service(url) as (client, engine):

            async def api(case: Case) -> list[uuid.UUID]:
                r = await client.get(
                    case.path, params=case.query, headers={"Authorization": f"Bearer {case.actor.user_id}"}
                )
                if r.status_code != 200:
                    raise SystemExit(f"{case.path} {case.query}: {r.status_code} {r.text}")
                body = r.json()
                return [uuid.UUID(x["id"]) for x in body.get("results", body.get("items", []))]

            async def sql(shape: Shape, case: Case, *, audit: bool) -> list[Sequence[Any]]:
                rows = await raw.fetch(case.sql, case.params)
                if audit:
                    await raw.audit(
                        case.actor,
                        case.action,
                        "patient" if shape.group == "search" else "task",
                        _page_patients(shape, rows),
                    )
                return rows

            rnd = random.Random(rng_seed + 1)
            mismatches = 0
            for run in range(warmup + runs):
                order = list(shapes)
                rnd.shuffle(order)
                for shape in order:
                    case = shape.cases[run]
                    modes: list[str] = ["api", "sql", "sql_audit"]
                    rnd.shuffle(modes)
                    for mode in modes:
                        t0 = time.perf_counter()
                        if mode == "api":
                            got = await api(case)
                        else:
                            rows = await sql(shape, case, audit=mode == "sql_audit")
                        took = (time.perf_counter() - t0) * 1000
                        if run >= warmup:
                            getattr(shape, mode).append(took)
                    want = _page_ids(shape, rows)
                    if got != want:
                        mismatches += 1
                        if mismatches <= 3:
                            print(f"MISMATCH {shape.name} {case.query}: api {len(got)} ids, sql {len(want)}")
                    if run >= warmup:
                        shape.sizes.append(len(got))
            if mismatches:
                raise SystemExit(f"{mismatches} pages differ between the API and the SQL: fix the SQL")
            for shape in shapes:
                shape.plans = await service_plans(client, engine, raw, shape)
    finally:
        await raw.close()
    return shapes


async def service_plans(client: httpx.AsyncClient, engine: Any, raw: Raw, shape: Shape) -> list[str]:
    """EXPLAIN of the SELECTs the service ran for one request of the shape (the identity look-ups
    of the authentication left out)."""
    seen: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if (
            statement.lstrip().upper().startswith(("SELECT", "WITH"))
            and "directory_account_bindings" not in statement
        ):
            seen.append((statement, parameters))

    case = shape.cases[-1]
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await client.get(
            case.path, params=case.query, headers={"Authorization": f"Bearer {case.actor.user_id}"}
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    out = []
    prefix = "EXPLAIN QUERY PLAN " if raw.sqlite else "EXPLAIN "
    async with engine.connect() as conn:
        for statement, parameters in seen:
            if "directory_activities" in statement and "circle_members" not in statement:
                continue  # the actor's structures (authentication)
            first = re.sub(r"\s+", " ", statement)[:110]
            out.append(f"  -- {first}...")
            rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
            for r in rows:
                line = f"     {(_depth(rows, r) * '  ') if raw.sqlite else ''}{r[-1]}"
                out.append(line if len(line) <= 200 else line[:197] + "...")
    return out


def report(shapes: list[Shape], dialect: str) -> None:
    print(f"\n{dialect}: {len(shapes[0].api)} runs per shape, interleaved; milliseconds")
    head = (
        f"{'shape':40} {'rows':>5} {'api p50':>8} {'api p95':>8} {'sql p50':>8} {'sql p95':>8} "
        f"{'+audit p95':>10} {'api/sql p95':>11} {'target':>7}"
    )
    print(head)
    print("-" * len(head))
    for s in shapes:
        target = 20.0 if s.group == "search" else 30.0
        a95, q95 = percentile(s.api, 95), percentile(s.sql, 95)
        ok = "ok" if a95 <= target else "MISSED"
        print(
            f"{s.name:40} {statistics.mean(s.sizes):5.1f} {statistics.median(s.api):8.2f} {a95:8.2f} "
            f"{statistics.median(s.sql):8.2f} {q95:8.2f} {percentile(s.sql_audit, 95):10.2f} "
            f"{a95 / q95:10.1f}x "
            f"{ok:>7}"
        )
    print("\nQuery plans of the statements the service ran (one request per shape):")
    for s in shapes:
        print(f"\n[{s.name}]")
        print("\n".join(s.plans))
    OUT.mkdir(exist_ok=True)
    path = OUT / f"bench_service_{dialect}.json"
    path.write_text(
        json.dumps(
            {s.name: {"api": s.api, "sql": s.sql, "sql_audit": s.sql_audit, "rows": s.sizes} for s in shapes}
        )
    )
    print(f"\nsamples: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=f"sqlite+aiosqlite:///{OUT / 'bench_service.db'}")
    ap.add_argument("--no-seed", action="store_true", help="reuse an already seeded database")
    ap.add_argument("--seed-only", action="store_true", help="seed, then stop")
    ap.add_argument(
        "--scale", type=float, default=1.0, help="fraction of 100k patients / 300k members / 1M tasks"
    )
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42, help="random seed of the data and of the query mix")
    args = ap.parse_args()
    url = args.database_url
    if make_url(url).get_backend_name() == "postgresql" and not make_url(url).database:
        url = make_url(url).set(database="bench_service").render_as_string(hide_password=False)
    if not args.no_seed:
        scale = Scale(
            patients=int(100_000 * args.scale),
            members=int(300_000 * args.scale),
            tasks=int(1_000_000 * args.scale),
            pros=max(200, int(20_000 * args.scale)),
            structures=max(20, int(2_000 * args.scale)),
        )
        t0 = time.perf_counter()
        asyncio.run(fresh_database(url))
        asyncio.run(seed(url, scale, rng_seed=args.seed))
        print(f"seeded in {time.perf_counter() - t0:.0f} s: {make_url(url).render_as_string()}")
    if args.seed_only:
        return
    print(f"load average before measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    shapes = asyncio.run(measure(url, runs=args.runs, warmup=args.warmup, rng_seed=args.seed))
    report(shapes, make_url(url).get_backend_name())
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
