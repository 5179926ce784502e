"""Import drivers: read a source, stage it, merge it into the directory, report.

Both entry points are **synchronous** (they run their own event loop on PostgreSQL): call them from a CLI
or a thread (``await asyncio.to_thread(import_rpps, ...)`` from async code). ``database_url`` is the
service's async SQLAlchemy URL (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``); the schema
must exist.

- A **full** import (RPPS always; FHIR without ``since``) is a snapshot of its source: rows of that source
  absent from it are deactivated (kept, ``deactivated_at`` set) and reactivated if they come back.
- A **delta** (FHIR with ``since``) only adds and updates.
- Malformed lines are counted and reported with file, line and reason; they never stop the import.
- Anything that stops the import (unreadable file, lost database) leaves the directory as it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.engine import make_url

from coordination.directory.store import MergeResult, PostgresStaging, Source, SqliteStaging
from ror_sync.fhir import FhirSnapshot, read_fhir_sources
from ror_sync.report import ImportReport, Rejections
from ror_sync.rpps import parse_rpps

logger = logging.getLogger(__name__)

Batches = Iterator[list[tuple[Any, ...]]]


def _backend(database_url: str) -> str:
    name = make_url(database_url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(
            f"Base de données non prise en charge ({name}) : utilisez sqlite+aiosqlite:///... "
            "ou postgresql+asyncpg://..."
        )
    return name


class _Progress:
    """A byte-based progress bar on a terminal; nothing at all when stderr is not a TTY."""

    def __init__(self, enabled: bool, *, label: str, total: int | None) -> None:
        console = Console(stderr=True)
        self._bar: Progress | None = None
        self._console = console
        self.enabled = enabled and console.is_terminal
        if self.enabled:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance_to(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done)

    def phase(self, message: str) -> AbstractContextManager[Any]:
        if self.enabled:
            return self._console.status(message)
        return nullcontext()


def _merge_sqlite(
    database_url: str,
    batches: Batches,
    structs: list[tuple[Any, ...]],
    *,
    source: Source,
    full: bool,
    derive_structures: bool,
    progress: _Progress,
) -> MergeResult:
    staging = SqliteStaging(database_url)
    try:
        for batch in batches:
            staging.add_lines(batch)
        if structs:
            staging.add_structs(structs)
        with progress.phase("Fusion dans l'annuaire…"):
            return staging.merge(source=source, full=full, derive_structures=derive_structures)
    finally:
        staging.close()


async def _merge_postgres(
    database_url: str,
    batches: Batches,
    structs: list[tuple[Any, ...]],
    *,
    source: Source,
    full: bool,
    derive_structures: bool,
    progress: _Progress,
) -> MergeResult:
    staging = await PostgresStaging.connect(database_url)
    try:
        for batch in batches:
            await staging.add_lines(batch)
        if structs:
            await staging.add_structs(structs)
        with progress.phase("Fusion dans l'annuaire…"):
            return await staging.merge(source=source, full=full, derive_structures=derive_structures)
    finally:
        await staging.close()


def _run(
    database_url: str,
    batches: Batches,
    structs: list[tuple[Any, ...]],
    *,
    source: Source,
    full: bool,
    derive_structures: bool,
    progress: _Progress,
) -> MergeResult:
    kwargs: dict[str, Any] = {
        "source": source,
        "full": full,
        "derive_structures": derive_structures,
        "progress": progress,
    }
    if _backend(database_url) == "sqlite":
        return _merge_sqlite(database_url, batches, structs, **kwargs)
    return asyncio.run(_merge_postgres(database_url, batches, structs, **kwargs))


def _fill(report: ImportReport, result: MergeResult, rejections: Rejections, started: float) -> None:
    report.persons = result.persons
    report.structures = result.structures
    report.activities = result.activities
    report.rejected = rejections.total
    report.rejections = list(rejections.kept)
    report.seconds = time.monotonic() - started


def import_rpps_stream(
    database_url: str,
    stream: IO[bytes],
    *,
    name: str,
    size: int | None = None,
    progress: bool = False,
) -> ImportReport:
    """Import an RPPS extract read from a binary stream (see :func:`import_rpps`)."""
    started = time.monotonic()
    rejections = Rejections()
    report = ImportReport(source="rpps", full=True, sources=[name])
    with _Progress(progress, label=f"Lecture {Path(name).name}", total=size) as bar:
        lines_seen = [0]

        def counted() -> Batches:
            for batch in parse_rpps(stream, file=name, rejections=rejections, on_batch=bar.advance_to):
                lines_seen[0] += len(batch)
                yield batch

        result = _run(
            database_url,
            counted(),
            [],
            source="rpps",
            full=True,
            derive_structures=True,
            progress=bar,
        )
    report.lines = lines_seen[0] + rejections.total
    _fill(report, result, rejections, started)
    logger.info(
        "rpps import: %d persons (+%d ~%d -%d), %d rejected",
        report.persons.seen,
        report.persons.added,
        report.persons.updated,
        report.persons.deactivated,
        report.rejected,
    )
    return report


def import_rpps(database_url: str, path: Path, *, progress: bool = False) -> ImportReport:
    """Import an RPPS ``PS_LibreAcces_Personne_activite`` extract as a full snapshot of the RPPS.

    Raises ``FileNotFoundError``/``OSError`` for an unreadable file and
    :class:`ror_sync.rpps.RppsFormatError` for a file whose header is not an RPPS header; in both cases
    the directory is left untouched.
    """
    path = Path(path)
    with path.open("rb") as stream:
        return import_rpps_stream(
            database_url,
            stream,
            name=str(path),
            size=os.fstat(stream.fileno()).st_size,
            progress=progress,
        )


def import_fhir(
    database_url: str,
    sources: list[str],
    *,
    since: datetime | None = None,
    progress: bool = False,
    fetch: Callable[[str], Any] | None = None,
) -> ImportReport:
    """Import FHIR R4 searchset Bundles (files, or FHIR base / search URLs) from the ROR or Annuaire Santé.

    Without ``since`` the import is a full snapshot of the FHIR source; with ``since`` it is a delta
    (``_lastUpdated=ge<since>`` on every search) and deactivates nothing. ``fetch`` replaces the HTTP GET
    (tests use a real local server instead; it exists for callers that need their own client).
    """
    started = time.monotonic()
    rejections = Rejections()
    full = since is None
    report = ImportReport(source="fhir", full=full, sources=list(sources))
    with _Progress(progress, label="Lecture FHIR", total=None) as bar:
        snapshot: FhirSnapshot = read_fhir_sources(
            sources, since=since, rejections=rejections, on_resource=bar.advance_to, fetch=fetch
        )
        lines, structs = snapshot.staging_rows(rejections)
        result = _run(
            database_url,
            iter([lines]) if lines else iter(()),
            structs,
            source="fhir",
            full=full,
            derive_structures=False,
            progress=bar,
        )
    for line_no, ref in result.unresolved:
        where = snapshot.where(line_no)
        rejections.add(
            where[0],
            where[1],
            f"PractitionerRole : praticien « {ref} » introuvable (ni dans l'import, ni dans l'annuaire)",
        )
    report.lines = snapshot.resource_count
    _fill(report, result, rejections, started)
    return report
