"""The second half of a large RPPS extract, staged by a helper process (:mod:`ror_sync.importer`).

:func:`stage_part` runs in a ``concurrent.futures.ProcessPoolExecutor`` worker while the importing
process parses the first half, so that two CPUs parse at once. This module imports only what the worker
needs: it runs beside the importing process and adds to its memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordination.directory.store import RPPS_FORMAT, PartStaging
from ror_sync.report import Rejections
from ror_sync.rpps import ParsePosition, parse_rpps, read_header


@dataclass(frozen=True, slots=True)
class PartResult:
    """What the process staging the second half of a file found (lines numbered from 1 there)."""

    last_line: int
    staged: int
    rejected: int
    kept: list[tuple[int, str]]


def stage_part(path: str, start: int, part_file: str) -> PartResult:
    """Parse an extract from byte ``start`` (a line start) into a :class:`PartStaging` file."""
    rejections = Rejections()
    position = ParsePosition()
    staged = 0
    staging = PartStaging(part_file, staging_format=RPPS_FORMAT)
    try:
        with open(path, "rb") as stream:
            header = read_header(stream)
            stream.seek(start)
            for lines, sites in parse_rpps(
                stream, file=path, rejections=rejections, header=header, position=position
            ):
                staging.add(lines, sites)
                staged += len(lines)
    finally:
        staging.close()
    kept = [(r.line, r.reason) for r in rejections.kept]
    return PartResult(position.line_no, staged, rejections.total, kept)
