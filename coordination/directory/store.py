"""Directory storage: the set-based snapshot merge used by the importers.

An import streams its rows into private staging tables, then one transaction merges them into the
directory with a handful of set-based statements (no per-person round trips), so a 2-million-line RPPS
extract never sits in Python memory and an import that fails leaves the previous directory untouched:

- SQLite: the stdlib ``sqlite3`` driver (synchronous, fastest bulk path), staging in ``TEMP`` tables filled
  in their own transaction, then ``BEGIN IMMEDIATE`` for the merge only, so the service keeps reading (WAL)
  and is locked out of writes only while the merge runs.
- PostgreSQL: ``asyncpg`` ``COPY`` into ``ON COMMIT DROP`` temp tables, merge, commit: one transaction.

Either way, the second half of a large RPPS file may come staged by a helper process, taken in before the
merge (``absorb``): in a SQLite file of its own attached on SQLite (:class:`PartStaging`), as ``COPY``
text files the server reads as they are on PostgreSQL (:class:`PartCopyFiles`); or, for a first RPPS
import on PostgreSQL, as ``COPY`` files of the directory's own rows, which the importing process copies
in after writing its own part (:class:`PartRowFiles`, :meth:`PostgresStaging.merge_part_rows`).
A first import (a directory without persons, or without structures) skips what only a directory with
rows needs: the structures go in straight from the sites, the persons straight from the grouping of their
lines (no ``stg_persons`` classification), the activities without looking their person up, and the
secondary indexes (and, on PostgreSQL, the activities' foreign key, and the primary keys of the tables
filled from empty with the foreign keys that reference them) are rebuilt once at the end instead of
maintained row by row.

Staging rows
------------
``LINE_COLUMNS``: one row per activity line (RPPS line or FHIR PractitionerRole) or person line
(a FHIR Practitioner). ``pf`` = 1 when the row carries the person's fields (an RPPS person's first line;
the following lines of the same person leave them NULL), ``act`` = 1 when it is an activity.
``SITE_COLUMNS`` rows hold sites (structure key, name, address...), each staged once however many lines
name it. An RPPS line at its structure's own site (the structure is derived from the first site of its
key in the file) stages only ``structure_id``: its activity keeps no site columns of its own and shows
the structure's, which is what most of the 2 million lines need and the cheapest to write. A line whose
site differs, or has no structure, points to its site row (``site_line``) and its activity keeps those
columns. ``h`` is a 48-bit digest of the line; a person's fingerprint is the sum of the digests of their
lines (order-independent), compared with the stored one to tell "unchanged" from "updated". The RPPS
parser gives a run of lines of one person their sum on the run's first line and 0 on the others (the
sum per person is the same), so that a first import can take the persons from those first lines alone.
An RPPS site row also says (``own``) whether it is the first site of its structure in the part of the
file its process parsed: the structures of a first import on PostgreSQL are those rows.
Empty strings are stored as-is in staging and turned into NULL by the merge (``NULLIF``), in C, not Python.

Ownership and precedence
------------------------
Each person and structure is owned by one source (``rpps`` or ``fhir``); only its owner's full import
deactivates it. The RPPS is authoritative for persons, the ROR (FHIR) for structures: a source never
overwrites an *active* row owned by the source with precedence (state ``K``: kept), it only replaces its
own activities of that person. An inactive row is taken over by whichever source lists it again.

Mass deactivation guard
-----------------------
A truncated or wrong file would deactivate everyone missing from it, and a deactivated professional loses
Matrix access within a minute. Before writing anything, a full import counts the persons it would
deactivate; past the :class:`DeactivationGuard` limit the merge raises :class:`MassDeactivationRefused`
and nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from coordination.directory.rules import (
    MASS_DEACTIVATION_FLOOR,
    MASS_DEACTIVATION_RATIO,
    is_mass_deactivation,
)

logger = logging.getLogger(__name__)

Source = Literal["rpps", "fhir"]
Dialect = Literal["sqlite", "postgresql"]

LINE_COLUMNS: tuple[str, ...] = (
    "line_no",
    "pf",
    "act",
    "national_id",
    "id_type",
    "civility",
    "family_name",
    "given_name",
    "search_name",
    "profession_code",
    "profession",
    "specialty",
    "mode",
    "role",
    "structure_id",
    "site_line",
    "fhir_id",
    "practitioner_ref",
    "h",
)
# What an RPPS line stages: every line is an activity (``act`` defaults to 1), no FHIR references.
RPPS_LINE_COLUMNS: tuple[str, ...] = tuple(
    c for c in LINE_COLUMNS if c not in ("act", "fhir_id", "practitioner_ref")
)
SITE_COLUMNS: tuple[str, ...] = (
    "line_no",
    "structure_id",
    "org_ref",
    "site_name",
    "site_search",
    "finess",
    "siret",
    "address",
    "postal_code",
    "city",
    "department",
    "phone",
    "email",
)
# RPPS sites also say whether they are their structure's first site in the part of the file their process
# parsed: ``own`` (see ``SITE_OWN``).
RPPS_SITE_COLUMNS: tuple[str, ...] = (*(c for c in SITE_COLUMNS if c != "org_ref"), "own")
SITE_OTHER = 0  # another site of a structure, or a site without a structure
SITE_FIRST = 1  # the first site of its structure in the part of the file
SITE_UNTRACKED = 2  # a site of a structure the parser could not keep track of (ror_sync.rpps._Sites)
STRUCT_COLUMNS: tuple[str, ...] = (
    "line_no",
    "structure_id",
    "kind",
    "name",
    "search_name",
    "finess",
    "siret",
    "parent_id",
    "parent_ref",
    "is_dac",
    "address",
    "postal_code",
    "city",
    "department",
    "phone",
    "email",
    "fhir_id",
)
_INT_LINE = {"line_no", "pf", "act", "site_line", "h"}
_INT_SITE = {"line_no", "own"}
_INT_STRUCT = {"line_no"}

# Who wins when two sources list the same row (see module docstring).
_PERSON_PRECEDENCE: dict[str, tuple[str, ...]] = {"fhir": ("rpps",), "rpps": ()}
_STRUCTURE_PRECEDENCE: dict[str, tuple[str, ...]] = {"rpps": ("fhir",), "fhir": ()}


@dataclass(frozen=True, slots=True)
class StagingFormat:
    """Which columns a source's staged rows carry, in order."""

    lines: tuple[str, ...] = LINE_COLUMNS
    sites: tuple[str, ...] = SITE_COLUMNS


RPPS_FORMAT = StagingFormat(lines=RPPS_LINE_COLUMNS, sites=RPPS_SITE_COLUMNS)
FHIR_FORMAT = StagingFormat()


RefusalReason = Literal["empty", "everyone", "share"]


@dataclass(frozen=True, slots=True)
class DeactivationGuard:
    """When a full import needs the operator's explicit consent (issue 6, item 9), whatever the size of
    the directory:

    - it holds no valid row at all (a header-only or wholly rejected file);
    - it would deactivate every active person of its source;
    - it would deactivate more than ``max_ratio`` of them **and** more than ``floor`` persons (below the
      floor, a small directory may lose a few people a day).
    """

    max_ratio: float = MASS_DEACTIVATION_RATIO
    floor: int = MASS_DEACTIVATION_FLOOR

    def refusal(self, *, deactivating: int, active: int, empty: bool) -> RefusalReason | None:
        if empty:
            return "empty"
        if deactivating > 0 and deactivating >= active:
            return "everyone"
        if is_mass_deactivation(
            deactivating=deactivating, active=active, max_ratio=self.max_ratio, floor=self.floor
        ):
            return "share"
        return None


class MassDeactivationRefused(Exception):
    """The import would deactivate too many persons (see :class:`DeactivationGuard`): nothing written."""

    def __init__(
        self,
        *,
        source: Source,
        deactivating: int,
        active: int,
        guard: DeactivationGuard,
        reason: RefusalReason = "share",
    ) -> None:
        super().__init__(
            f"{source}: {deactivating} of {active} active persons would be deactivated ({reason})"
        )
        self.source = source
        self.deactivating = deactivating
        self.active = active
        self.guard = guard
        self.reason = reason


@dataclass
class Counts:
    """What a merge did to one kind of row."""

    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reactivated: int = 0
    deactivated: int = 0


@dataclass
class MergeResult:
    persons: Counts = field(default_factory=Counts)
    structures: Counts = field(default_factory=Counts)
    activities: int = 0  # activities in the imported snapshot
    activities_written: int = 0  # of which (re)written: those of added / updated persons
    # Staged activity rows whose practitioner could not be resolved: (line_no, reference).
    unresolved: list[tuple[int, str]] = field(default_factory=list)


def _staging_ddl(dialect: Dialect) -> list[str]:
    def cols(names: Sequence[str], ints: set[str]) -> str:
        return ", ".join(f"{n} {'BIGINT' if n in ints else 'TEXT'}" for n in names)

    line_cols = cols(LINE_COLUMNS, _INT_LINE).replace("act BIGINT", "act BIGINT DEFAULT 1")
    site_cols = cols((*SITE_COLUMNS, "own"), _INT_SITE)
    if dialect == "sqlite":
        # line_no as INTEGER PRIMARY KEY is the rowid: lookups by line number cost nothing extra.
        line_cols = line_cols.replace("line_no BIGINT", "line_no INTEGER PRIMARY KEY")
        site_cols = site_cols.replace("line_no BIGINT", "line_no INTEGER PRIMARY KEY")
        tail = ""
    else:
        tail = " ON COMMIT DROP"  # indexes are built after the COPY (see PostgresStaging.merge)
    struct_cols = cols(STRUCT_COLUMNS, _INT_STRUCT).replace("is_dac TEXT", "is_dac BOOLEAN")
    return [
        f"CREATE TEMP TABLE stg_lines ({line_cols}){tail}",
        f"CREATE TEMP TABLE stg_sites ({site_cols}){tail}",
        f"CREATE TEMP TABLE stg_structs ({struct_cols}){tail}",
        "CREATE TEMP TABLE stg_persons (national_id TEXT PRIMARY KEY, first_line BIGINT, fp BIGINT, "
        f"n_act BIGINT, state TEXT, react INTEGER, own_active INTEGER){tail}",
        "CREATE TEMP TABLE stg_struct_state (structure_id TEXT PRIMARY KEY, state TEXT, "
        f"react INTEGER){tail}",
    ]


def _in_list(values: tuple[str, ...]) -> str:
    # Only our own constants ("rpps", "fhir") ever reach this: never user input.
    return "(" + ", ".join(f"'{v}'" for v in values) + ")" if values else ""


def _resolve_refs_sql() -> list[str]:
    """FHIR references to resources imported earlier (delta imports): resolve by stored logical id."""
    return [
        "UPDATE stg_lines SET national_id = (SELECT p.national_id FROM directory_persons p "
        "WHERE p.fhir_id = stg_lines.practitioner_ref) "
        "WHERE national_id IS NULL AND practitioner_ref IS NOT NULL",
        "UPDATE stg_sites SET structure_id = (SELECT d.structure_id FROM directory_structures d "
        "WHERE d.fhir_id = stg_sites.org_ref) WHERE structure_id IS NULL AND org_ref IS NOT NULL",
        "UPDATE stg_structs SET parent_id = (SELECT d.structure_id FROM directory_structures d "
        "WHERE d.fhir_id = stg_structs.parent_ref) WHERE parent_id IS NULL AND parent_ref IS NOT NULL",
    ]


# RPPS: one structure per site key, its fields taken from the key's first site in the file, with the
# columns of ``stg_structs``.
_DERIVED_STRUCTURES = (
    "SELECT t.line_no, t.structure_id, 'site' AS kind, t.site_name AS name, t.site_search AS search_name, "
    "t.finess, t.siret, CAST(NULL AS TEXT) AS parent_id, FALSE AS is_dac, t.address, t.postal_code, "
    "t.city, t.department, t.phone, t.email, CAST(NULL AS TEXT) AS fhir_id "
    "FROM stg_sites t JOIN (SELECT structure_id, MIN(line_no) AS first_line FROM stg_sites "
    "WHERE structure_id IS NOT NULL AND structure_id <> '' GROUP BY structure_id) f "
    "ON t.line_no = f.first_line"
)


def _derive_structures_sql() -> str:
    """RPPS: stage the structures derived from the sites (see ``_DERIVED_STRUCTURES``)."""
    return (
        "INSERT INTO stg_structs (line_no, structure_id, kind, name, search_name, finess, siret, "
        "parent_id, is_dac, address, postal_code, city, department, phone, email, fhir_id) "
        + _DERIVED_STRUCTURES
    )


def _first_structures_sql(
    dialect: Dialect,
    source: Source,
    *,
    keyless: bool = False,
    first_sites: bool = False,
    part_offset: int | None = None,
    after: str = "",
    sites: str = "stg_sites",
) -> str:
    """RPPS into a directory without any structure (a first import): every derived structure is new,
    none to keep, update or deactivate, so they go straight in, without being staged and classified
    first (about 5 s of a 2M-line extract with one structure per line, issue 6 item 18). They go in in
    key order: SQLite's GROUP BY gives them so already (sorting them again cost 1.5 s there).

    ``keyless``: PostgreSQL, the primary key is built after the load (:meth:`PostgresStaging.
    _drop_for_bulk_load`): no order to give them, the first site of each key is found by hashing
    (``_DERIVED_STRUCTURES``) rather than by sorting every site on its text key.

    ``first_sites`` (every structure's site tracked by the parser: no ``SITE_UNTRACKED`` row): the
    parser marked each structure's first site in its part of the file (``SITE_FIRST``), so the
    structures are those sites, without grouping the 1.7 million sites of a liberal extract by key
    (about 4 s on either database, issue 6 item 18), in the file's order; of a structure in both parts
    (``stg_both``, :func:`_pg_absorb_conflicts_sql`, :func:`_tracked_conflicts_sql`), the first
    part's, the second's starting after line ``part_offset``.
    ``after``: a condition on the sites (``after_line`` in :func:`_apply_sql`). ``sites``: the table of
    the first sites (with ``first_sites``; :meth:`PostgresStaging.merge_part_rows` gives the helper's)."""
    struct_vals = ", ".join(_struct_expr(c) for c in _STRUCT_FIELDS)
    if first_sites:
        structures = (
            f"SELECT t.structure_id, t.site_name AS name, t.site_search AS search_name, t.finess, "
            f"t.siret, t.address, t.postal_code, t.city, t.department, t.phone, t.email FROM {sites} t "
            f"WHERE t.own = {SITE_FIRST}{after}"
            + (
                ""
                if part_offset is None
                else f" AND NOT (t.line_no > {int(part_offset)} AND EXISTS (SELECT 1 FROM stg_both b "
                "WHERE b.structure_id = t.structure_id))"
            )
        )
        values = ", ".join(
            {"kind": "'site'", "parent_id": "NULL", "is_dac": "FALSE"}.get(c) or _struct_expr(c)
            for c in _STRUCT_FIELDS
        )
        return (
            f"INSERT INTO directory_structures (structure_id, {', '.join(_STRUCT_FIELDS)}, active, "
            "deactivated_at, source, fhir_id, updated_at) "
            f"SELECT t.structure_id, {values}, TRUE, NULL, '{source}', NULL, :now FROM ({structures}) t"
        )
    return (
        f"INSERT INTO directory_structures (structure_id, {', '.join(_STRUCT_FIELDS)}, active, "
        "deactivated_at, source, fhir_id, updated_at) "
        f"SELECT t.structure_id, {struct_vals}, TRUE, NULL, '{source}', {_n('t.fhir_id')}, :now "
        + (
            f"FROM ({_DERIVED_STRUCTURES}) t"
            if dialect == "sqlite" or keyless
            else f"FROM ({_PG_FIRST_SITES}) t"
        )
    )


# PostgreSQL: the first site of each key in one sort, in key order (what the primary key's index wants),
# instead of a grouping joined back to the sites and sorted again.
_PG_FIRST_SITES = (
    "SELECT DISTINCT ON (structure_id) line_no, structure_id, 'site' AS kind, site_name AS name, "
    "site_search AS search_name, finess, siret, CAST(NULL AS TEXT) AS parent_id, FALSE AS is_dac, "
    "address, postal_code, city, department, phone, email, CAST(NULL AS TEXT) AS fhir_id FROM stg_sites "
    "WHERE structure_id IS NOT NULL AND structure_id <> '' ORDER BY structure_id, line_no"
)


_ANY_STRUCTURE = "SELECT 1 FROM directory_structures LIMIT 1"
_ANY_UNTRACKED_SITE = f"SELECT 1 FROM stg_sites WHERE own = {SITE_UNTRACKED} LIMIT 1"
_ANY_ACTIVITY = "SELECT 1 FROM directory_activities LIMIT 1"
_DIRECTORY_TABLES = ("directory_persons", "directory_structures", "directory_activities")
_ANY_PERSON = "SELECT 1 FROM directory_persons LIMIT 1"


def _n(col: str) -> str:
    return f"NULLIF({col}, '')"


_PERSON_FIELDS = (
    "id_type",
    "civility",
    "family_name",
    "given_name",
    "search_name",
    "profession_code",
    "profession",
)
_STRUCT_FIELDS = (
    "kind",
    "name",
    "search_name",
    "finess",
    "siret",
    "parent_id",
    "is_dac",
    "address",
    "postal_code",
    "city",
    "department",
    "phone",
    "email",
)


def _person_expr(col: str) -> str:
    # TRIM: the RPPS parser leaves fields padded with spaces as they are (trimming is cheaper here).
    if col == "family_name":
        return "TRIM(l.family_name)"
    if col == "given_name":
        return "COALESCE(TRIM(l.given_name), '')"
    if col == "search_name":
        return "COALESCE(l.search_name, '')"
    return _n(f"TRIM(l.{col})")


def _struct_expr(col: str) -> str:
    if col == "name":
        return "COALESCE(NULLIF(t.name, ''), t.structure_id)"
    if col == "search_name":
        return "COALESCE(t.search_name, '')"
    if col == "is_dac":
        return "COALESCE(t.is_dac, FALSE)"
    return _n(f"t.{col}")


def _classify_persons_sql(source: Source) -> str:
    """Aggregate the staged lines per person and classify each against the directory.

    States: ``N`` new, ``U`` updated (fingerprint differs, or taken over from another source), ``S``
    unchanged, ``K`` kept (owned by the source with precedence), ``A`` activities only (a FHIR role
    whose person is not in this import). ``react``: an inactive row listed again. ``own_active``: an
    active row of this source (what the mass deactivation guard counts against).
    """
    higher_p = _in_list(_PERSON_PRECEDENCE[source])
    keep_p = f"p.source IN {higher_p} AND p.active" if higher_p else "FALSE"
    return (
        "INSERT INTO stg_persons (national_id, first_line, fp, n_act, state, react, own_active) "
        "SELECT g.national_id, g.first_line, g.fp, g.n_act, "
        "CASE WHEN g.first_line IS NULL THEN 'A' "
        "WHEN p.national_id IS NULL THEN 'N' "
        f"WHEN {keep_p} THEN 'K' "
        f"WHEN p.source <> '{source}' OR p.fingerprint IS NULL OR p.fingerprint <> g.fp "
        "THEN 'U' ELSE 'S' END, "
        "CASE WHEN p.national_id IS NOT NULL AND NOT p.active AND g.first_line IS NOT NULL "
        "THEN 1 ELSE 0 END, "
        f"CASE WHEN p.source = '{source}' AND p.active AND g.first_line IS NOT NULL THEN 1 ELSE 0 END "
        "FROM (SELECT national_id, MIN(CASE WHEN pf = 1 THEN line_no END) AS first_line, "
        "CAST(SUM(h) AS BIGINT) AS fp, CAST(SUM(act) AS BIGINT) AS n_act "
        "FROM stg_lines GROUP BY national_id) g "
        "LEFT JOIN directory_persons p ON p.national_id = g.national_id"
    )


def _guard_sql(source: Source) -> tuple[str, str]:
    """(active persons of the source now, of which listed again): their difference is deactivated."""
    return (
        f"SELECT COUNT(*) FROM directory_persons WHERE source = '{source}' AND active",
        "SELECT COUNT(*) FROM stg_persons WHERE own_active = 1",
    )


# Into a directory without persons (a first import), every staged person is new: the persons go in
# straight from the grouping of their lines, without being staged in ``stg_persons`` and classified
# first (1.5M rows of a 2M-line extract, issue 6 item 18).
_FIRST_PERSONS = (
    "SELECT national_id, MIN(CASE WHEN pf = 1 THEN line_no END) AS first_line, "
    "CAST(SUM(h) AS BIGINT) AS fp FROM stg_lines GROUP BY national_id"
)


def _person_steps(
    source: Source,
    *,
    fp: str,
    distinct: str,
    first_persons: bool,
    full: bool,
    keyless: bool = False,
    runs: bool = False,
    after: str = "",
) -> list[tuple[str, str | None, bool]]:
    """The writes to the persons, and the removal of the activities they replace (see ``_apply_sql``).

    ``runs`` (a first import, RPPS): each person's lines are taken to be one run, whose first line
    carries the person's fields and the sum of the run's digests (:func:`ror_sync.rpps.parse_rpps`):
    the persons are those first lines, without grouping 2 million lines by person (about 5 s on
    PostgreSQL, issue 6 item 18). Wrong only for a file whose lines of one person are not
    contiguous: the person then comes twice, which the persons' primary key refuses, and the caller
    merges again without ``runs`` (:meth:`PostgresStaging.merge`). ``after``: a condition on the
    lines, see ``after_line`` in :func:`_apply_sql`."""
    person_cols = ", ".join(_PERSON_FIELDS)
    person_vals = ", ".join(_person_expr(c) for c in _PERSON_FIELDS)

    def insert_from(national_id: str, fingerprint: str) -> str:
        """The persons' INSERT, its fields taken from a person's first line ``l``."""
        return (
            f"INSERT INTO directory_persons (national_id, {person_cols}, active, deactivated_at, "
            "source, fingerprint, fhir_id, created_at, updated_at) "
            f"SELECT {national_id}, {person_vals}, TRUE, NULL, '{source}', {fingerprint}, "
            f"{_n('l.fhir_id')}, :now, :now "
        )

    insert = insert_from("s.national_id", fp)
    if first_persons and runs:
        # The run's digest sum is on its first line (a delta's fingerprint means nothing: NULL).
        run_fp = "l.h" if full else "NULL"
        return [
            (
                f"{insert_from('l.national_id', run_fp)}FROM stg_lines l WHERE l.pf = 1{after}",
                "persons_added",
                True,
            )
        ]
    if first_persons:
        # Nothing to update, keep or replace in an empty table.
        return [
            (
                # ``l.pf = 1`` changes no row (a first line carries the person's fields): it lets the
                # join hash the persons' first lines only, not every line.
                f"{insert}FROM ({_FIRST_PERSONS}) s JOIN stg_lines l ON l.line_no = s.first_line "
                "AND l.pf = 1" + ("" if distinct == "IS NOT" or keyless else " ORDER BY s.national_id"),
                # PostgreSQL: in key order, what the primary key's index wants (10.8 s instead of
                # 13 s for 1.5M persons; SQLite's GROUP BY gives them so already); no order at all
                # when that key is built after the load (``keyless``).
                "persons_added",
                True,
            )
        ]
    steps: list[tuple[str, str | None, bool]] = [
        (
            f"{insert}FROM stg_persons s JOIN stg_lines l ON l.line_no = s.first_line WHERE s.state = 'N'",
            None,
            True,
        )
    ]
    set_person = ", ".join(f"{c} = {_person_expr(c)}" for c in _PERSON_FIELDS)
    steps.append(
        (
            f"UPDATE directory_persons SET {set_person}, source = '{source}', fingerprint = {fp}, "
            f"fhir_id = COALESCE({_n('l.fhir_id')}, directory_persons.fhir_id), active = TRUE, "
            "deactivated_at = NULL, updated_at = :now "
            "FROM stg_persons s JOIN stg_lines l ON l.line_no = s.first_line "
            "WHERE directory_persons.national_id = s.national_id AND (s.state = 'U' OR s.react = 1)",
            None,
            True,
        )
    )
    if source == "fhir":
        steps.append(
            (
                "UPDATE directory_persons SET fhir_id = l.fhir_id "
                "FROM stg_persons s JOIN stg_lines l ON l.line_no = s.first_line "
                "WHERE directory_persons.national_id = s.national_id AND s.state = 'K' "
                f"AND {_n('l.fhir_id')} IS NOT NULL AND directory_persons.fhir_id {distinct} l.fhir_id",
                None,
                False,
            )
        )
    replace_cond = "" if full else " AND n_act > 0"
    steps.append(
        (
            f"DELETE FROM directory_activities WHERE source = '{source}' AND national_id IN "
            "(SELECT national_id FROM stg_persons WHERE state IN ('U', 'K', 'A')"
            f"{replace_cond})",
            None,
            False,
        )
    )
    return steps


def _apply_sql(
    dialect: Dialect,
    source: Source,
    *,
    full: bool,
    deactivate_persons: bool,
    first_structures: bool = False,
    first_persons: bool = False,
    keyless: frozenset[str] = frozenset(),
    runs: bool = False,
    line_ids: bool = False,
    first_sites: bool = False,
    part_offset: int | None = None,
    after_line: int | None = None,
) -> list[tuple[str, str | None, bool]]:
    """The writes, as ``(sql, counter, needs_now)`` steps; ``counter`` names the count a rowcount feeds.

    ``keyless``: the directory tables whose primary key is built after the load (PostgreSQL first
    import): their rows need no order. ``runs``: see :func:`_person_steps`. ``line_ids``: into an
    empty activities table, each activity takes its staged line's number as its id (ids follow the
    file's order, as a person's activities are listed, without sorting 2 million rows by line); the
    caller moves the id sequence past them (:meth:`PostgresStaging.merge`). ``first_sites``,
    ``part_offset``: see :func:`_first_structures_sql`. ``after_line``: the rows of the staged lines
    and sites up to that line are in already (:meth:`PostgresStaging.merge_ahead`), only those after it
    are written (with ``runs``, ``line_ids`` and ``first_sites`` only)."""
    assert after_line is None or (runs and line_ids and first_sites), "merge_ahead's rounds only"
    after = "" if after_line is None else f" AND l.line_no > {int(after_line)}"
    distinct = "IS NOT" if dialect == "sqlite" else "IS DISTINCT FROM"
    higher_s = _in_list(_STRUCTURE_PRECEDENCE[source])
    keep_s = f"d.source IN {higher_s} AND d.active" if higher_s else "FALSE"
    fp = "s.fp" if full else "NULL"  # a delta sees part of a person: its digest means nothing later
    steps: list[tuple[str, str | None, bool]] = []

    # Deactivations first: they scan only the rows already there (the new ones are listed anyway).
    if full and deactivate_persons:
        steps.append(
            (
                "UPDATE directory_persons SET active = FALSE, deactivated_at = :now, updated_at = :now "
                f"WHERE source = '{source}' AND active AND NOT EXISTS (SELECT 1 FROM stg_persons s "
                "WHERE s.national_id = directory_persons.national_id AND s.state <> 'A')",
                "persons_deactivated",
                True,
            )
        )
    steps.extend(
        _person_steps(
            source,
            fp=fp,
            distinct=distinct,
            first_persons=first_persons,
            full=full,
            keyless="directory_persons" in keyless,
            runs=runs,
            after=after,
        )
    )
    line_fields = ("profession_code", "profession", "specialty", "mode", "role")
    site_fields = ("site_name", "address", "postal_code", "city", "department", "phone", "email")
    steps.append(
        (
            "INSERT INTO directory_activities ("
            + ("id, " if line_ids else "")
            + "national_id, structure_id, "
            f"{', '.join(line_fields + site_fields)}, source) SELECT "
            + ("l.line_no, " if line_ids else "")
            + f"l.national_id, COALESCE({_n('l.structure_id')}, {_n('t.structure_id')}), "
            f"{', '.join(_n(f'TRIM(l.{c})') for c in line_fields)}, "
            f"{', '.join(_n('t.' + c) for c in site_fields)}, '{source}' "
            "FROM stg_lines l "
            + (
                # Into a directory without persons, every staged person is new: no need to look
                # each line's person up (2M lookups).
                "" if first_persons else "JOIN stg_persons s ON s.national_id = l.national_id "
            )
            # After merge_ahead, the lines left are the helper's, whose sites are its own (numbered
            # after the same line): the join's hash holds those only, not every site of the file.
            + f"LEFT JOIN stg_sites t ON t.line_no = l.site_line{after.replace('l.', 't.')} "
            f"WHERE l.act = 1{after} "
            + ("" if first_persons else "AND s.state IN ('N', 'U', 'K', 'A') ")
            + ("" if line_ids else "ORDER BY l.line_no"),
            "activities",
            False,
        )
    )

    # Structures.
    if first_structures:
        steps.append(
            (
                _first_structures_sql(
                    dialect,
                    source,
                    keyless="directory_structures" in keyless,
                    first_sites=first_sites,
                    part_offset=part_offset,
                    after=after.replace("l.", "t."),
                ),
                "structures_added",
                True,
            )
        )
        return steps
    differs = " OR ".join(f"d.{c} {distinct} {_struct_expr(c)}" for c in _STRUCT_FIELDS)
    steps.append(
        (
            "INSERT INTO stg_struct_state (structure_id, state, react) "
            "SELECT t.structure_id, CASE WHEN d.structure_id IS NULL THEN 'N' "
            f"WHEN {keep_s} THEN 'K' "
            f"WHEN d.source <> '{source}' OR {differs} THEN 'U' "
            "ELSE 'S' END, "
            "CASE WHEN d.structure_id IS NOT NULL AND NOT d.active AND NOT "
            f"({keep_s}) THEN 1 ELSE 0 END "
            "FROM stg_structs t LEFT JOIN directory_structures d ON d.structure_id = t.structure_id",
            None,
            False,
        )
    )
    if full:
        steps.append(
            (
                "UPDATE directory_structures SET active = FALSE, deactivated_at = :now, "
                f"updated_at = :now WHERE source = '{source}' AND active AND NOT EXISTS "
                "(SELECT 1 FROM stg_struct_state t "
                "WHERE t.structure_id = directory_structures.structure_id)",
                "structures_deactivated",
                True,
            )
        )
    struct_vals = ", ".join(_struct_expr(c) for c in _STRUCT_FIELDS)
    steps.append(
        (
            f"INSERT INTO directory_structures (structure_id, {', '.join(_STRUCT_FIELDS)}, active, "
            "deactivated_at, source, fhir_id, updated_at) "
            f"SELECT t.structure_id, {struct_vals}, TRUE, NULL, '{source}', {_n('t.fhir_id')}, :now "
            "FROM stg_structs t JOIN stg_struct_state s ON s.structure_id = t.structure_id "
            "WHERE s.state = 'N' ORDER BY t.structure_id",
            None,
            True,
        )
    )
    set_struct = ", ".join(f"{c} = {_struct_expr(c)}" for c in _STRUCT_FIELDS)
    steps.append(
        (
            f"UPDATE directory_structures SET {set_struct}, source = '{source}', "
            f"fhir_id = COALESCE({_n('t.fhir_id')}, directory_structures.fhir_id), active = TRUE, "
            "deactivated_at = NULL, updated_at = :now "
            "FROM stg_structs t JOIN stg_struct_state s ON s.structure_id = t.structure_id "
            "WHERE directory_structures.structure_id = t.structure_id "
            "AND (s.state = 'U' OR s.react = 1)",
            None,
            True,
        )
    )
    return steps


# Per (state, react): persons, and activity lines (summed over every state, 'A' included).
_COUNT_PERSONS = "SELECT state, react, COUNT(*), SUM(n_act) FROM stg_persons GROUP BY state, react"
_COUNT_STRUCTS = "SELECT state, react, COUNT(*) FROM stg_struct_state GROUP BY state, react"
# Activity rows whose person is unknown: an unresolved practitioner reference, or a national id that is
# neither in this import nor in the directory.
_UNRESOLVED_WHERE = (
    "national_id IS NULL OR (pf = 0 AND NOT EXISTS (SELECT 1 FROM stg_lines q WHERE q.pf = 1 "
    "AND q.national_id = stg_lines.national_id) AND NOT EXISTS (SELECT 1 FROM directory_persons d "
    "WHERE d.national_id = stg_lines.national_id))"
)
_UNRESOLVED = (
    "SELECT line_no, COALESCE(practitioner_ref, national_id) FROM stg_lines "
    f"WHERE {_UNRESOLVED_WHERE} ORDER BY line_no"
)
_DROP_UNRESOLVED = f"DELETE FROM stg_lines WHERE {_UNRESOLVED_WHERE}"


def _tally_persons(rows: Sequence[Sequence[Any]], result: MergeResult, *, first: bool = False) -> None:
    if first:  # a first import: no classification, every staged person and activity went in
        result.activities = result.activities_written
        return
    for state, react, n, n_act in rows:
        result.activities += int(n_act or 0)
        if state != "A":  # activities of persons outside this import: not "seen" here
            _tally_one(result.persons, int(react), state, int(n))


def _tally(rows: Sequence[Sequence[Any]], counts: Counts) -> None:
    for state, react, n in rows:
        _tally_one(counts, int(react), state, int(n))


def _tally_one(counts: Counts, react: int, state: str, n: int) -> None:
    counts.seen += n
    if react:
        counts.reactivated += n
    elif state == "N":
        counts.added += n
    elif state == "U":
        counts.updated += n
    else:
        counts.unchanged += n


def _check_guard(
    source: Source,
    active: int,
    kept: int,
    guard: DeactivationGuard | None,
    result: MergeResult,
    *,
    empty: bool,
) -> int:
    """Persons the import will deactivate; raises :class:`MassDeactivationRefused` past the guard."""
    deactivating = max(0, active - kept)
    if guard is not None:
        reason = guard.refusal(deactivating=deactivating, active=active, empty=empty)
        if reason is not None:
            raise MassDeactivationRefused(
                source=source, deactivating=deactivating, active=active, guard=guard, reason=reason
            )
    result.persons.deactivated = deactivating
    return deactivating


def _is_directory_key_clash(exc: sqlite3.IntegrityError) -> bool:
    """The persons' or the structures' primary key refused a row (SQLite names the column)."""
    text = str(exc)
    return "directory_persons.national_id" in text or "directory_structures.structure_id" in text


def _sqlite_now(now: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format, so UTCDateTime reads these values back.
    return now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_path(database_url: str) -> str:
    from sqlalchemy.engine import make_url  # here: the parsing helper process never loads SQLAlchemy

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ValueError(f"not a SQLite file URL: {url.render_as_string(hide_password=True)}")
    return url.database


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


class SqliteStaging:
    """Bulk staging + merge on SQLite through the stdlib driver (synchronous)."""

    dialect: Dialect = "sqlite"

    def __init__(self, database_url: str, *, staging_format: StagingFormat = FHIR_FORMAT) -> None:
        self._conn = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
        cur = self._conn
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Bounded caches keep the import's memory flat whatever the file size.
        cur.execute("PRAGMA cache_size=-32768")
        cur.execute("PRAGMA temp.cache_size=-65536")
        cur.execute("PRAGMA temp_store=FILE")
        # Alone on the database (the service stopped, e.g. at first start): a rollback journal writes
        # the new pages once instead of twice (WAL, then checkpoint). Leaving WAL needs an exclusive
        # lock, so while the service runs this simply fails and the import stays in WAL mode.
        self._left_wal = False
        mode = str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            try:
                self._left_wal = (
                    str(cur.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower() == "delete"
                )
            except sqlite3.OperationalError:
                self._left_wal = False
        cur.execute("PRAGMA synchronous=NORMAL")
        for ddl in _staging_ddl("sqlite"):
            cur.execute(ddl)
        # Staging lives in TEMP: private to this connection, so filling it locks nothing shared.
        cur.execute("BEGIN")
        self._insert_lines = _insert_sql("stg_lines", staging_format.lines)
        self._insert_sites = _insert_sql("stg_sites", staging_format.sites)
        self._insert_structs = _insert_sql("stg_structs", STRUCT_COLUMNS)
        self._staged = 0
        self._structs = 0
        self._part_offset: int | None = None  # where the lines absorb took in start (with stg_both)

    def add(
        self,
        lines: Sequence[Sequence[Any]],
        sites: Sequence[Sequence[Any]] = (),
        structs: Sequence[Sequence[Any]] = (),
    ) -> None:
        """Stage rows in this source's :class:`StagingFormat` (structures: ``STRUCT_COLUMNS``)."""
        if sites:
            self._conn.executemany(self._insert_sites, sites)
        if lines:
            self._conn.executemany(self._insert_lines, lines)
            self._staged += len(lines)
        if structs:
            self._conn.executemany(self._insert_structs, structs)
            self._structs += len(structs)

    def absorb(self, part_file: str, *, line_offset: int) -> int:
        """Take in a :class:`PartStaging` file whose lines follow the ``line_offset`` lines staged here;
        returns the number of lines taken in."""
        conn = self._conn
        conn.execute("COMMIT")  # ATTACH is refused inside a transaction
        conn.execute("ATTACH DATABASE ? AS part", (part_file,))
        try:
            conn.execute("BEGIN")
            steps = _absorb_sql(line_offset, conflicts=False)
            tracked = all(
                conn.execute(f"SELECT 1 FROM {db}.stg_sites WHERE own = {SITE_UNTRACKED} LIMIT 1").fetchone()
                is None
                for db in ("temp", "part")
            )
            for sql in _tracked_conflicts_sql(line_offset) if tracked else steps[:2]:
                conn.execute(sql)
            if conn.execute("SELECT 1 FROM stg_conflicts LIMIT 1").fetchone() is not None:
                steps = _absorb_sql(line_offset, conflicts=True)
            conn.execute(steps[2])
            taken = conn.execute(steps[3]).rowcount
            conn.execute("DROP TABLE stg_conflicts")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DETACH DATABASE part")
            conn.execute("BEGIN")
        self._staged += taken
        # With stg_both, a first import takes the structures from their first sites (see merge).
        self._part_offset = int(line_offset) if tracked else None
        return int(taken)

    def merge(
        self,
        *,
        source: Source,
        full: bool,
        derive_structures: bool,
        guard: DeactivationGuard | None = DeactivationGuard(),
    ) -> MergeResult:
        """Merge the staged snapshot in one write transaction; on any error nothing is written.

        Raises :class:`MassDeactivationRefused` (before any write) when a full import would deactivate
        more persons than ``guard`` allows; ``guard=None`` lets it through.
        """
        conn = self._conn
        conn.execute("COMMIT")  # end of the staging transaction (TEMP only)
        result = MergeResult()
        now = {"now": _sqlite_now(datetime.now(UTC))}
        # The merge only adds activities to persons it has just written or found (the classification
        # joins them), so checking the foreign key of 2 million activity rows one by one proves nothing.
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if source == "fhir":
                for sql in _resolve_refs_sql():
                    conn.execute(sql)
                result.unresolved = [(int(a), str(b)) for a, b in conn.execute(_UNRESOLVED)]
                conn.execute(_DROP_UNRESOLVED)
            first_persons = conn.execute(_ANY_PERSON).fetchone() is None
            if not first_persons:
                conn.execute(_classify_persons_sql(source))
            deactivating = self._deactivating(source, full, guard, result, first_persons=first_persons)
            first_structures = derive_structures and conn.execute(_ANY_STRUCTURE).fetchone() is None
            if derive_structures and not first_structures:
                conn.execute(_derive_structures_sql())
            existing = int(conn.execute("SELECT COUNT(*) FROM directory_activities").fetchone()[0])
            # Loading much more than the tables hold: inserting into secondary indexes row by row
            # costs more than rebuilding them from a sort afterwards (same transaction: a failure
            # rolls the drop back too).
            bulk = self._staged > max(BULK_LOAD_MIN_LINES, 2 * existing)
            rebuild = _secondary_indexes(conn) if bulk else []
            for _name, _sql in rebuild:
                conn.execute(f'DROP INDEX "{_name}"')
            # As on PostgreSQL, a first RPPS import takes the persons from their runs' first lines and
            # the structures from the sites the parser marked as their first (see _person_steps and
            # _first_structures_sql), in the file's order: 2.7 and 4.0 s become 1.6 and 1.2 s on a
            # 2M-line liberal extract.
            runs = first_persons and source == "rpps"
            first_sites = first_structures and conn.execute(_ANY_UNTRACKED_SITE).fetchone() is None
            steps = functools.partial(
                _apply_sql,
                "sqlite",
                source,
                full=full,
                deactivate_persons=deactivating > 0,
                first_structures=first_structures,
                first_persons=first_persons,
                part_offset=self._part_offset,
            )
            self._write_all(steps, runs=runs, first_sites=first_sites, now=now, result=result)
            for _name, index_sql in rebuild:
                conn.execute(index_sql)
            _tally_persons(conn.execute(_COUNT_PERSONS).fetchall(), result, first=first_persons)
            if not first_structures:
                _tally(conn.execute(_COUNT_STRUCTS).fetchall(), result.structures)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("PRAGMA foreign_keys=ON")
        if not self._left_wal:
            # Keep the WAL file from staying at the size of the whole import.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return result

    def _write_all(
        self,
        steps: Callable[..., list[tuple[str, str | None, bool]]],
        *,
        runs: bool,
        first_sites: bool,
        now: dict[str, str],
        result: MergeResult,
    ) -> None:
        """Run ``steps(runs=..., first_sites=...)``; when a key refuses what ``runs`` or
        ``first_sites`` assumed, back to the savepoint and run them again with neither."""
        conn = self._conn
        conn.execute("SAVEPOINT first_rows")
        try:
            self._write(steps(runs=runs, first_sites=first_sites), now, result)
        except sqlite3.IntegrityError as exc:
            # A person whose lines are apart comes twice from runs: the persons' key refuses it; so
            # would the structures' key a structure whose first sites were not told apart. Group.
            if not (runs or first_sites) or not _is_directory_key_clash(exc):
                raise
            logger.info(
                "rpps import: a person's lines are not contiguous, or a structure's first sites were "
                "not told apart (%s); merging by person and structure",
                exc,
            )
            conn.execute("ROLLBACK TO SAVEPOINT first_rows")
            _uncount_writes(result)
            self._write(steps(runs=False, first_sites=False), now, result)
        conn.execute("RELEASE SAVEPOINT first_rows")

    def _write(
        self, steps: list[tuple[str, str | None, bool]], now: dict[str, str], result: MergeResult
    ) -> None:
        for sql, counter, needs_now in steps:
            cur = self._conn.execute(sql, now if needs_now else {})
            _count(result, counter, cur.rowcount)

    def _deactivating(
        self,
        source: Source,
        full: bool,
        guard: DeactivationGuard | None,
        result: MergeResult,
        *,
        first_persons: bool,
    ) -> int:
        """Persons a full import deactivates (see :func:`_check_guard`); 0 for a delta."""
        if not full:
            return 0
        active_sql, kept_sql = _guard_sql(source)
        active = int(self._conn.execute(active_sql).fetchone()[0])
        kept = 0 if first_persons else int(self._conn.execute(kept_sql).fetchone()[0])
        empty = self._staged == 0 and self._structs == 0
        return _check_guard(source, active, kept, guard, result, empty=empty)

    def close(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        if self._left_wal:
            # On failure it stays in rollback mode: the service turns WAL back on when it connects.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.close()


class PartStaging:
    """Staging of one part of a file, filled by another process into its own SQLite file, then taken
    in by :meth:`SqliteStaging.absorb`. Disposable: no journal, no sync."""

    def __init__(self, path: str, *, staging_format: StagingFormat) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8192"):  # appends only
            self._conn.execute(f"PRAGMA {pragma}")
        for ddl in _staging_ddl("sqlite")[:2]:  # stg_lines, stg_sites
            self._conn.execute(ddl.replace("CREATE TEMP TABLE", "CREATE TABLE"))
        self._conn.execute("BEGIN")
        self._insert_lines = _insert_sql("stg_lines", staging_format.lines)
        self._insert_sites = _insert_sql("stg_sites", staging_format.sites)

    def add(self, lines: Sequence[Sequence[Any]], sites: Sequence[Sequence[Any]] = ()) -> None:
        if sites:
            self._conn.executemany(self._insert_sites, sites)
        if lines:
            self._conn.executemany(self._insert_lines, lines)

    def close(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._conn.close()


def _copy_field(value: Any) -> str:
    """One field in PostgreSQL's ``COPY`` text format with ``|`` as delimiter (see :class:`PartCopyFiles`)."""
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def copy_text_row(row: Sequence[Any]) -> str:
    """A staging row as one line of ``COPY ... (FORMAT text, DELIMITER '|')``; ``None`` is NULL.

    No field of an RPPS staging row can hold ``|``: they are cut from a line split on it, or built from
    such fields with spaces and commas. Backslashes and carriage returns are escaped (rare: checked on
    the whole line first: its only backslashes are then those of its NULLs)."""
    text = "|".join(["\\N" if v is None else str(v) for v in row])
    if "\r" in text or "\n" in text or text.count("\\") != row.count(None):
        text = "|".join(map(_copy_field, row))
    return text + "\n"


# The part files of a PostgreSQL import: ``<base>.sites`` and ``<base>.lines``.
COPY_PART_TABLES = ("stg_sites", "stg_lines")


class PartCopyFiles:
    """Staging of the second half of a file for PostgreSQL, written by the helper process as two
    ``COPY`` text files (sites, lines) with the lines already numbered after the first half, so that
    the importing process hands them to the server as they are (:meth:`PostgresStaging.absorb`):
    no row goes through Python again, instead of a SQLite file read back and encoded row by row (the
    serial end of the parse, issue 6 item 18)."""

    def __init__(self, base: str, *, staging_format: StagingFormat, line_offset: int) -> None:
        self._offset = int(line_offset)
        self._sites = open(f"{base}.sites", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._lines = open(f"{base}.lines", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._site_line = staging_format.lines.index("site_line")

    def add(self, lines: Sequence[Sequence[Any]], sites: Sequence[Sequence[Any]] = ()) -> None:
        off, at = self._offset, self._site_line
        if sites:
            self._sites.writelines(copy_text_row((r[0] + off, *r[1:])) for r in sites)
        if lines:
            self._lines.writelines(
                copy_text_row(
                    (r[0] + off, *r[1:at], r[at] + off, *r[at + 1 :])
                    if r[at] is not None
                    else (r[0] + off, *r[1:])
                )
                for r in lines
            )

    def close(self) -> None:
        self._sites.close()
        self._lines.close()


def _trim(value: Any) -> Any:
    """``NULLIF(TRIM(value), '')`` in Python (PostgreSQL's ``TRIM`` removes spaces only)."""
    if value is None:
        return None
    return value.strip(" ") or None


# The columns of PartRowFiles's files, in the order written: the persons and activities a first import
# writes (_person_steps, _apply_sql), and the sites an activity shows (after the RPPS_FORMAT columns of
# a line parsed with ``site_fields``).
PERSON_ROW_COLUMNS: tuple[str, ...] = (
    "national_id", "id_type", "civility", "family_name", "given_name", "search_name",
    "profession_code", "profession", "active", "deactivated_at", "source", "fingerprint", "fhir_id",
    "created_at", "updated_at",
)  # fmt: skip
ACTIVITY_SITE_FIELDS: tuple[str, ...] = (
    "site_name", "address", "postal_code", "city", "department", "phone", "email",
)  # fmt: skip
ACTIVITY_ROW_COLUMNS: tuple[str, ...] = (
    "id", "national_id", "structure_id", "profession_code", "profession", "specialty", "mode", "role",
    *ACTIVITY_SITE_FIELDS, "source",
)  # fmt: skip
_SITE_OWN = RPPS_SITE_COLUMNS.index("own")
# The files of a PartRowFiles: ``<base>.persons``, ``<base>.activities``, ``<base>.first_sites``.
ROW_PART_FILES = ("persons", "activities", "first_sites")


@dataclass
class PartRowsOutcome:
    """What :class:`PartRowFiles` saw that the importing process must know."""

    untracked: bool = False  # a site of a structure the parser lost track of (no first sites then)
    bare_sites: int = 0  # activities at a site with none of the fields an activity shows


class PartRowFiles:
    """The second part of a first RPPS import into an empty PostgreSQL directory, written by the helper
    process as the directory's own rows (issue 6 item 18): ``COPY`` text files of the persons and
    activities of its lines, ready for the directory tables, and of the first site of each structure it
    saw (for the structures, which the importing process writes: a structure in both parts is the first
    part's). The importing process copies them in as they are (:meth:`PostgresStaging.merge_part_rows`)
    instead of staging the part and deriving its rows on its one connection after the parse: the
    rows are made on the helper's CPU while the importing process writes its own part.

    Each value is what the merge's SQL would give (``TRIM`` of spaces, ``NULLIF(..., '')``, the run's
    digest on its first line); the lines come from :func:`ror_sync.rpps.parse_rpps` with
    ``site_fields``. An activity at its structure's own site shows no site fields (the structure's
    coordinates); one at another site with none of those fields gets ``''`` as its site name, so that
    :meth:`PostgresStaging.merge_part_rows` tells it from the former (``bare_sites`` counts them)."""

    def __init__(self, base: str, *, line_offset: int, now: datetime) -> None:
        self._offset = int(line_offset)
        self._now = now.isoformat(" ")
        self._files = {
            name: open(f"{base}.{name}", "w", encoding="utf-8", newline="")  # noqa: SIM115
            for name in ROW_PART_FILES
        }
        self.outcome = PartRowsOutcome()

    def add(self, lines: Sequence[Sequence[Any]], sites: Sequence[Sequence[Any]] = ()) -> None:
        off, now, outcome = self._offset, self._now, self.outcome
        own = _SITE_OWN
        first_sites = []
        for r in sites:
            if r[own] == SITE_FIRST:
                first_sites.append(copy_text_row((r[0] + off, *r[1:])))
            elif r[own] == SITE_UNTRACKED:
                outcome.untracked = True
        persons = []
        activities = []
        for r in lines:
            (
                line_no, pf, nid, id_type, civility, family, given, search, pcode, prof, spec, mode,
                role, structure_id, site_line, h, *site,
            ) = r  # fmt: skip
            if pf == 1:
                persons.append(
                    copy_text_row(
                        (
                            nid, _trim(id_type), _trim(civility), family.strip(" "),
                            "" if given is None else given.strip(" "), search or "", _trim(pcode),
                            _trim(prof), "t", None, "rpps", h, None, now, now,
                        )
                    )
                )  # fmt: skip
            if site_line is not None:
                site = [value or None for value in site]
                if not any(site):
                    site[0] = ""
                    outcome.bare_sites += 1
            activities.append(
                copy_text_row(
                    (
                        line_no + off, nid, structure_id or None, _trim(pcode), _trim(prof),
                        _trim(spec), _trim(mode), _trim(role), *site, "rpps",
                    )
                )
            )  # fmt: skip
        self._files["first_sites"].writelines(first_sites)
        self._files["persons"].writelines(persons)
        self._files["activities"].writelines(activities)

    def close(self) -> None:
        for file in self._files.values():
            file.close()


_SITE_VALUES = ", ".join(
    c for c in (*SITE_COLUMNS, "own") if c != "line_no"
)  # own: see _first_structures_sql
_LINE_VALUES = [c for c in LINE_COLUMNS if c not in ("line_no", "site_line")]


def _absorb_sql(line_offset: int, *, conflicts: bool) -> list[str]:
    """Copy a part's staging (numbered from 1) after ``line_offset`` lines.

    The part's process took the first site it saw for a structure as the structure's own; when the
    structure appeared earlier with other coordinates, the part's lines that relied on that must point
    to their site explicitly (``stg_conflicts``).
    """
    off = int(line_offset)
    differs = " OR ".join(f"p.{c} IS NOT t.{c}" for c in SITE_COLUMNS if c not in ("line_no",))
    first = (
        "SELECT structure_id, MIN(line_no) AS first_line FROM {t} WHERE structure_id IS NOT NULL "
        "AND structure_id <> '' GROUP BY structure_id"
    )
    site_line = (
        f"COALESCE(l.site_line + {off}, (SELECT c.line_no FROM stg_conflicts c "
        "WHERE c.structure_id = l.structure_id))"
        if conflicts
        else f"l.site_line + {off}"
    )
    return [
        "CREATE TEMP TABLE stg_conflicts (structure_id TEXT PRIMARY KEY, line_no BIGINT)",
        f"INSERT INTO stg_conflicts SELECT p.structure_id, p.line_no + {off} "
        f"FROM part.stg_sites p JOIN ({first.format(t='part.stg_sites')}) pf "
        f"ON p.line_no = pf.first_line JOIN ({first.format(t='temp.stg_sites')}) tf "
        "ON tf.structure_id = p.structure_id JOIN temp.stg_sites t ON t.line_no = tf.first_line "
        f"WHERE {differs}",
        f"INSERT INTO temp.stg_sites (line_no, {_SITE_VALUES}) SELECT line_no + {off}, {_SITE_VALUES} "
        "FROM part.stg_sites",
        f"INSERT INTO temp.stg_lines (line_no, site_line, {', '.join(_LINE_VALUES)}) "
        f"SELECT l.line_no + {off}, {site_line}, {', '.join('l.' + c for c in _LINE_VALUES)} "
        "FROM part.stg_lines l",
    ]


def _tracked_conflicts_sql(line_offset: int) -> list[str]:
    """SQLite: the first two statements of :func:`_absorb_sql` when the parser kept track of every
    structure of both parts (no ``SITE_UNTRACKED`` site): each part marked its structures' first sites
    (``SITE_FIRST``), so the structures in both parts (``stg_both``, which a first import's structures
    use too, see :func:`_first_structures_sql`) come from those sites alone, compared first site to
    first site, instead of grouping every site of either part by structure (1.8 s of a 2M-line liberal
    extract, issue 6 item 18)."""
    off = int(line_offset)
    differs = " OR ".join(f"p.{c} IS NOT t.{c}" for c in SITE_COLUMNS if c not in ("line_no",))
    return [
        "CREATE TEMP TABLE stg_both (structure_id TEXT PRIMARY KEY)",
        f"INSERT INTO stg_both SELECT structure_id FROM part.stg_sites WHERE own = {SITE_FIRST} "
        f"INTERSECT SELECT structure_id FROM temp.stg_sites WHERE own = {SITE_FIRST}",
        "CREATE TEMP TABLE stg_conflicts (structure_id TEXT PRIMARY KEY, line_no BIGINT)",
        f"INSERT INTO stg_conflicts SELECT p.structure_id, p.line_no + {off} FROM stg_both b "
        f"JOIN part.stg_sites p ON p.structure_id = b.structure_id AND p.own = {SITE_FIRST} "
        f"JOIN temp.stg_sites t ON t.structure_id = b.structure_id AND t.own = {SITE_FIRST} WHERE {differs}",
    ]


def _pg_absorb_conflicts_sql(line_offset: int) -> list[str]:
    """PostgreSQL: once a part's rows are copied after ``line_offset`` lines, its lines that rely on a
    structure's own site the part saw first, while the structure appeared earlier with other
    coordinates, point to that site explicitly (the second statement of :func:`_absorb_sql`)."""
    off = int(line_offset)
    differs = " OR ".join(f"p.{c} IS DISTINCT FROM t.{c}" for c in SITE_COLUMNS if c not in ("line_no",))
    # Only structures in both halves can differ (few of them when most structures have one line): their
    # first site on each side, in one sort, instead of grouping every site of either half.
    both = (
        f"SELECT structure_id FROM stg_sites WHERE line_no > {off} AND structure_id <> '' INTERSECT "
        f"SELECT structure_id FROM stg_sites WHERE line_no <= {off} AND structure_id <> ''"
    )
    return [
        # Kept until the end of the import: the first import's structures use it (_first_structures_sql).
        f"CREATE TEMP TABLE stg_both ON COMMIT DROP AS {both}",
        "ANALYZE stg_both",
        f"CREATE TEMP TABLE stg_conflicts ON COMMIT DROP AS WITH b AS (SELECT * FROM stg_both), "
        f"f AS (SELECT DISTINCT ON (s.structure_id, s.line_no > {off}) s.*, s.line_no > {off} AS in_part "
        f"FROM stg_sites s JOIN b ON b.structure_id = s.structure_id "
        f"ORDER BY s.structure_id, s.line_no > {off}, s.line_no) "
        "SELECT p.structure_id, p.line_no FROM f p JOIN f t ON t.structure_id = p.structure_id "
        f"AND NOT t.in_part WHERE p.in_part AND ({differs})",
        "UPDATE stg_lines l SET site_line = c.line_no FROM stg_conflicts c "
        f"WHERE l.line_no > {off} AND l.site_line IS NULL AND l.structure_id = c.structure_id",
        "DROP TABLE stg_conflicts",
    ]


# An import staging more lines than this, and more than twice the activities the directory holds, is a
# bulk load: secondary indexes (and, on PostgreSQL, the activities' foreign key) are rebuilt at the end.
BULK_LOAD_MIN_LINES = 100_000


def _secondary_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Explicit indexes of the directory tables the merge fills (autoindexes of keys excluded, and
    partial ones: bulk rows do not enter them, and rebuilding one would scan its whole table)."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
        "('directory_persons', 'directory_activities', 'directory_structures') "
        "AND sql NOT LIKE '% WHERE %'"
    ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


def _count(result: MergeResult, counter: str | None, rowcount: int) -> None:
    """Add a step's rowcount to the count it feeds (a first import on PostgreSQL writes its rows in two
    rounds, :meth:`PostgresStaging.merge_ahead`)."""
    if counter == "activities":
        result.activities_written += rowcount
    elif counter == "persons_deactivated":
        result.persons.deactivated = rowcount
    elif counter == "structures_deactivated":
        result.structures.deactivated = rowcount
    elif counter == "persons_added":
        result.persons.seen = result.persons.added = result.persons.added + rowcount
    elif counter == "structures_added":
        result.structures.seen = result.structures.added = result.structures.added + rowcount


def _rowcount(status: Any) -> int:
    """The rows an asyncpg command status tells of (``INSERT 0 12``, ``COPY 12``, ``UPDATE 12``)."""
    return int(str(status).rsplit(" ", 1)[-1])


def _uncount_writes(result: MergeResult) -> None:
    """Forget the rows counted by writes a rollback to a savepoint undid."""
    result.activities_written = 0
    result.persons.seen = result.persons.added = 0
    result.structures.seen = result.structures.added = 0


# Secondary indexes of the directory tables (not keys, not partial ones), with their definitions.
_PG_SECONDARY_INDEXES = (
    "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
    "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.schemaname = current_schema() AND i.tablename IN "
    "('directory_persons', 'directory_activities', 'directory_structures') "
    "AND NOT x.indisprimary AND NOT x.indisunique AND x.indpred IS NULL"
)
# Keys dropped by a bulk load and added back once at its end (see PostgresStaging._drop_for_bulk_load),
# as (table, name, definition, kind): the activities' foreign keys (to their person), and for each
# directory table that is empty before the load ($1), its primary key and the foreign keys of any table
# that reference it (they depend on that key's index). Adding a foreign key back checks every row with
# one join instead of a trigger call per row; a primary key is built from one sort instead of a btree
# insertion (and its WAL record) per row.
_PG_BULK_LOAD_KEYS = (
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype::text FROM pg_constraint "
    "WHERE (contype = 'f' AND conrelid = 'directory_activities'::regclass) "
    "OR (contype = 'f' AND confrelid = ANY($1::regclass[])) "
    "OR (contype = 'p' AND conrelid = ANY($1::regclass[])) "
    "ORDER BY contype, conrelid::regclass::text, conname"
)
# The staging tables (hundreds of MB for a 2M-line extract) live in the session's temporary buffers, and
# the merge's joins, sorts and index builds run over them: in memory rather than through 8 MB of buffers
# and 4 MB sorts spilled to disk (server defaults). temp_buffers only takes effect before the session's
# first temporary table, and is a ceiling (buffers are allocated as used); the others hold for this
# transaction only. Server memory, not the importing process's.
_PG_IMPORT_SETTINGS = (
    "SET temp_buffers = '256MB'",
    # The first import's hashes and sorts (1.5M persons, 1.7M sites, 2M lines of a liberal extract)
    # stay in memory instead of spilling 150 to 290 MB each to temporary files (issue 6 item 18).
    "SET LOCAL work_mem = '256MB'",
    "SET LOCAL maintenance_work_mem = '256MB'",
    # A few large statements, each run once: compiling them (up to 0.8 s each with inlining and
    # optimisation, 2M-line extract) costs more than it saves.
    "SET LOCAL jit = off",
    # The import's commit does not wait for its WAL to reach the disk: a crash right after it can lose
    # that commit (the directory stays as it was, the import is re-run), never corrupt anything.
    "SET LOCAL synchronous_commit = off",
)


# A first RPPS import's statements filter and join the staging on these columns only: statistics of
# the others (names, addresses) would cost their sampling and nothing else.
_PG_FIRST_IMPORT_ANALYZE = (
    "ANALYZE stg_lines (line_no, pf, act, site_line)",
    "ANALYZE stg_sites (line_no, own, structure_id)",
)

_PG_STAGING_INDEXES = (
    "CREATE INDEX ON stg_lines (line_no)",
    "CREATE INDEX ON stg_lines (national_id)",
    "CREATE INDEX ON stg_sites (line_no)",
)


# After activities that took their lines' numbers as ids: the id sequence goes on after them.
_MOVE_ACTIVITY_IDS = (
    "SELECT setval(pg_get_serial_sequence('directory_activities', 'id'), MAX(id)) "
    "FROM directory_activities HAVING MAX(id) > COALESCE(pg_sequence_last_value("
    "CAST(pg_get_serial_sequence('directory_activities', 'id') AS regclass)), 0)"
)


@dataclass
class _Ahead:
    """What :meth:`PostgresStaging.merge_ahead` wrote: the rows of the lines up to ``upto``."""

    upto: int
    rebuild: list[str]
    keyless: frozenset[str]
    result: MergeResult
    now: datetime


async def pg_directory_is_empty(database_url: str) -> bool:
    """No person, structure or activity in a PostgreSQL directory (a first import is coming)."""
    conn = await _pg_connect(database_url)
    try:
        for probe in (_ANY_PERSON, _ANY_STRUCTURE, _ANY_ACTIVITY):
            if await conn.fetchval(probe) is not None:
                return False
        return True
    finally:
        await conn.close()


async def _pg_connect(database_url: str) -> Any:
    import asyncpg
    from sqlalchemy.engine import make_url  # here: the parsing helper process never loads SQLAlchemy

    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )


class PostgresStaging:
    """Bulk staging + merge on PostgreSQL through asyncpg ``COPY``, in a single transaction."""

    dialect: Dialect = "postgresql"

    def __init__(self, conn: Any, staging_format: StagingFormat) -> None:
        self._conn = conn
        self._format = staging_format
        self._tx: Any = None
        self._staged = 0
        self._structs = 0
        self._part_offset: int | None = None  # where the lines taken in by ``absorb`` start
        self._ahead: _Ahead | None = None

    @classmethod
    async def connect(
        cls, database_url: str, *, staging_format: StagingFormat = FHIR_FORMAT
    ) -> PostgresStaging:
        conn = await _pg_connect(database_url)
        self = cls(conn, staging_format)
        self._tx = conn.transaction()
        await self._tx.start()
        for ddl in (*_PG_IMPORT_SETTINGS, *_staging_ddl("postgresql")):
            await conn.execute(ddl)
        return self

    async def add(
        self,
        lines: Sequence[Sequence[Any]],
        sites: Sequence[Sequence[Any]] = (),
        structs: Sequence[Sequence[Any]] = (),
    ) -> None:
        """Stage rows in this source's :class:`StagingFormat` (structures: ``STRUCT_COLUMNS``)."""
        copy = self._conn.copy_records_to_table
        if sites:
            await copy("stg_sites", records=sites, columns=self._format.sites)
        if lines:
            await copy("stg_lines", records=lines, columns=self._format.lines)
            self._staged += len(lines)
        if structs:
            await copy("stg_structs", records=structs, columns=STRUCT_COLUMNS)
            self._structs += len(structs)

    async def absorb(self, base: str, *, line_offset: int, lines: int) -> None:
        """Take in the :class:`PartCopyFiles` of ``base`` (``lines`` lines, numbered after the
        ``line_offset`` lines staged here): the server reads them as they are. See
        :func:`_pg_absorb_conflicts_sql` for the structures the part saw first with other coordinates."""
        formats = {"stg_sites": self._format.sites, "stg_lines": self._format.lines}
        for table in COPY_PART_TABLES:
            await self._conn.copy_to_table(
                table,
                source=f"{base}.{table.removeprefix('stg_')}",
                columns=formats[table],
                format="text",
                delimiter="|",
            )
        for sql in _pg_absorb_conflicts_sql(int(line_offset)):
            await self._conn.execute(sql)
        self._staged += lines
        self._part_offset = int(line_offset)

    async def merge_ahead(
        self,
        *,
        source: Source,
        derive_structures: bool,
        upto: int,
        now: datetime | None = None,
        any_size: bool = False,
    ) -> bool:
        """A first RPPS import into an empty directory, while the helper process still parses the
        rest of the file: write the rows of the lines staged so far (numbered up to ``upto``) now, in
        this transaction, so that the server works on them while the helper parses on the other CPU
        (issue 6 item 18); :meth:`merge` writes the rest. Returns False (nothing done) when the
        import is not such a first import, or the parser lost track of a structure.

        What :meth:`merge` may have to redo (a person whose lines are apart, a structure the helper
        lost track of) starts from the empty tables again (``_start_over``): a rollback to a savepoint
        taken here would also undo the staging of the rest of the file, which comes after.

        ``now``: the rows' time (the helper's rows must have the same, see :class:`PartRowFiles`).
        ``any_size``: a bulk load (indexes and keys dropped, then rebuilt) even of a part no larger
        than ``BULK_LOAD_MIN_LINES``: what :meth:`merge_part_rows` needs."""
        conn = self._conn
        small = self._staged <= BULK_LOAD_MIN_LINES and not any_size
        if source != "rpps" or not derive_structures or self._staged == 0 or small:
            return False
        for probe in (_ANY_PERSON, _ANY_STRUCTURE, _ANY_ACTIVITY, _ANY_UNTRACKED_SITE):
            if await conn.fetchval(probe) is not None:
                return False
        for ddl in _PG_FIRST_IMPORT_ANALYZE:
            await conn.execute(ddl)
        rebuild, keyless = await self._drop_for_bulk_load(0, _DIRECTORY_TABLES, any_size=any_size)
        ahead = _Ahead(int(upto), rebuild, keyless, MergeResult(), now or datetime.now(UTC))
        steps = _apply_sql(
            "postgresql",
            source,
            full=True,
            deactivate_persons=False,
            first_structures=True,
            first_persons=True,
            keyless=keyless,
            runs=True,
            line_ids=True,
            first_sites=True,
        )
        await self._write(steps, [], ahead.now, ahead.result)
        self._ahead = ahead
        return True

    async def merge_part_rows(self, base: str, *, line_offset: int, bare_sites: int) -> MergeResult | None:
        """After :meth:`merge_ahead`, write the rows of the :class:`PartRowFiles` of ``base`` (the lines
        after ``line_offset``), restore what the bulk load dropped, and commit: the end of a first
        import whose helper made its part's rows. Returns None, with nothing of it written, when a
        person has lines in both parts (their lines are apart in the file, or the split fell among
        them): the persons' key refuses the person twice, and the caller stages the part and merges it
        as for any import (:meth:`absorb`, :meth:`merge`, which sums each person's lines).

        Of a structure in both parts, the first part's site is the structure's, as in one process; the
        helper's lines at the site it saw first for that structure then show that site's fields
        (``stg_conflicts``, :func:`_pg_absorb_conflicts_sql` for staged parts)."""
        from asyncpg.exceptions import UniqueViolationError

        conn = self._conn
        ahead = self._ahead
        assert ahead is not None, "merge_ahead first"
        result, now, off = ahead.result, ahead.now, int(line_offset)
        before = (result.persons.added, result.activities_written, result.structures.added)
        differs = " OR ".join(
            f"h.{c} IS DISTINCT FROM t.{c}" for c in SITE_COLUMNS if c not in ("line_no", "org_ref")
        )

        async def copy(table: str, name: str, columns: Sequence[str]) -> int:
            status = await conn.copy_to_table(
                table, source=f"{base}.{name}", columns=columns, format="text", delimiter="|"
            )
            return _rowcount(status)

        await conn.execute("SAVEPOINT part_rows")
        await conn.execute("CREATE TEMP TABLE stg_part_sites (LIKE stg_sites) ON COMMIT DROP")
        await copy("stg_part_sites", "first_sites", RPPS_SITE_COLUMNS)
        await conn.execute("ANALYZE stg_part_sites (structure_id)")
        # Kept until the end of the import: the structures below use it (_first_structures_sql).
        await conn.execute(
            "CREATE TEMP TABLE stg_both ON COMMIT DROP AS SELECT structure_id FROM stg_part_sites "
            f"INTERSECT SELECT structure_id FROM stg_sites WHERE own = {SITE_FIRST}"
        )
        await conn.execute("ANALYZE stg_both")
        await conn.execute(
            "CREATE TEMP TABLE stg_conflicts ON COMMIT DROP AS SELECT h.* FROM stg_both b "
            "JOIN stg_part_sites h ON h.structure_id = b.structure_id "
            f"JOIN stg_sites t ON t.structure_id = b.structure_id AND t.own = {SITE_FIRST} "
            f"WHERE {differs}"
        )
        added = await copy("directory_persons", "persons", PERSON_ROW_COLUMNS)
        result.persons.seen = result.persons.added = result.persons.added + added
        result.activities_written += await copy("directory_activities", "activities", ACTIVITY_ROW_COLUMNS)
        if await conn.fetchval("SELECT 1 FROM stg_conflicts LIMIT 1") is not None:
            # The helper's lines at its own first site of such a structure showed no site fields.
            await conn.execute(
                "UPDATE directory_activities a SET "
                + ", ".join(f"{c} = NULLIF(c.{c}, '')" for c in ACTIVITY_SITE_FIELDS)
                + f" FROM stg_conflicts c WHERE a.id > {off} AND a.structure_id = c.structure_id AND "
                + " AND ".join(f"a.{c} IS NULL" for c in ACTIVITY_SITE_FIELDS)
            )
        if bare_sites:
            await conn.execute(
                f"UPDATE directory_activities SET site_name = NULL WHERE id > {off} AND site_name = ''"
            )
        structures = _first_structures_sql(
            "postgresql", "rpps", keyless=True, first_sites=True, part_offset=off, sites="stg_part_sites"
        )
        status = await conn.execute(structures.replace(":now", "$1"), now)
        _count(result, "structures_added", _rowcount(status))
        try:
            for restore in ahead.rebuild:
                await conn.execute(restore)
        except UniqueViolationError as exc:
            if exc.constraint_name != "pk_directory_persons":
                raise
            logger.info("rpps import: a person's lines are not contiguous; merging by person")
            await conn.execute("ROLLBACK TO SAVEPOINT part_rows")
            result.persons.seen = result.persons.added = before[0]
            result.activities_written = before[1]
            result.structures.seen = result.structures.added = before[2]
            return None
        await conn.execute(_MOVE_ACTIVITY_IDS)
        result.activities = result.activities_written
        logger.info("rpps import: the second part written from the helper's rows")
        await self._tx.commit()
        self._tx = None
        return result

    async def merge(
        self,
        *,
        source: Source,
        full: bool,
        derive_structures: bool,
        guard: DeactivationGuard | None = DeactivationGuard(),
    ) -> MergeResult:
        """See :meth:`SqliteStaging.merge`; commits the single import transaction."""
        conn = self._conn
        ahead = self._ahead
        result = ahead.result if ahead is not None else MergeResult()
        now = ahead.now if ahead is not None else datetime.now(UTC)
        first_persons = ahead is not None or await conn.fetchval(_ANY_PERSON) is None
        # The staging's indexes serve the lookups of a directory that has rows (classification, FHIR
        # references); a first RPPS import only scans and hashes the staging: 2 to 4 s saved on 2M lines.
        first_rpps = first_persons and source == "rpps"
        preparation = (
            _PG_FIRST_IMPORT_ANALYZE
            if first_rpps
            else (*_PG_STAGING_INDEXES, "ANALYZE stg_lines", "ANALYZE stg_sites", "ANALYZE stg_structs")
        )
        for ddl in preparation:
            await conn.execute(ddl)
        if source == "fhir":
            for sql in _resolve_refs_sql():
                await conn.execute(sql)
            result.unresolved = [(int(r[0]), str(r[1])) for r in await conn.fetch(_UNRESOLVED)]
            await conn.execute(_DROP_UNRESOLVED)
        if not first_persons:
            await conn.execute(_classify_persons_sql(source))
            await conn.execute("ANALYZE stg_persons")
        deactivating = await self._deactivating(source, full, guard, result, first_persons=first_persons)
        first_structures = ahead is not None or (
            derive_structures and await conn.fetchval(_ANY_STRUCTURE) is None
        )
        if derive_structures and not first_structures:
            await conn.execute(_derive_structures_sql())
            await conn.execute("ANALYZE stg_structs")
        if ahead is not None:
            existing, rebuild, keyless = 0, ahead.rebuild, ahead.keyless
        else:
            existing = int(await conn.fetchval("SELECT COUNT(*) FROM directory_activities"))
            empty = [
                table
                for table, is_empty in (
                    ("directory_persons", first_persons),
                    ("directory_structures", first_structures),
                    ("directory_activities", existing == 0),
                )
                if is_empty
            ]
            rebuild, keyless = await self._drop_for_bulk_load(existing, empty)
        # The structures of a first import come from the sites the parser marked as their first, when
        # it could keep track of every structure (see _first_structures_sql).
        first_sites = first_structures and await conn.fetchval(_ANY_UNTRACKED_SITE) is None
        steps = functools.partial(
            _apply_sql,
            "postgresql",
            source,
            full=full,
            deactivate_persons=deactivating > 0,
            first_structures=first_structures,
            first_persons=first_persons,
            keyless=keyless,
            line_ids=existing == 0,
            first_sites=first_sites,
            part_offset=self._part_offset,
        )
        # A first RPPS import takes the persons from their runs' first lines (see _person_steps).
        await self._write_all(
            steps,
            runs=first_persons and source == "rpps",
            first_sites=first_sites,
            rebuild=rebuild,
            now=now,
            result=result,
        )
        if existing == 0:
            # The activities took their lines' numbers as ids: the sequence goes on after them.
            await conn.execute(_MOVE_ACTIVITY_IDS)
        _tally_persons(await conn.fetch(_COUNT_PERSONS), result, first=first_persons)
        if not first_structures:
            _tally(await conn.fetch(_COUNT_STRUCTS), result.structures)
        await self._tx.commit()
        self._tx = None
        return result

    async def _write_all(
        self,
        steps: Callable[..., list[tuple[str, str | None, bool]]],
        *,
        runs: bool,
        first_sites: bool,
        rebuild: list[str],
        now: datetime,
        result: MergeResult,
    ) -> None:
        """Write the rows ``steps(runs=..., after_line=...)`` gives (those after merge_ahead's, if it
        ran), then restore what the bulk load dropped. With ``runs``, a file whose persons' lines are
        not contiguous makes the persons' key refuse the duplicates: the merge starts over without
        ``runs``, summing each person's lines; likewise, after merge_ahead, when the helper lost track
        of a structure (``first_sites`` then false: every structure from a grouping of the sites)."""
        from asyncpg.exceptions import UniqueViolationError

        ahead = self._ahead
        after_line = ahead.upto if ahead is not None else None
        if runs:
            await self._conn.execute("SAVEPOINT person_runs")
        if ahead is not None and not first_sites:
            await self._start_over(result)
            after_line = None
        while True:
            try:
                await self._write(steps(runs=runs, after_line=after_line), rebuild, now, result)
                return
            except UniqueViolationError as exc:
                if not runs or exc.constraint_name != "pk_directory_persons":
                    raise
                logger.info("rpps import: a person's lines are not contiguous; merging by person")
                await self._start_over(result)
                runs, after_line = False, None

    async def _start_over(self, result: MergeResult) -> None:
        """Undo the merge's writes so far (with ``runs``): back to the savepoint taken before them (a
        failed statement leaves the transaction usable again), and, after :meth:`merge_ahead`, to the
        empty tables it started from (the staging stays)."""
        await self._conn.execute("ROLLBACK TO SAVEPOINT person_runs")
        if self._ahead is not None:
            await self._conn.execute(f"TRUNCATE {', '.join(_DIRECTORY_TABLES)}")
        _uncount_writes(result)

    async def _write(
        self,
        steps: list[tuple[str, str | None, bool]],
        rebuild: list[str],
        now: datetime,
        result: MergeResult,
    ) -> None:
        """Run the merge's writes, then restore what the bulk load dropped (indexes, keys)."""
        conn = self._conn
        for sql, counter, needs_now in steps:
            if needs_now:
                status = await conn.execute(sql.replace(":now", "$1"), now)
            else:
                status = await conn.execute(sql)
            if sql.startswith("INSERT INTO stg_"):
                await conn.execute(f"ANALYZE {sql.split()[2]}")
            _count(result, counter, _rowcount(status))
        for restore in rebuild:
            await conn.execute(restore)

    async def _deactivating(
        self,
        source: Source,
        full: bool,
        guard: DeactivationGuard | None,
        result: MergeResult,
        *,
        first_persons: bool,
    ) -> int:
        """See :meth:`SqliteStaging._deactivating`."""
        if not full:
            return 0
        active_sql, kept_sql = _guard_sql(source)
        # After merge_ahead, the active persons are those it wrote: the directory had none.
        active = 0 if self._ahead is not None else int(await self._conn.fetchval(active_sql))
        kept = 0 if first_persons else int(await self._conn.fetchval(kept_sql))
        empty = self._staged == 0 and self._structs == 0
        return _check_guard(source, active, kept, guard, result, empty=empty)

    async def _drop_for_bulk_load(
        self, existing: int, empty: Sequence[str], *, any_size: bool = False
    ) -> tuple[list[str], frozenset[str]]:
        """When the import loads much more than the directory holds (a first import), drop what is
        cheaper to rebuild once than to maintain row by row; returns the statements that restore it, and
        the tables of ``empty`` (directory tables without a row before this import) left without their
        primary key meanwhile.

        As on SQLite, rebuilding the secondary indexes from a sort beats inserting into them row by row.
        The activities' foreign key likewise: one trigger call per inserted row costs more than one join
        of the whole table when it is added back. The primary key of a table that was empty likewise
        (with the foreign keys of other tables that reference it, which need its index: they check
        nothing while it is empty); it is added back before them. All of this happens in the import's
        transaction: had a key failed to build, the import would fail and roll back with it. Dropping an
        index or a key locks its table until commit (and the tables whose foreign keys are dropped: the
        accounts and requests that reference the directory): this is the first import, before anyone
        can use the directory."""
        conn = self._conn
        if not any_size and self._staged <= max(BULK_LOAD_MIN_LINES, 2 * existing):
            return [], frozenset()
        indexes = [(str(r[0]), str(r[1])) for r in await conn.fetch(_PG_SECONDARY_INDEXES)]
        keys = [
            (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
            for r in await conn.fetch(_PG_BULK_LOAD_KEYS, list(empty))
        ]
        foreign = [k for k in keys if k[3] == "f"]
        primary = [k for k in keys if k[3] == "p"]
        for name, _sql in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        for table, name, _definition, _kind in (*foreign, *primary):  # the keys the others need last
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        restore = [
            *(sql for _name, sql in indexes),
            *(
                f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
                for table, name, definition, _kind in (*primary, *foreign)
            ),
        ]
        return restore, frozenset(table for table, *_rest in primary)

    async def close(self) -> None:
        if self._tx is not None:
            await self._tx.rollback()
            self._tx = None
        await self._conn.close()
