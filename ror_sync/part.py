"""``python -m ror_sync.part FILE START PART_FILE``: stage the second half of an RPPS extract.

Started by :mod:`ror_sync.importer` for a large file, so that two CPUs parse it at once; prints a JSON
:class:`PartResult` on success, the error on stderr (exit code 1) otherwise. Imports only what it needs:
it runs beside the importing process and adds to its memory.
"""

from __future__ import annotations

import dataclasses
import json
import sys
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


def main(argv: list[str]) -> int:
    path, start, part_file = argv
    try:
        result = stage_part(path, int(start), part_file)
    except Exception as exc:  # reported to the parent, which fails the import
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(dataclasses.asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
