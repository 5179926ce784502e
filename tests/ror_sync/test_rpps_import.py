"""RPPS extract import: layouts, encodings, malformed lines, snapshot semantics, atomicity."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.directory import service
from coordination.directory.models import Activity, Person, Structure
from ror_sync.importer import import_rpps, import_rpps_stream
from ror_sync.rpps import NEW_HEADERS, RppsFormatError
from tests.ror_sync.helpers import national_id, rpps_line, write_rpps


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
