"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

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


def test_vocabulary_migration_is_the_frozen_copy_of_legacy_codes() -> None:
    """The migration keeps its own copy of the renames; both must say the same, into real codes."""
    from coordination import vocab
    from coordination.migrations.versions import c3_vocabulary_codes as c3

    assert c3.RENAMES == vocab.LEGACY_CODES
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
