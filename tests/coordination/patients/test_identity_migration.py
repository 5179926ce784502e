"""Migration ``d1_patient_identity_unique``: dossiers that concurrent creations duplicated before the
fix are kept, ranked in creation order and flagged ``homonyme`` (on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, Date, Integer, String, Uuid, column, insert, table, text

from coordination.db import UTCDateTime, make_engine
from coordination.migrate import upgrade_to_head_async
from tests.support.service import fresh_database_url

# The patients table as it was before ``d1_patient_identity_unique`` (no rank, the old column names):
# only the columns a row needs. Migration tests insert patients through it.
PATIENTS_C3 = table(
    "patients",
    column("id", Uuid),
    column("version", Integer),
    column("birth_name", String),
    column("birth_given_names", JSON),
    column("first_birth_given_name", String),
    column("birth_date", Date),
    column("sex", String),
    column("birthplace_code", String),
    column("search_birth_name", String),
    column("search_first_given_name", String),
    column("homonyme", Boolean),
    column("douteuse", Boolean),
    column("fictive", Boolean),
    column("identity_status", String),
    column("status", String),
    column("created_at", UTCDateTime()),
    column("created_by", String),
    column("updated_at", UTCDateTime()),
)


_CIRCLE_C3 = table(
    "circle_members",
    column("id", Uuid),
    column("patient_id", Uuid),
    column("kind", String),
    column("role", String),
    column("habilite", Boolean),
    column("added_at", UTCDateTime()),
    column("added_by", String),
)


def _member(patient_id: uuid.UUID) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "patient_id": patient_id,
        "kind": "professional",
        "role": "médecin traitant",
        "habilite": True,
        "added_at": datetime(2026, 1, 1, tzinfo=UTC),
        "added_by": "810000000001",
    }


def legacy_patient_row(n: int, name: str, created: datetime) -> dict[str, object]:
    return {
        "id": uuid.UUID(int=n + 1),
        "version": 1,
        "birth_name": name,
        "birth_given_names": ["Marie"],
        "first_birth_given_name": "Marie",
        "birth_date": date(1969, 5, 12),
        "sex": "F",
        "birthplace_code": "06088",
        "search_birth_name": name,
        "search_first_given_name": "MARIE",
        "homonyme": False,
        "douteuse": False,
        "fictive": False,
        "identity_status": "validee",
        "status": "active",
        "created_at": created,
        "created_by": "810000000001",
        "updated_at": created,
    }


async def test_existing_duplicates_are_ranked_and_flagged(tmp_path: Path) -> None:
    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url, revision="c3_vocabulary_codes")
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                rows_before = [("DUPONT", 2), ("DUPONT", 1), ("DUPONT", 3), ("DURAND", 1)]
                await conn.execute(
                    insert(PATIENTS_C3),
                    [
                        legacy_patient_row(n, name, datetime(2026, 1, day, tzinfo=UTC))
                        for n, (name, day) in enumerate(rows_before)
                    ],
                )
                # Rows of other tables that reference a patient (circle members are deleted with their
                # patient: a migration that rebuilt "patients" on SQLite would lose them, or fail).
                await conn.execute(insert(_CIRCLE_C3).values(_member(uuid.UUID(int=1))))
            await upgrade_to_head_async(url)
            async with engine.connect() as conn:
                members = (await conn.execute(text("SELECT count(*) FROM circle_members"))).scalar()
                rows = (
                    await conn.execute(
                        text(
                            "SELECT search_birth_name, created_at, homonym_rank, homonyme, identity_status "
                            "FROM patients ORDER BY search_birth_name, homonym_rank"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
    assert members == 1
    summary = [(r[0], str(r[1])[:10], r[2], bool(r[3]), r[4]) for r in rows]
    assert summary == [
        ("DUPONT", "2026-01-01", 0, True, "provisoire"),
        ("DUPONT", "2026-01-02", 1, True, "provisoire"),
        ("DUPONT", "2026-01-03", 2, True, "provisoire"),
        ("DURAND", "2026-01-01", 0, False, "validee"),
    ]
