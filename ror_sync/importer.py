"""Import drivers: read a source, stage it, merge it into the directory, report.

Both entry points are **synchronous** (they run their own event loop on PostgreSQL): call them from a CLI
or a thread (``await asyncio.to_thread(import_rpps, ...)`` from async code). ``database_url`` is the
service's async SQLAlchemy URL (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``); the schema
must exist.

- A **full** import (RPPS always; FHIR without ``since``) is a snapshot of its source: rows of that source
  absent from it are deactivated (kept, ``deactivated_at`` set) and reactivated if they come back.
- A **delta** (FHIR with ``since``) only adds and updates.
- Malformed lines are counted and reported with file, line and reason; they never stop the import.
- A full import that would deactivate a large part of its source's active persons (a truncated or wrong
  file) is refused, :class:`MassDeactivationError`, unless the operator allows it.
- Anything that stops the import (unreadable file, lost database) leaves the directory as it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
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

from coordination.directory.rules import MASS_DEACTIVATION_RATIO
from coordination.directory.store import (
    FHIR_FORMAT,
    RPPS_FORMAT,
    DeactivationGuard,
    MassDeactivationRefused,
    MergeResult,
    PostgresStaging,
    Source,
    SqliteStaging,
    StagingFormat,
)
from ror_sync.fhir import FhirSnapshot, read_fhir_sources
from ror_sync.report import ImportReport, Rejections
from ror_sync.rpps import parse_rpps

logger = logging.getLogger(__name__)

Rows = Sequence[tuple[Any, ...]]
# (lines, sites, structures) in the source's StagingFormat.
Batches = Iterator[tuple[Rows, Rows, Rows]]


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


class MassDeactivationError(Exception):
    """A full import refused because it would deactivate too many persons; nothing was written.

    ``str()`` is the operator's French message: the file, the count and how to force it."""

    def __init__(self, message: str, *, deactivating: int, active: int) -> None:
        super().__init__(message)
        self.deactivating = deactivating
        self.active = active


def _refusal(exc: MassDeactivationRefused, *, files: list[str], command: str) -> MassDeactivationError:
    share = exc.deactivating / exc.active if exc.active else 1.0
    named = " ".join(files)
    message = (
        f"{named} : cet import désactiverait {exc.deactivating} professionnels sur les {exc.active} "
        f"actifs issus de la source {exc.source.upper()} ({share:.1%}, au-delà du seuil de "
        f"{exc.guard.max_ratio:.1%}). Un professionnel désactivé perd son accès à la messagerie dans la "
        "minute : le fichier est peut-être tronqué ou n'est pas le bon. Rien n'a été modifié ; "
        "l'annuaire précédent est intact. Vérifiez le fichier ; si ces départs sont attendus, relancez "
        f"avec « azurezo directory {command} {named} --allow-mass-deactivation » (ou relevez le seuil "
        "avec --max-deactivation-ratio)."
    )
    return MassDeactivationError(message, deactivating=exc.deactivating, active=exc.active)


@dataclass(frozen=True, slots=True)
class _Plan:
    source: Source
    full: bool
    derive_structures: bool
    staging_format: StagingFormat
    guard: DeactivationGuard | None


def _merge_sqlite(database_url: str, batches: Batches, plan: _Plan, progress: _Progress) -> MergeResult:
    staging = SqliteStaging(database_url, staging_format=plan.staging_format)
    try:
        for lines, sites, structs in batches:
            staging.add(lines, sites, structs)
        with progress.phase("Fusion dans l'annuaire…"):
            return staging.merge(
                source=plan.source,
                full=plan.full,
                derive_structures=plan.derive_structures,
                guard=plan.guard,
            )
    finally:
        staging.close()


async def _merge_postgres(
    database_url: str, batches: Batches, plan: _Plan, progress: _Progress
) -> MergeResult:
    staging = await PostgresStaging.connect(database_url, staging_format=plan.staging_format)
    try:
        for lines, sites, structs in batches:
            await staging.add(lines, sites, structs)
        with progress.phase("Fusion dans l'annuaire…"):
            return await staging.merge(
                source=plan.source,
                full=plan.full,
                derive_structures=plan.derive_structures,
                guard=plan.guard,
            )
    finally:
        await staging.close()


def _run(database_url: str, batches: Batches, plan: _Plan, progress: _Progress) -> MergeResult:
    if _backend(database_url) == "sqlite":
        return _merge_sqlite(database_url, batches, plan, progress)
    return asyncio.run(_merge_postgres(database_url, batches, plan, progress))


def _guard(allow_mass_deactivation: bool, max_deactivation_ratio: float) -> DeactivationGuard | None:
    if not 0.0 <= max_deactivation_ratio <= 1.0:
        raise ValueError(
            f"--max-deactivation-ratio {max_deactivation_ratio} : attendu une proportion entre 0 et 1 "
            "(0.05 = 5 %)."
        )
    return None if allow_mass_deactivation else DeactivationGuard(max_ratio=max_deactivation_ratio)


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
    allow_mass_deactivation: bool = False,
    max_deactivation_ratio: float = MASS_DEACTIVATION_RATIO,
) -> ImportReport:
    """Import an RPPS extract read from a binary stream (see :func:`import_rpps`)."""
    started = time.monotonic()
    guard = _guard(allow_mass_deactivation, max_deactivation_ratio)
    rejections = Rejections()
    report = ImportReport(source="rpps", full=True, sources=[name])
    plan = _Plan("rpps", True, True, RPPS_FORMAT, guard)
    with _Progress(progress, label=f"Lecture {Path(name).name}", total=size) as bar:
        lines_seen = [0]

        def batches() -> Batches:
            for lines, sites in parse_rpps(stream, file=name, rejections=rejections, on_batch=bar.advance_to):
                lines_seen[0] += len(lines)
                yield lines, sites, ()

        try:
            result = _run(database_url, batches(), plan, bar)
        except MassDeactivationRefused as exc:
            raise _refusal(exc, files=[name], command="import-rpps") from exc
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


def import_rpps(
    database_url: str,
    path: Path,
    *,
    progress: bool = False,
    allow_mass_deactivation: bool = False,
    max_deactivation_ratio: float = MASS_DEACTIVATION_RATIO,
) -> ImportReport:
    """Import an RPPS ``PS_LibreAcces_Personne_activite`` extract as a full snapshot of the RPPS.

    Raises ``FileNotFoundError``/``OSError`` for an unreadable file,
    :class:`ror_sync.rpps.RppsFormatError` for a file whose header is not an RPPS header, and
    :class:`MassDeactivationError` when the snapshot would deactivate more than
    ``max_deactivation_ratio`` of the RPPS's active persons (and more than
    ``coordination.directory.rules.MASS_DEACTIVATION_FLOOR``) without ``allow_mass_deactivation``;
    in every case the directory is left untouched.
    """
    path = Path(path)
    with path.open("rb") as stream:
        return import_rpps_stream(
            database_url,
            stream,
            name=str(path),
            size=os.fstat(stream.fileno()).st_size,
            progress=progress,
            allow_mass_deactivation=allow_mass_deactivation,
            max_deactivation_ratio=max_deactivation_ratio,
        )


def import_fhir(
    database_url: str,
    sources: list[str],
    *,
    since: datetime | None = None,
    progress: bool = False,
    fetch: Callable[[str], Any] | None = None,
    allow_mass_deactivation: bool = False,
    max_deactivation_ratio: float = MASS_DEACTIVATION_RATIO,
) -> ImportReport:
    """Import FHIR R4 searchset Bundles (files, or FHIR base / search URLs) from the ROR or Annuaire Santé.

    Without ``since`` the import is a full snapshot of the FHIR source; with ``since`` it is a delta
    (``_lastUpdated=ge<since>`` on every search) and deactivates nothing. ``fetch`` replaces the HTTP GET
    (tests use a real local server instead; it exists for callers that need their own client).
    A full snapshot is refused like an RPPS one (:class:`MassDeactivationError`, see :func:`import_rpps`).
    """
    started = time.monotonic()
    guard = _guard(allow_mass_deactivation, max_deactivation_ratio)
    rejections = Rejections()
    full = since is None
    report = ImportReport(source="fhir", full=full, sources=list(sources))
    plan = _Plan("fhir", full, False, FHIR_FORMAT, guard)
    with _Progress(progress, label="Lecture FHIR", total=None) as bar:
        snapshot: FhirSnapshot = read_fhir_sources(
            sources, since=since, rejections=rejections, on_resource=bar.advance_to, fetch=fetch
        )
        rows = snapshot.staging_rows(rejections)
        try:
            result = _run(database_url, iter([rows]), plan, bar)
        except MassDeactivationRefused as exc:
            raise _refusal(exc, files=list(sources), command="import-fhir") from exc
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
