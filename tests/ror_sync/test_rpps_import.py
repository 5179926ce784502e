"""RPPS extract import: layouts, encodings, malformed lines, snapshot semantics, atomicity."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import make_engine, make_sessionmaker
from coordination.directory import service, store
from coordination.directory.models import Activity, Person, Structure
from ror_sync import importer, rpps
from ror_sync.importer import MassDeactivationError, import_rpps, import_rpps_stream
from ror_sync.rpps import NEW_HEADERS, RppsFormatError
from ror_sync.workdir import import_temp_dir, sweep_stale_import_files
from tests.ror_sync.helpers import (
    national_id,
    rpps_line,
    stage_part_with_a_small_structure_table,
    write_rpps,
)
from tests.support.service import create_schema, fresh_database_url


async def run_import(database_url: str, path: Path):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(import_rpps, database_url, path)


async def persons(db: AsyncSession) -> dict[str, Person]:
    db.expire_all()
    return {p.national_id: p for p in (await db.scalars(select(Person))).all()}


@pytest.mark.parametrize(
    ("headers", "encoding", "newline"),
    [
        (None, "utf-8", "\n"),
        (NEW_HEADERS, "utf-8", "\r\n"),
        (None, "latin-1", "\r\n"),
        (NEW_HEADERS, "cp1252", "\n"),
    ],
    ids=["classic-utf8-lf", "new56-utf8-crlf", "classic-latin1-crlf", "new56-cp1252-lf"],
)
async def test_layouts_and_encodings_give_the_same_directory(
    database_url: str, db: AsyncSession, tmp_path: Path, headers, encoding: str, newline: str
) -> None:
    kw = {"headers": headers} if headers else {}
    lines = [
        rpps_line(1, site=1, **kw),
        rpps_line(1, site=2, **kw),  # same person, second site
        rpps_line(2, site=2, **kw, **{"Nom d'exercice": "LÉVÊQUE", "Prénom d'exercice": "Zoé"}),
    ]
    path = write_rpps(tmp_path / "rpps.txt", lines, encoding=encoding, newline=newline, **kw)
    report = await run_import(database_url, path)

    assert (report.persons.seen, report.persons.added, report.activities) == (2, 2, 3)
    assert report.structures.added == 2 and report.rejected == 0
    card = await service.get_person(session=db, national_id=national_id(2))
    assert (card.family_name, card.given_name) == ("LÉVÊQUE", "Zoé")
    assert card.sites[0].city == "NICE" and card.sites[0].department == "06"
    assert card.sites[0].specialty == "Médecine générale" and card.sites[0].mode == "Libéral"
    multi = await service.get_person(session=db, national_id=national_id(1))
    assert sorted(s.structure_id or "" for s in multi.sites) == ["finess:069990001", "finess:069990002"]
    # Accent- and case-insensitive prefix search on either name.
    found = await service.search_persons(session=db, text="leveque zo")
    assert [c.national_id for c in found] == [national_id(2)]


async def test_malformed_lines_are_reported_with_line_numbers(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    good = rpps_line(1)
    bad_nid = rpps_line(2).replace(national_id(2), national_id(2)[:-1] + "0")  # wrong Luhn key
    no_name = rpps_line(3, **{"Nom d'exercice": ""})
    extra_col = rpps_line(4) + "surplus|"
    path = write_rpps(tmp_path / "rpps.txt", [good, bad_nid, no_name, extra_col, rpps_line(5)])
    report = await run_import(database_url, path)

    assert report.persons.added == 2 and report.rejected == 3
    by_line = {r.line: r.reason for r in report.rejections}
    assert set(by_line) == {3, 4, 5}
    assert "clé de contrôle RPPS" in by_line[3]
    assert "Nom d'exercice" in by_line[4]
    assert "53 colonnes au lieu de 52" in by_line[5]
    assert all(r.file == str(path) for r in report.rejections)
    assert any(f"{path}:3:" in line for line in report.summary())


async def test_a_line_missing_its_trailing_pipe_is_still_read(database_url: str, tmp_path: Path) -> None:
    path = write_rpps(tmp_path / "rpps.txt", [rpps_line(1)[:-1], rpps_line(2)])
    report = await run_import(database_url, path)
    assert report.persons.added == 2 and report.rejected == 0


async def test_a_file_that_is_not_an_rpps_extract_is_refused_whole(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "autre.csv"
    path.write_text("nom;prenom\nMARTIN;Jeanne\n", encoding="utf-8")
    with pytest.raises(RppsFormatError, match="Identification nationale PP"):
        await run_import(database_url, path)


async def test_snapshot_deactivates_then_reactivates_and_reimport_changes_nothing(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    full = write_rpps(tmp_path / "j1.txt", [rpps_line(1, site=1), rpps_line(2, site=2)])
    first = await run_import(database_url, full)
    assert (first.persons.added, first.structures.added) == (2, 2)

    again = await run_import(database_url, full)
    assert (again.added, again.updated, again.deactivated, again.reactivated) == (0, 0, 0, 0)
    assert again.persons.unchanged == 2

    without_2 = write_rpps(tmp_path / "j2.txt", [rpps_line(1, site=1)])
    second = await run_import(database_url, without_2)
    assert (second.persons.deactivated, second.structures.deactivated) == (1, 1)
    rows = await persons(db)
    gone = rows[national_id(2)]
    assert not gone.active and gone.deactivated_at is not None  # kept, marked inactive
    assert rows[national_id(1)].active
    assert await service.search_persons(session=db, text="dupont2", active_only=True) == []

    third = await run_import(database_url, full)
    assert (third.persons.reactivated, third.structures.reactivated) == (1, 1)
    assert third.persons.added == 0 and third.persons.updated == 0
    back = (await persons(db))[national_id(2)]
    assert back.active and back.deactivated_at is None


async def test_a_changed_line_updates_the_person_and_replaces_their_sites(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    await run_import(database_url, write_rpps(tmp_path / "a.txt", [rpps_line(1, site=1)]))
    moved = write_rpps(
        tmp_path / "b.txt",
        [rpps_line(1, site=3, **{"Libellé commune (coord. structure)": "ANTIBES"})],
    )
    report = await run_import(database_url, moved)
    assert report.persons.updated == 1 and report.persons.added == 0
    card = await service.get_person(session=db, national_id=national_id(1))
    assert [(s.structure_id, s.city) for s in card.sites] == [("finess:069990003", "ANTIBES")]


class FailingStream(io.RawIOBase):
    """A file whose reads fail after ``limit`` bytes, like a disk error halfway through."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = data
        self._pos = 0
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        if self._pos >= self._limit:
            raise OSError(5, "Erreur d'entrée/sortie")
        chunk = self._data[self._pos : min(self._pos + len(buffer), self._limit)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


async def test_an_import_that_dies_halfway_leaves_the_directory_intact(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    await run_import(database_url, write_rpps(tmp_path / "a.txt", [rpps_line(1), rpps_line(2)]))
    before = {k: (p.active, p.family_name) for k, p in (await persons(db)).items()}

    # Snapshot with person 1 changed, person 2 gone and 3,000 new persons: the read fails on the way.
    lines = [rpps_line(1, **{"Nom d'exercice": "CHANGÉ"})] + [rpps_line(n) for n in range(10, 3010)]
    data = write_rpps(tmp_path / "b.txt", lines).read_bytes()
    stream = io.BufferedReader(FailingStream(data, limit=len(data) * 2 // 3))
    with pytest.raises(OSError, match="entrée/sortie"):
        await asyncio.to_thread(import_rpps_stream, database_url, stream, name="b.txt", size=len(data))

    after = {k: (p.active, p.family_name) for k, p in (await persons(db)).items()}
    assert after == before
    assert await db.scalar(select(func.count()).select_from(Activity)) == 2
    assert await db.scalar(select(func.count()).select_from(Structure)) == 1


async def test_a_line_at_another_site_of_its_structure_keeps_its_own_coordinates(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    # Same FINESS, different coordinates on the second line: the structure takes the first line's,
    # each professional's site shows their own line's. A line without any structure keeps its own too.
    lines = [
        rpps_line(1, site=4, **{"Libellé commune (coord. structure)": "NICE"}),
        rpps_line(2, site=4, **{"Libellé commune (coord. structure)": "ANTIBES"}),
        rpps_line(
            3,
            site=None,
            **{"Raison sociale site": "CABINET SANS N°", "Libellé commune (coord. structure)": "MENTON"},
        ),
    ]
    report = await run_import(database_url, write_rpps(tmp_path / "r.txt", lines))
    assert report.structures.added == 1
    structure = await service.get_structure(session=db, structure_id="finess:069990004")
    assert structure.city == "NICE"
    cities = {}
    for n in (1, 2, 3):
        card = await service.get_person(session=db, national_id=national_id(n))
        cities[n] = [(s.structure_id, s.city) for s in card.sites]
    assert cities == {
        1: [("finess:069990004", "NICE")],
        2: [("finess:069990004", "ANTIBES")],
        3: [(None, "MENTON")],
    }


async def test_fields_padded_with_spaces_are_trimmed(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    line = rpps_line(1, **{"Nom d'exercice": " DURAND ", "Libellé profession": "Médecin  "})
    padded = line.replace(national_id(1), f" {national_id(1)} ")
    report = await run_import(database_url, write_rpps(tmp_path / "r.txt", [padded]))
    assert report.persons.added == 1 and report.rejected == 0
    card = await service.get_person(session=db, national_id=national_id(1))
    assert (card.family_name, card.profession) == ("DURAND", "Médecin")


async def _active_count(db: AsyncSession) -> int:
    db.expire_all()
    return int(await db.scalar(select(func.count()).select_from(Person).where(Person.active)) or 0)


async def test_a_truncated_file_is_refused_instead_of_deactivating_everyone(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    full = write_rpps(tmp_path / "complet.txt", [rpps_line(n, site=n % 7 + 1) for n in range(1, 101)])
    await run_import(database_url, full)
    activities = await db.scalar(select(func.count()).select_from(Activity))

    # Cut after 40 persons: the 60 others would be deactivated (60 > 50 and 60 % > 5 %).
    truncated = write_rpps(tmp_path / "tronque.txt", [rpps_line(n, site=n % 7 + 1) for n in range(1, 41)])
    with pytest.raises(MassDeactivationError) as refused:
        await run_import(database_url, truncated)
    message = str(refused.value)
    assert str(truncated) in message
    assert "désactiverait 60 professionnels sur les 100 actifs" in message
    assert f"azurezo directory import-rpps {truncated} --allow-mass-deactivation" in message
    assert "--max-deactivation-ratio" in message and "Rien n'a été modifié" in message
    assert (refused.value.deactivating, refused.value.active) == (60, 100)
    # The previous directory is intact.
    assert await _active_count(db) == 100
    assert await db.scalar(select(func.count()).select_from(Activity)) == activities

    # A higher threshold lets it through (60 % <= 70 %), as does the explicit consent.
    report = await asyncio.to_thread(import_rpps, database_url, truncated, max_deactivation_ratio=0.7)
    assert report.persons.deactivated == 60
    assert await _active_count(db) == 40
    back = await run_import(database_url, full)
    assert back.persons.reactivated == 60
    forced = await asyncio.to_thread(import_rpps, database_url, truncated, allow_mass_deactivation=True)
    assert forced.persons.deactivated == 60


async def test_a_few_departures_pass_even_in_a_small_directory(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    await run_import(database_url, write_rpps(tmp_path / "a.txt", [rpps_line(n) for n in range(1, 101)]))
    # 30 % of the directory, but only 30 persons: under the absolute floor of 50.
    report = await run_import(
        database_url, write_rpps(tmp_path / "b.txt", [rpps_line(n) for n in range(1, 71)])
    )
    assert report.persons.deactivated == 30
    assert await _active_count(db) == 70


def test_the_threshold_must_be_a_proportion(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="entre 0 et 1"):
        import_rpps("sqlite+aiosqlite:///unused.db", tmp_path / "x.txt", max_deactivation_ratio=5)


async def _directory_view(database_url: str) -> tuple[list[object], list[object]]:
    """What the directory shows: every person's card (with sites) and every structure."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            ids = (await session.scalars(select(Person.national_id).order_by(Person.national_id))).all()
            cards = [await service.get_person(session=session, national_id=i) for i in ids]
            structures = await session.execute(
                select(Structure.structure_id, Structure.name, Structure.address, Structure.city,
                       Structure.active)
                .order_by(Structure.structure_id)
            )  # fmt: skip
            fingerprints = await session.execute(select(Person.fingerprint).order_by(Person.national_id))
            return [c.model_dump(exclude={"deactivated_at"}) for c in cards], [
                *map(tuple, structures),
                *map(tuple, fingerprints),
            ]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("bulk", [False, True], ids=["row-by-row", "bulk-load"])
@pytest.mark.parametrize("straddle", [False, True], ids=["split-between-persons", "person-split"])
async def test_a_file_read_by_two_processes_gives_the_same_directory(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    straddle: bool,
    bulk: bool,
) -> None:
    nice = {"Libellé commune (coord. structure)": "NICE"}
    antibes = {"Libellé commune (coord. structure)": "ANTIBES"}
    lines = [rpps_line(n, site=7 if n == 3 else n % 5 + 1, **nice) for n in range(1, 100)]
    # One person's 21 lines straddle the middle of the file: the second process starts after them,
    # or, when the split finds no person's first line near enough (``straddle``), among them.
    if straddle:
        monkeypatch.setattr(importer, "SPLIT_SEARCH_BYTES", 0)
    monkeypatch.setattr(importer, "FIRST_IMPORT_SHARE", importer.SHARE)  # the middle, whatever the database
    if bulk:
        # A bulk load (2M lines in real life): on PostgreSQL, the importing process writes its part of
        # the file into the directory while the helper still parses (PostgresStaging.merge_ahead).
        monkeypatch.setattr(store, "BULK_LOAD_MIN_LINES", 0)
    lines += [rpps_line(100, site=s) for s in range(1, 22)]
    # After the middle: structure 7 first seen with other coordinates than in the first half, a wrong
    # national id, a line in Latin-1 among UTF-8 ones.
    lines += [rpps_line(150, site=7, **antibes), rpps_line(151, site=7, **nice)]
    wrong_key = national_id(152)[:-1] + str((int(national_id(152)[-1]) + 1) % 10)
    lines.append(rpps_line(152).replace(national_id(152), wrong_key))
    lines += [rpps_line(n, site=n % 5 + 1) for n in range(153, 250)]
    path = write_rpps(tmp_path / "rpps.txt", lines)
    latin = rpps_line(250, **{"Nom d'exercice": "LÉVÊQUE"}).encode("latin-1")
    path.write_bytes(path.read_bytes() + latin + b"\n")

    one = await asyncio.to_thread(import_rpps, database_url, path, processes=1)
    (tmp_path / "two").mkdir()
    async with fresh_database_url(tmp_path / "two") as other_url:
        await create_schema(other_url)
        # temp_dir: on PostgreSQL the helper's file has no default place (the CLI gives <home>/tmp).
        temp = tmp_path / "tmp"
        with caplog.at_level(logging.INFO, logger=store.__name__):
            two = await asyncio.to_thread(import_rpps, other_url, path, processes=2, temp_dir=temp)
        # The person in both parts is found out and the persons are merged again (both databases).
        assert ("not contiguous" in caplog.text) == straddle
        assert await _directory_view(other_url) == await _directory_view(database_url)
        again = await asyncio.to_thread(import_rpps, other_url, path, processes=2, temp_dir=temp)
    assert (again.added, again.updated, again.deactivated) == (0, 0, 0)
    assert (two.lines, two.persons, two.structures, two.activities) == (
        one.lines, one.persons, one.structures, one.activities
    )  # fmt: skip
    assert [str(r) for r in two.rejections] == [str(r) for r in one.rejections]
    assert [r.line for r in one.rejections] == [124]
    assert two.persons.added == 200 and two.activities == 220


async def _directory_rows(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the directory tables, every column but the times."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = {}
            for table, model in (("persons", Person), ("structures", Structure), ("activities", Activity)):
                columns = [c for c in model.__table__.columns if c.name not in ("created_at", "updated_at")]
                result = await conn.execute(select(*columns).order_by(*model.__table__.primary_key))
                rows[table] = [tuple(r) for r in result]
            return rows
    finally:
        await engine.dispose()


async def test_the_helper_s_own_rows_give_the_rows_of_a_staged_part(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 6 item 18: PostgreSQL's first import takes the helper's part as the directory's own rows
    # (store.PartRowFiles); they must be those the merge derives from a staged part, row for row, and
    # show what one process shows. The second half holds what those rows must get right: a structure
    # first seen in the first half with other coordinates (its helper's lines at the site the helper
    # saw first, at the first half's site, at a site with no field an activity shows), a site seen
    # again later (from the parser's cache), fields padded with spaces, no first name, no structure.
    nice = {"Libellé commune (coord. structure)": "NICE"}
    antibes = {"Libellé commune (coord. structure)": "ANTIBES"}
    bare = {
        "Raison sociale site": "", "Code postal (coord. structure)": "",
        "Libellé commune (coord. structure)": "", "Téléphone (coord. structure)": "",
        "Code Département (structure)": "",
    }  # fmt: skip
    lines = [rpps_line(n, site=7 if n == 3 else n % 5 + 1, **nice) for n in range(1, 60)]
    lines += [
        rpps_line(100, site=7, **antibes),
        rpps_line(101, site=7, **nice),
        rpps_line(102, site=7, **bare),
        rpps_line(103, site=7, **antibes),
        rpps_line(104, site=8, **nice),
        rpps_line(105, site=8, **antibes),
        rpps_line(106, site=8, **bare),
        rpps_line(107, site=8, **antibes),
        rpps_line(108, **{"Nom d'exercice": " DURAND ", "Libellé profession": "Médecin  ",
                          "Prénom d'exercice": "", "Libellé savoir-faire": " Pédiatrie "}),
        rpps_line(109, site=None, **{"Raison sociale site": "CABINET SANS N°"}),
    ]  # fmt: skip
    lines += [rpps_line(n, site=n % 5 + 1, **antibes) for n in range(110, 170)]
    path = write_rpps(tmp_path / "rpps.txt", lines)
    monkeypatch.setattr(importer, "FIRST_IMPORT_SHARE", importer.SHARE)  # the middle: line 60
    one = await asyncio.to_thread(import_rpps, database_url, path, processes=1)
    temp = tmp_path / "tmp"
    views = []
    for kind in ("rows", "copy"):
        if kind == "copy":  # the helper stages its part, merged as for a directory with rows
            monkeypatch.setattr(importer, "pg_directory_is_empty", _never_empty)
        (tmp_path / kind).mkdir()
        async with fresh_database_url(tmp_path / kind) as url:
            await create_schema(url)
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=store.__name__):
                two = await asyncio.to_thread(import_rpps, url, path, processes=2, temp_dir=temp)
            assert ("helper's rows" in caplog.text) == (kind == "rows" and "postgresql" in url)
            assert (two.persons, two.structures, two.activities) == (
                one.persons, one.structures, one.activities
            )  # fmt: skip
            assert await _directory_view(url) == await _directory_view(database_url)
            views.append(await _directory_rows(url))
    assert views[0] == views[1]
    activities = {a[1]: a for a in views[0]["activities"] if a[1] in {national_id(n) for n in (100, 102)}}
    assert activities[national_id(100)][10:13] == ("06000", "ANTIBES", "06")  # postal code, city, dep.
    assert activities[national_id(102)][8:15] == (None,) * 7  # the bare site shows nothing


async def _never_empty(database_url: str) -> bool:
    return False


def test_the_second_process_starts_at_a_person_s_first_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 6 item 18: a person's lines go to one process, which hands the person whole to the merge.
    lines = [rpps_line(n) for n in range(1, 40)] + [rpps_line(40, site=s) for s in range(1, 60)]
    lines += [rpps_line(n) for n in range(41, 45)]
    path = write_rpps(tmp_path / "rpps.txt", lines)
    data = path.read_bytes()
    middle = data.index(b"\n", len(data) // 2) + 1
    assert data[middle:].split(b"|")[2] == national_id(40).encode()  # the middle is in person 40
    offset = importer._split_point(path, len(data))
    assert offset is not None and data[offset:].startswith(rpps_line(41).encode())
    # Too far: the first line after the middle (the merge then sums the person's two halves).
    monkeypatch.setattr(importer, "SPLIT_SEARCH_BYTES", 100)
    assert importer._split_point(path, len(data)) == middle


@pytest.mark.parametrize("bulk", [False, True], ids=["row-by-row", "bulk-load"])
async def test_a_person_whose_lines_are_apart_is_still_one_person(
    database_url: str,
    db: AsyncSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    bulk: bool,
) -> None:
    # Issue 6 item 18: PostgreSQL's first import takes each person from the first line of their run of
    # lines (extracts list a person's lines together). A file where they are apart must give the same
    # person: the fields of their first line, every activity, a fingerprint of all their lines.
    lines = [rpps_line(1, site=1), rpps_line(2, site=2), rpps_line(1, site=3, **{"Nom d'exercice": "AUTRE"})]
    lines += [rpps_line(3, site=4), rpps_line(1, site=5)]
    path = write_rpps(tmp_path / "rpps.txt", lines)
    if bulk:
        monkeypatch.setattr(store, "BULK_LOAD_MIN_LINES", 0)  # 2M lines in real life
    with caplog.at_level(logging.INFO, logger=store.__name__):
        first = await run_import(database_url, path)
    assert (first.persons.added, first.activities) == (3, 5)
    if database_url.startswith("postgresql"):
        assert "not contiguous" in caplog.text
    person = (await persons(db))[national_id(1)]
    assert person.family_name == "DUPONT1"
    activities = (
        await db.scalars(select(Activity).where(Activity.national_id == national_id(1)).order_by(Activity.id))
    ).all()
    assert [a.structure_id for a in activities] == [f"finess:06999{s:04d}" for s in (1, 3, 5)]
    # The activities' ids follow the file; new ones come after them.
    db.add(Activity(national_id=national_id(2), source="rpps"))
    await db.commit()
    assert max(await db.scalars(select(Activity.id))) > max(a.id for a in activities)
    await db.execute(delete(Activity).where(Activity.structure_id.is_(None)))
    await db.commit()
    # The fingerprint is that of all three lines: the same file again changes nobody.
    again = await run_import(database_url, path)
    assert again.persons.seen == again.persons.unchanged == 3


async def test_backslashes_and_carriage_returns_in_the_second_half_are_kept_as_they_are(
    database_url: str, tmp_path: Path
) -> None:
    # Issue 6 item 18: on PostgreSQL the helper writes its half as COPY text files, where a backslash
    # or a carriage return in a field would otherwise be read as an escape or end the row.
    lines = [rpps_line(n, site=n % 3 + 1) for n in range(1, 40)]
    odd = {
        "Nom d'exercice": "O\\BRIEN\\N",
        "Prénom d'exercice": "JEAN\rMARIE",
        "Raison sociale site": "CABINET \\ DES PINS",
        "Libellé Voie (coord. structure)": "RUE\\tDU PORT",
    }
    lines += [rpps_line(n, site=n, **odd) for n in range(40, 60)]
    path = write_rpps(tmp_path / "rpps.txt", lines)

    one = await asyncio.to_thread(import_rpps, database_url, path, processes=1)
    (tmp_path / "two").mkdir()
    async with fresh_database_url(tmp_path / "two") as other_url:
        await create_schema(other_url)
        two = await asyncio.to_thread(import_rpps, other_url, path, processes=2, temp_dir=tmp_path / "tmp")
        view = await _directory_view(other_url)
        assert view == await _directory_view(database_url)
    assert two.persons.added == one.persons.added == 59
    cards, _ = view
    names = {c["family_name"] for c in cards}
    assert "O\\BRIEN\\N" in names
    assert any(c["given_name"] == "JEAN\rMARIE" for c in cards)


@pytest.mark.parametrize("active", [0, 3, 100])
async def test_a_file_with_no_valid_line_is_refused_whatever_the_directory_size(
    database_url: str, db: AsyncSession, tmp_path: Path, active: int
) -> None:
    # Issue 6 item 9: a header-only file used to exit 0 and deactivate everyone (the guard needed
    # "more than 50"). Same for a file whose every line is malformed.
    if active:
        await run_import(database_url, write_rpps(tmp_path / "a.txt", [rpps_line(n) for n in range(active)]))
    header_only = write_rpps(tmp_path / "entete.txt", [])
    all_bad = write_rpps(tmp_path / "rejets.txt", ["x|y|", rpps_line(1, **{"Nom d'exercice": ""})])
    for path in (header_only, all_bad):
        with pytest.raises(MassDeactivationError) as refused:
            await run_import(database_url, path)
        message = str(refused.value)
        assert f"{path} : aucune ligne valide" in message
        assert f"azurezo directory import-rpps {path} --allow-mass-deactivation" in message
        assert await _active_count(db) == active  # nothing changed
    forced = await asyncio.to_thread(import_rpps, database_url, header_only, allow_mass_deactivation=True)
    assert forced.persons.deactivated == active
    assert await _active_count(db) == 0


async def test_an_import_that_would_deactivate_everyone_is_refused_in_a_small_directory(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    # Three persons, none of them in the new file: under the floor of 50, but it is everyone.
    await run_import(database_url, write_rpps(tmp_path / "a.txt", [rpps_line(n) for n in range(1, 4)]))
    others = write_rpps(tmp_path / "b.txt", [rpps_line(n) for n in range(10, 12)])
    with pytest.raises(MassDeactivationError) as refused:
        await run_import(database_url, others)
    assert "désactiverait les 3 professionnels actifs" in str(refused.value)
    assert await _active_count(db) == 3
    # One of them still listed: a normal departure of two, under the floor, passes.
    report = await run_import(
        database_url, write_rpps(tmp_path / "c.txt", [rpps_line(1), *(rpps_line(n) for n in (10, 11))])
    )
    assert report.persons.deactivated == 2


async def test_temporary_files_stay_in_the_home_and_a_dead_import_s_are_swept(
    database_url: str, tmp_path: Path
) -> None:
    # Issue 6 item 13: a killed import left /tmp/azurezo-rpps-*/part.db forever.
    temp_dir = tmp_path / "home" / "tmp"
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    stale = temp_dir / f"azurezo-rpps-{dead.pid}-x1"
    stale.mkdir(parents=True)
    (stale / "part.db").write_bytes(b"\0" * 1024)
    # A directory whose process lives and holds its lock (an import running now) is kept.
    with import_temp_dir(temp_dir) as running:
        path = write_rpps(tmp_path / "r.txt", [rpps_line(n, site=n % 3 + 1) for n in range(1, 60)])
        report = await asyncio.to_thread(import_rpps, database_url, path, processes=2, temp_dir=temp_dir)
        assert report.persons.added == 59
        assert sorted(p.name for p in temp_dir.iterdir()) == [running.name]
    assert list(temp_dir.iterdir()) == []


def test_the_sweep_removes_a_directory_nobody_locks_even_under_a_live_process_number(tmp_path: Path) -> None:
    # After a reboot the number of the dead import may be a live process's: the lock tells.
    reused = tmp_path / f"azurezo-rpps-{os.getpid()}-x2"
    reused.mkdir()
    (reused / ".lock").touch()
    (tmp_path / "autre").mkdir()  # not ours: never touched
    assert sweep_stale_import_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["autre"]
    assert sweep_stale_import_files(tmp_path / "absent") == 0


@pytest.mark.parametrize("full_in", ["importer", "helper"])
async def test_a_full_structure_table_gives_the_same_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full_in: str
) -> None:
    # Issue 6 item 18: the parser's table of structures is bounded (ror_sync.rpps.STRUCTURE_SLOTS, so
    # that an extract of one structure per line does not grow it); once it is full, the lines of
    # structures not seen yet carry their site: the directory must be the same as with room to spare.
    # "helper": only the helper process (the second part of the file) runs out of room, after the
    # importing process has written its part (PostgreSQL's first import, PostgresStaging.merge_ahead).
    antibes = {"Libellé commune (coord. structure)": "ANTIBES"}
    lines = [rpps_line(n, site=n % 30 + 1, **(antibes if n % 7 == 0 else {})) for n in range(1, 150)]
    path = write_rpps(tmp_path / "rpps.txt", lines)
    roomy = await asyncio.to_thread(import_rpps, database_url, path, processes=1)
    if full_in == "importer":
        monkeypatch.setattr(rpps, "STRUCTURE_SLOTS", 8)  # room for 6 structures out of 30
        options: dict[str, object] = {"processes": 1}
    else:
        monkeypatch.setattr(importer, "stage_part", stage_part_with_a_small_structure_table)
        monkeypatch.setattr(store, "BULK_LOAD_MIN_LINES", 0)
        options = {"processes": 2, "temp_dir": tmp_path / "tmp"}
    (tmp_path / "full").mkdir()
    async with fresh_database_url(tmp_path / "full") as other_url:
        await create_schema(other_url)
        full = await asyncio.to_thread(import_rpps, other_url, path, **options)
        assert await _directory_view(other_url) == await _directory_view(database_url)
    assert (full.persons, full.structures, full.activities) == (
        roomy.persons, roomy.structures, roomy.activities
    )  # fmt: skip
    assert full.structures.added == 30


_DIRECTORY_TABLES = ("directory_persons", "directory_structures", "directory_activities")


def _constraints(sync_conn: Connection) -> dict[str, object]:
    inspector = inspect(sync_conn)
    keys: dict[str, object] = {
        table: (
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            inspector.get_pk_constraint(table),
        )
        for table in _DIRECTORY_TABLES
    }
    # Every foreign key of the schema that involves the directory: the activities' own, and those of the
    # accounts, sign-up and DAC tables that reference a directory table's primary key.
    for table in inspector.get_table_names():
        keys[f"fk {table}"] = sorted(
            (k["name"], tuple(k["constrained_columns"]), k["referred_table"], str(k["options"]))
            for k in inspector.get_foreign_keys(table)
            if table in _DIRECTORY_TABLES or k["referred_table"] in _DIRECTORY_TABLES
        )
    return keys


async def test_a_bulk_load_puts_back_every_index_and_foreign_key(
    database_url: str, db: AsyncSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 6 item 18: a first import drops the directory's secondary indexes (and, on PostgreSQL, the
    # activities' foreign key instead of a trigger call per row, the primary keys of the tables it
    # fills from empty with the foreign keys that reference them) and builds them again at the end.
    # Their rows then go in in no particular order: the directory is the one a row-by-row load gives.
    path = write_rpps(
        tmp_path / "a.txt",
        [rpps_line(n, **{"Identifiant technique de la structure": f"S{n % 7}"}) for n in range(1, 30)]
        + [rpps_line(n, **{"Identifiant technique de la structure": f"T{n}"}) for n in range(40, 1, -3)],
    )
    (tmp_path / "rows").mkdir()
    async with fresh_database_url(tmp_path / "rows") as row_by_row_url:
        await create_schema(row_by_row_url)
        await run_import(row_by_row_url, path)  # below BULK_LOAD_MIN_LINES: no key dropped
        expected = await _directory_view(row_by_row_url)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            before = await conn.run_sync(_constraints)
        monkeypatch.setattr(store, "BULK_LOAD_MIN_LINES", 0)  # 2M lines in real life
        await run_import(database_url, path)
        async with engine.connect() as conn:
            assert await conn.run_sync(_constraints) == before
    finally:
        await engine.dispose()
    assert await _directory_view(database_url) == expected
    # Re-importing the same file over it finds nothing to change (same keys, same fingerprints).
    again = await run_import(database_url, path)
    assert again.persons.seen == again.persons.unchanged > 0
    assert again.structures.seen == again.structures.unchanged > 0
    assert await _directory_view(database_url) == expected
    # The foreign key is the one it was, cascade included.
    nid = national_id(3)
    await db.execute(delete(Person).where(Person.national_id == nid))
    await db.commit()
    left = await db.scalar(select(func.count()).select_from(Activity).where(Activity.national_id == nid))
    assert left == 0
