"""The second half of a large RPPS extract, staged by a helper process (:mod:`ror_sync.importer`).

:func:`stage_part` runs in a ``concurrent.futures.ProcessPoolExecutor`` worker while the importing
process parses the first half, so that two CPUs parse at once. This module imports only what the worker
needs: it runs beside the importing process and adds to its memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from coordination.directory.store import (
    RPPS_FORMAT,
    PartCopyFiles,
    PartRowFiles,
    PartRowsOutcome,
    PartStaging,
)
from ror_sync.report import Rejections
from ror_sync.rpps import CHUNK_BYTES, ParsePosition, parse_rpps, read_header

# "sqlite": a SQLite staging file; "copy": COPY text files of the staging (PostgreSQL); "rows": the
# directory's own rows (a first import on PostgreSQL, see PartRowFiles).
PartKind = Literal["sqlite", "copy", "rows"]


@dataclass(frozen=True, slots=True)
class PartResult:
    """What the process staging the second half of a file found (lines numbered from 1 there)."""

    last_line: int
    staged: int
    rejected: int
    kept: list[tuple[int, str]]
    # "copy" and "rows" parts: the lines before ``start`` (header included), which numbered their rows.
    line_offset: int = 0
    rows: PartRowsOutcome | None = None  # "rows" parts


def lines_before(path: str, start: int) -> int:
    """How many lines a file holds before byte ``start`` (a line start): its line ends up to there, as
    :func:`ror_sync.rpps.parse_rpps` counts them (one a ``\\n``, the header included)."""
    count = 0
    with open(path, "rb") as stream:
        left = start
        while left > 0 and (data := stream.read(min(CHUNK_BYTES * 8, left))):
            count += data.count(b"\n")
            left -= len(data)
    return count


def stage_part(
    path: str, start: int, part_file: str, kind: PartKind = "sqlite", now: datetime | None = None
) -> PartResult:
    """Parse an extract from byte ``start`` (a line start) into a :class:`PartStaging` file (SQLite),
    or, for PostgreSQL, into :class:`PartCopyFiles` (``kind="copy"``) or :class:`PartRowFiles`
    (``kind="rows"``, whose rows take ``now`` as their time) numbered after the lines before
    ``start``."""
    rejections = Rejections()
    position = ParsePosition()
    staged = 0
    offset = lines_before(path, start) if kind != "sqlite" else 0
    staging: PartStaging | PartCopyFiles | PartRowFiles
    if kind == "rows":
        assert now is not None, "the rows' time"
        staging = PartRowFiles(part_file, line_offset=offset, now=now)
    elif kind == "copy":
        staging = PartCopyFiles(part_file, staging_format=RPPS_FORMAT, line_offset=offset)
    else:
        staging = PartStaging(part_file, staging_format=RPPS_FORMAT)
    try:
        with open(path, "rb") as stream:
            header = read_header(stream)
            stream.seek(start)
            for lines, sites in parse_rpps(
                stream,
                file=path,
                rejections=rejections,
                header=header,
                position=position,
                site_fields=kind == "rows",
            ):
                staging.add(lines, sites)
                staged += len(lines)
    finally:
        staging.close()
    kept = [(r.line, r.reason) for r in rejections.kept]
    outcome = staging.outcome if isinstance(staging, PartRowFiles) else None
    return PartResult(position.line_no, staged, rejections.total, kept, offset, outcome)
