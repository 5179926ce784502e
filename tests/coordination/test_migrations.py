"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import coordination.all_models  # noqa: F401  (registers every table)
from coordination.db import Base, make_engine
from coordination.migrate import upgrade_to_head_async
from tests.support.service import fresh_database_url


async def test_migrations_match_models(tmp_path: Path) -> None:
    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url)
        await upgrade_to_head_async(url)  # a second run (every `azurezo up`) is a no-op

        def diff(conn: Connection) -> list[object]:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))

        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                changes = await conn.run_sync(diff)
        finally:
            await engine.dispose()
        assert changes == [], f"models changed without a migration: {changes}"


def test_vocabulary_migration_renames_into_real_codes() -> None:
    """The migration keeps its own frozen list of renames: each old code maps to a code of today's
    vocabulary, and no old code is still a valid one."""
    from coordination import vocab
    from coordination.migrations.versions import c3_vocabulary_codes as c3

    columns = {
        ("tasks", "status"): vocab.TaskStatus,
        ("task_assignees", "status"): vocab.TaskStatus,
        ("dac_requests", "status"): vocab.RequestStatus,
        ("dac_requests", "urgency"): vocab.Urgency,
        ("dac_requests", "decision"): vocab.Decision,
        ("patients", "identity_status"): vocab.IdentityStatus,
        ("patients", "consent_mode"): vocab.ConsentMode,
        ("patients", "identity_document_type"): vocab.IdentityDocumentType,
        ("patients", "discharge_reason"): vocab.DischargeReason,
    }
    for key, mapping in c3.RENAMES.items():
        codes = {m.value for m in columns[key]}
        assert set(mapping.values()) <= codes, key
        assert not set(mapping) & codes, key


async def test_old_codes_are_renamed_on_upgrade(tmp_path: Path) -> None:
    """A database written before the rename (``à_faire``, ``très_urgente``...) reads with today's codes."""
    from sqlalchemy import text

    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url, revision="b2_audit_append_only")
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                # The columns the rename touches, and the minimum the constraints ask for.
                await conn.execute(
                    text(
                        "INSERT INTO directory_structures (structure_id, name, search_name, is_dac, "
                        "active, source, updated_at) "
                        "VALUES ('x', 'DAC', 'DAC', true, true, 'fhir', CURRENT_TIMESTAMP)"
                    )
                )
                await conn.execute(
                    text(
                        "INSERT INTO dac_requests (id, version, status, urgency, decision, dac_structure_id, "
                        "requester_national_id, requester_user_id, reason, description, actions, alerts, "
                        "patient_included, created_at, updated_at, received_at) "
                        "VALUES ('11111111111111111111111111111111', 1, 'clôturée', 'très_urgente', "
                        "'réorientée', 'x', 'y', '@y:z', 'r', '', '[]', '[]', false, CURRENT_TIMESTAMP, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    )
                )
            await upgrade_to_head_async(url)
            async with engine.connect() as conn:
                row = (await conn.execute(text("SELECT status, urgency, decision FROM dac_requests"))).one()
        finally:
            await engine.dispose()
        assert tuple(row) == ("cloturee", "tres_urgente", "reorientee")


async def test_existing_tasks_get_short_numbers_in_creation_order(tmp_path: Path) -> None:
    """Tasks written before short numbers are numbered 1, 2, … per patient (and per creator without a
    patient), and the counters continue after them, so the next task of the patient is n° 3."""
    import datetime as dt
    import uuid

    from sqlalchemy import insert, select, text

    from coordination.tasks.rules import number_scope
    from tests.coordination.patients.test_identity_migration import PATIENTS_C3, legacy_patient_row

    patient_id = uuid.UUID(int=1)  # legacy_patient_row(0, ...)
    async with fresh_database_url(tmp_path) as url:
        await upgrade_to_head_async(url, revision="e5_synthesis_versions")
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                # The patients table as it was then (later migrations rename its columns).
                await conn.execute(
                    insert(PATIENTS_C3).values(
                        legacy_patient_row(0, "DUPONT", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
                    )
                )
                for i, (pid, creator) in enumerate(
                    [(patient_id, "8A"), (None, "8B"), (patient_id, "8C"), (None, "8B")]
                ):
                    await conn.execute(
                        text(
                            "INSERT INTO tasks (id, version, patient_id, title, description, type, status, "
                            "sort_due, creator_user_id, creator_national_id, created_at, updated_at) VALUES "
                            "(:id, 1, :pid, 't', '', 'autre', 'a_faire', :due, '@u:x', :creator, :at, :at)"
                        ).bindparams(
                            id=uuid.uuid4() if engine.dialect.name == "postgresql" else uuid.uuid4().hex,
                            pid=(patient_id if engine.dialect.name == "postgresql" else patient_id.hex)
                            if pid
                            else None,
                            due=dt.date(9999, 12, 31),
                            creator=creator,
                            at=dt.datetime(2026, 1, 1, 0, i, tzinfo=dt.UTC),
                        )
                    )
            await upgrade_to_head_async(url)
            async with engine.connect() as conn:
                numbers = (
                    await conn.execute(text("SELECT number_scope, number FROM tasks ORDER BY created_at"))
                ).all()
                counters = dict(
                    (
                        await conn.execute(
                            select(text("scope"), text("last")).select_from(text("task_number_counters"))
                        )
                    ).all()
                )
        finally:
            await engine.dispose()
    patient_scope = number_scope(patient_id=patient_id, creator_national_id="8A")
    creator_scope = number_scope(patient_id=None, creator_national_id="8B")
    assert [tuple(r) for r in numbers] == [
        (patient_scope, 1),
        (creator_scope, 1),
        (patient_scope, 2),
        (creator_scope, 2),
    ]
    assert counters == {patient_scope: 2, creator_scope: 2}


async def _rows_at_head_on_postgresql(tmp_path: Path, *statements: str) -> list[Any]:
    """The rows of the last of ``statements``, run in one connection to a fresh PostgreSQL database
    at the head revision (skips on SQLite: the collations tested here are PostgreSQL's)."""
    from sqlalchemy import text

    async with fresh_database_url(tmp_path) as url:
        if not url.startswith("postgresql"):
            pytest.skip("SQLite compares bytes and has one collation: nothing to check")
        await upgrade_to_head_async(url)
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                for sql in statements[:-1]:
                    await conn.execute(text(sql))
                return list(await conn.execute(text(statements[-1])))
        finally:
            await engine.dispose()


async def test_directory_keys_compare_bytewise_on_postgresql(tmp_path: Path) -> None:
    """Alembic does not compare collations: the migration's "C" is checked here (issue 6 item 18)."""
    from coordination.migrations.versions.directory_1_bytewise_keys import _COLUMNS
    from coordination.migrations.versions.directory_2_structure_key import _COLUMNS as _KEY

    rows = await _rows_at_head_on_postgresql(
        tmp_path,
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name LIKE 'directory_%'",
    )
    collations = {(t, c): coll for t, c, coll in rows}
    assert {collations[(t, c)] for t, c, _length in (*_COLUMNS, *_KEY)} == {"C"}
    assert collations[("directory_persons", "national_id")] is None  # the database's own


async def test_person_cards_find_their_structures_through_the_structures_key(tmp_path: Path) -> None:
    """The join of ``_cards`` (activities → structures) in one collation, so the structures' primary key
    serves it: with the key in the database's collation and the activities' structure in "C", PostgreSQL
    joined in "C" and read every structure for each page of cards (issue 6 item 18's collations)."""
    rows = await _rows_at_head_on_postgresql(
        tmp_path,
        "SET enable_seqscan = off",  # an index whenever one can serve
        "EXPLAIN SELECT * FROM directory_activities a LEFT JOIN directory_structures s "
        "ON s.structure_id = a.structure_id WHERE a.national_id = '810000000001'",
    )
    plan = "\n".join(row[0] for row in rows)
    assert "pk_directory_structures" in plan, plan
