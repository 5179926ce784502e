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
- A large RPPS file is parsed by two processes, one per half (:func:`ror_sync.part.stage_part`, in a
  ``ProcessPoolExecutor`` worker, stages the second half in files of its own, taken in before the
  merge: a SQLite file attached on SQLite, ``COPY`` text files the server reads on PostgreSQL):
  parsing is most of the time.
  Temporary files stay under the instance's home (:mod:`ror_sync.workdir`), and what a killed import
  left there is swept by the next one.
- Anything that stops the import (unreadable file, lost database) leaves the directory as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
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
    pg_directory_is_empty,
    sqlite_path,
)
from ror_sync.fhir import FhirSnapshot, read_fhir_sources
from ror_sync.part import PartKind, PartResult, stage_part
from ror_sync.report import ImportReport, Rejections
from ror_sync.rpps import ParsePosition, RppsFormatError, parse_rpps, read_header, read_layout
from ror_sync.workdir import import_temp_dir, sweep_stale_import_files

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
    named = " ".join(files)
    source = exc.source.upper()
    if exc.reason == "empty":
        what = (
            f"{named} : aucune ligne valide (fichier réduit à son en-tête, ou toutes ses lignes "
            f"rejetées) : cet import complet désactiverait tous les professionnels actifs issus de la "
            f"source {source} ({exc.active})."
        )
    elif exc.reason == "everyone":
        what = (
            f"{named} : cet import désactiverait les {exc.active} professionnels actifs issus de la "
            f"source {source} : tous, aucun d'eux n'est dans le fichier."
        )
    else:
        share = exc.deactivating / exc.active if exc.active else 1.0
        what = (
            f"{named} : cet import désactiverait {exc.deactivating} professionnels sur les {exc.active} "
            f"actifs issus de la source {source} ({share:.1%}, au-delà du seuil de "
            f"{exc.guard.max_ratio:.1%})."
        )
    message = (
        f"{what} Un professionnel désactivé perd son accès à la messagerie dans la minute : le fichier "
        "est peut-être tronqué ou n'est pas le bon. Rien n'a été modifié ; l'annuaire précédent est "
        "intact. Vérifiez le fichier ; si ces départs sont attendus, relancez avec "
        f"« azurezo directory {command} {named} --allow-mass-deactivation »"
        + (" (ou relevez le seuil avec --max-deactivation-ratio)." if exc.reason == "share" else ".")
    )
    return MassDeactivationError(message, deactivating=exc.deactivating, active=exc.active)


@dataclass(frozen=True, slots=True)
class _Plan:
    source: Source
    full: bool
    derive_structures: bool
    staging_format: StagingFormat
    guard: DeactivationGuard | None


def _merge_sqlite(
    database_url: str,
    batches: Batches,
    plan: _Plan,
    progress: _Progress,
    second_half: _SecondHalf | None = None,
) -> MergeResult:
    staging = SqliteStaging(database_url, staging_format=plan.staging_format)
    try:
        for lines, sites, structs in batches:
            staging.add(lines, sites, structs)
        if second_half is not None:
            with progress.phase("Lecture de la seconde moitié du fichier…"):
                second_half.take_into(staging)
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
    database_url: str,
    batches: Batches,
    plan: _Plan,
    progress: _Progress,
    second_half: _SecondHalf | None = None,
) -> MergeResult:
    staging = await PostgresStaging.connect(database_url, staging_format=plan.staging_format)
    try:
        for lines, sites, structs in batches:
            await staging.add(lines, sites, structs)
        if second_half is not None:
            rows = second_half.kind == "rows"
            with progress.phase("Écriture de la première partie pendant la lecture de la seconde…"):
                ahead = await staging.merge_ahead(
                    source=plan.source,
                    derive_structures=plan.derive_structures,
                    upto=second_half.offset,
                    now=second_half.now,
                    any_size=rows,
                )
            if rows:
                with progress.phase("Écriture de la seconde partie…"):
                    written = await second_half.write_rows(staging) if ahead else None
                if written is not None:
                    return written
                # Its rows cannot be used as they are (see _SecondHalf.write_rows): the part is
                # parsed again into staging files, merged as for any import.
                second_half.restage()
            with progress.phase("Lecture de la seconde partie du fichier…"):
                await second_half.take_into_postgres(staging)
        with progress.phase("Fusion dans l'annuaire…"):
            return await staging.merge(
                source=plan.source,
                full=plan.full,
                derive_structures=plan.derive_structures,
                guard=plan.guard,
            )
    finally:
        await staging.close()


def _run(
    database_url: str,
    batches: Batches,
    plan: _Plan,
    progress: _Progress,
    second_half: _SecondHalf | None = None,
) -> MergeResult:
    if _backend(database_url) == "sqlite":
        return _merge_sqlite(database_url, batches, plan, progress, second_half)
    return asyncio.run(_merge_postgres(database_url, batches, plan, progress, second_half))


# A file this large is parsed in two halves at once, on two processes, when two CPUs are there.
PARALLEL_MIN_BYTES = 64 << 20
# The share of the file the importing process parses itself when the other part's helper process runs
# on the other CPU: half, or less for a first import on PostgreSQL, whose importing process then writes
# its part into the directory while the helper still parses (PostgresStaging.merge_ahead), and the helper
# makes its part's rows itself (PartRowFiles). 46 %: both then end together (2M-line liberal extract,
# bench/profile_import.py, 30 Nov 2026: at 42 %, the helper done 5.8 s after the importing process had
# written its part; at 46 %, 1.7 s before).
SHARE = 0.5
FIRST_IMPORT_SHARE = 0.46


# How far past the middle of the file the split looks for the start of a person's lines.
SPLIT_SEARCH_BYTES = 1 << 20


def _split_point(path: Path, size: int, share: float = SHARE) -> int | None:
    """Offset of the first line after ``share`` of the file (its middle by default) that starts a
    person's lines (its national
    identifier differs from the line before), if any: a person's lines then go to one process, whose
    staging gives the person's fingerprint whole to their first line (PostgreSQL's first import takes
    the persons from those lines alone, :func:`coordination.directory.store._person_steps`). Past
    ``SPLIT_SEARCH_BYTES`` without one (or with a header the parser will refuse anyway), the first line
    after the middle: the import stays exact, the merge then sums each person's lines itself."""
    with path.open("rb") as stream:
        try:
            i_nid = read_layout(read_header(stream), file=str(path)).index["national_id"]
        except RppsFormatError:
            i_nid = None
        stream.seek(int(size * share))
        stream.readline()
        first = offset = stream.tell()
        previous: bytes | None = None
        while i_nid is not None and offset < size and offset - first < SPLIT_SEARCH_BYTES:
            line = stream.readline()
            fields = line.split(b"|")
            nid = fields[i_nid].strip() if len(fields) > i_nid else b""
            if previous is not None and nid != previous:
                break
            previous = nid
            offset += len(line)
        else:
            offset = first
    return offset if offset < size else None


class _SecondHalf:
    """The second half of an extract, parsed and staged by a helper process (:func:`ror_sync.part.
    stage_part` in a one-worker ``ProcessPoolExecutor``, into its own files under this import's
    temporary directory: SQLite, or ``COPY`` text for PostgreSQL) while this process does the first
    half; then taken into this process's staging, numbered after it.

    Two CPUs do the Python parsing at once: it is most of an import's time. Any failure of the helper
    fails the import (nothing is written); leaving the block stops the helper if it still runs."""

    def __init__(
        self,
        path: Path,
        start: int,
        *,
        work_dir: Path,
        rejections: Rejections,
        position: ParsePosition,
        kind: PartKind = "sqlite",
    ) -> None:
        self._path = path
        self._start = start
        self.kind = kind
        self.now = datetime.now(UTC)  # the time of the rows of a "rows" part, and of merge_ahead's
        self._part_file = str(work_dir / ("part.db" if kind == "sqlite" else "part"))
        self._rejections = rejections
        self._position = position  # where the first half stopped: the offset of the second's lines
        self.staged = 0
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[PartResult] | None = None

    def __enter__(self) -> _SecondHalf:
        self._submit()
        return self

    def _submit(self) -> None:
        # "spawn": a fresh interpreter, never a fork of a process that may run threads (asyncio).
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._future = self._pool.submit(
            stage_part, str(self._path), self._start, self._part_file, self.kind, self.now
        )

    @property
    def offset(self) -> int:
        """The number of the last line of the first half (once this process has parsed it)."""
        return self._position.line_no

    def take_into(self, staging: SqliteStaging) -> None:
        part = self._finish()
        staging.absorb(self._part_file, line_offset=self._position.line_no)
        self._record(part)

    async def take_into_postgres(self, staging: PostgresStaging) -> None:
        part = await self._finished_part()
        await staging.absorb(self._part_file, line_offset=part.line_offset, lines=part.staged)
        self._record(part)

    async def write_rows(self, staging: PostgresStaging) -> MergeResult | None:
        """A "rows" part, after :meth:`PostgresStaging.merge_ahead`: its rows written and the import
        committed (:meth:`PostgresStaging.merge_part_rows`). None, with nothing written, when they
        cannot be used as they are: the helper lost track of a structure (its part then has no first
        site for it), or a person has lines in both parts; :meth:`restage` then."""
        part = await self._finished_part()
        assert part.rows is not None
        if part.rows.untracked:
            return None
        result = await staging.merge_part_rows(
            self._part_file, line_offset=part.line_offset, bare_sites=part.rows.bare_sites
        )
        if result is not None:
            self._record(part)
        return result

    def restage(self) -> None:
        """Parse the part again, into staging files this time (``COPY`` text), in a helper process:
        the rare import whose "rows" part cannot be used as it is (:meth:`write_rows`)."""
        self._stop()  # the first parse, when merge_ahead did not run and it was not waited for
        self.kind = "copy"
        self._submit()

    async def _finished_part(self) -> PartResult:
        part = await asyncio.to_thread(self._finish)
        offset = self._position.line_no
        if part.line_offset != offset:  # both count the line ends before the split: never differ
            raise OSError(
                f"{self._path} : la seconde moitié a été numérotée à partir de la ligne "
                f"{part.line_offset + 1} au lieu de {offset + 1} ; rien n'a été importé."
            )
        return part

    def _finish(self) -> PartResult:
        """Wait for the helper, then let its process go."""
        assert self._future is not None and self._pool is not None
        try:
            part = self._future.result()
        except Exception as exc:  # whatever stopped the helper (I/O, disk full, killed) fails the import
            raise OSError(
                f"{self._path} : lecture de la seconde moitié impossible ({exc}) ; rien n'a été importé."
            ) from exc
        # The worker's memory goes back now, before the merge (the import's own peak).
        self._pool.shutdown(wait=True)
        self._pool = None
        return part

    def _record(self, part: PartResult) -> None:
        offset = self._position.line_no
        for line, reason in part.kept:
            self._rejections.add(str(self._path), line + offset, reason)
        self._rejections.total += part.rejected - len(part.kept)
        self.staged = part.staged

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._pool is None:
            return
        if self._future is not None and not self._future.done():
            # Not taken in (the first half failed): stop the helper now rather than let it finish.
            # ProcessPoolExecutor has no public way to kill a running task before Python 3.14.
            for process in list(self._pool._processes.values()):
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    guard = _guard(allow_mass_deactivation, max_deactivation_ratio)
    return _import_rpps(database_url, stream, name=name, size=size, progress=progress, guard=guard)


def _import_rpps(
    database_url: str,
    stream: IO[bytes],
    *,
    name: str,
    size: int | None,
    progress: bool,
    guard: DeactivationGuard | None,
    split_at: int | None = None,
    temp_dir: Path | None = None,
    first_import: bool = False,
) -> ImportReport:
    """``first_import``: into an empty PostgreSQL directory (the helper then writes the directory's own
    rows, see :class:`coordination.directory.store.PartRowFiles`)."""
    started = time.monotonic()
    rejections = Rejections()
    report = ImportReport(source="rpps", full=True, sources=[name])
    plan = _Plan("rpps", True, True, RPPS_FORMAT, guard)
    position = ParsePosition()
    with contextlib.ExitStack() as stack:
        second_half = None
        if split_at is not None:
            assert temp_dir is not None
            work_dir = stack.enter_context(import_temp_dir(temp_dir))
            # PostgreSQL: the helper writes COPY files the server reads as they are: the directory's
            # own rows for a first import (the directory is empty), otherwise staging rows.
            kind: PartKind = "sqlite"
            if _backend(database_url) != "sqlite":
                kind = "rows" if first_import else "copy"
            second_half = stack.enter_context(
                _SecondHalf(
                    Path(name),
                    split_at,
                    work_dir=work_dir,
                    rejections=rejections,
                    position=position,
                    kind=kind,
                )
            )
        bar = stack.enter_context(
            _Progress(progress, label=f"Lecture {Path(name).name}", total=split_at or size)
        )
        lines_seen = [0]

        def batches() -> Batches:
            for lines, sites in parse_rpps(
                stream,
                file=name,
                rejections=rejections,
                on_batch=bar.advance_to,
                limit=split_at,
                position=position,
            ):
                lines_seen[0] += len(lines)
                yield lines, sites, ()

        try:
            result = _run(database_url, batches(), plan, bar, second_half)
        except MassDeactivationRefused as exc:
            raise _refusal(exc, files=[name], command="import-rpps") from exc
        if second_half is not None:
            lines_seen[0] += second_half.staged
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
    processes: int | None = None,
    temp_dir: Path | None = None,
) -> ImportReport:
    """Import an RPPS ``PS_LibreAcces_Personne_activite`` extract as a full snapshot of the RPPS.

    A file of ``PARALLEL_MIN_BYTES`` or more is parsed by two processes (one per half) when two CPUs
    are available; ``processes`` forces 1 or 2 (the result is the same). The second half is staged in a
    temporary file: on PostgreSQL without ``temp_dir``, one process parses the whole file.

    Temporary files go to ``temp_dir`` (the CLI gives ``<home>/tmp``; on SQLite by default a ``tmp``
    folder beside the database), never to the system's ``/tmp``; what a killed import left there is
    swept first (:func:`ror_sync.workdir.sweep_stale_import_files`).

    Raises ``FileNotFoundError``/``OSError`` for an unreadable file,
    :class:`ror_sync.rpps.RppsFormatError` for a file whose header is not an RPPS header, and
    :class:`MassDeactivationError` when the snapshot would deactivate more than
    ``max_deactivation_ratio`` of the RPPS's active persons (and more than
    ``coordination.directory.rules.MASS_DEACTIVATION_FLOOR``), would deactivate every one of them, or
    holds no valid line, without ``allow_mass_deactivation``; in every case the directory is left
    untouched.
    """
    guard = _guard(allow_mass_deactivation, max_deactivation_ratio)  # a bad threshold fails early
    path = Path(path)
    sqlite = _backend(database_url) == "sqlite"
    if temp_dir is None and sqlite:
        temp_dir = Path(sqlite_path(database_url)).resolve().parent / "tmp"
    if temp_dir is not None:
        sweep_stale_import_files(temp_dir)
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if processes is None:
            processes = 2 if size >= PARALLEL_MIN_BYTES and _cpus() >= 2 else 1
        split_at = None
        first_import = False
        if processes >= 2 and temp_dir is not None:  # the helper's file needs a place of its own
            first_import = not sqlite and asyncio.run(pg_directory_is_empty(database_url))
            split_at = _split_point(path, size, FIRST_IMPORT_SHARE if first_import else SHARE)
        return _import_rpps(
            database_url,
            stream,
            name=str(path),
            size=size,
            progress=progress,
            guard=guard,
            split_at=split_at,
            temp_dir=temp_dir,
            first_import=first_import,
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
