"""First-start steps: schema migration, demo directory import, demo account passwords."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from azurezo_cli import bootstrap
from azurezo_cli.home import init_home, load_home
from coordination.db import make_engine, make_sessionmaker
from coordination.directory.models import Person


async def count_people(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(Person)) or 0)
    finally:
        await engine.dispose()


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")

    bootstrap.migrate(home.database_url)
    bootstrap.migrate(home.database_url)

    assert asyncio.run(count_people(home.database_url)) == 0


def test_the_bundled_demo_directory_is_imported_once(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    bootstrap.migrate(home.database_url)

    home = bootstrap.import_demo_directory(home)

    assert home.demo_imported and load_home(home.path).demo_imported
    imported = asyncio.run(count_people(home.database_url))
    assert imported > 0

    async def rename_everyone() -> None:
        engine = make_engine(home.database_url)
        async with make_sessionmaker(engine)() as session:
            await session.execute(update(Person).values(family_name="RENOMME"))
            await session.commit()
        await engine.dispose()

    asyncio.run(rename_everyone())
    bootstrap.import_demo_directory(home)  # a later start: the operator's data stays as it is

    async def names() -> set[str]:
        engine = make_engine(home.database_url)
        async with make_sessionmaker(engine)() as session:
            result = set((await session.scalars(select(Person.family_name))).all())
        await engine.dispose()
        return result

    assert asyncio.run(names()) == {"RENOMME"}


def test_every_demo_account_belongs_to_an_active_person_of_the_demo_directory(
    tmp_path: Path,
) -> None:
    home, _ = init_home(tmp_path / "var")
    bootstrap.migrate(home.database_url)
    bootstrap.import_demo_directory(home)
    accounts = bootstrap.load_demo_accounts()

    async def active_ids() -> set[str]:
        engine = make_engine(home.database_url)
        async with make_sessionmaker(engine)() as session:
            ids = await session.scalars(select(Person.national_id).where(Person.active))
            result = set(ids.all())
        await engine.dispose()
        return result

    assert accounts
    assert {a.national_id for a in accounts} <= asyncio.run(active_ids())
    assert len({a.localpart for a in accounts}) == len(accounts)


def test_demo_accounts_file_formats(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- {localpart: a, national_id: '810000000001', description: Médecin}\n")
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text("accounts:\n  - {localpart: b, national_id: '810000000002'}\n")

    assert bootstrap.load_demo_accounts(listed) == [bootstrap.DemoAccount("a", "810000000001", "Médecin")]
    assert bootstrap.load_demo_accounts(keyed) == [bootstrap.DemoAccount("b", "810000000002", "")]


def test_demo_accounts_file_without_national_id_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {localpart: a}\n")

    with pytest.raises(ValueError, match="national_id"):
        bootstrap.load_demo_accounts(bad)


def test_demo_passwords_are_generated_once_and_kept(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    demo = [
        bootstrap.DemoAccount("a", "810000000001", ""),
        bootstrap.DemoAccount("b", "810000000002", ""),
    ]

    first = bootstrap.ensure_demo_passwords(home, demo)
    again = bootstrap.ensure_demo_passwords(load_home(home.path), demo)

    assert set(first.demo_passwords) == {"a", "b"}
    assert first.demo_passwords["a"] != first.demo_passwords["b"]
    assert again.demo_passwords == first.demo_passwords
    assert all(len(p) >= 20 for p in first.demo_passwords.values())
