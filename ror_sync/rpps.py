"""Streaming parser of the RPPS extract ``PS_LibreAcces_Personne_activite_<horodatage>.txt``.

The file is ``|``-separated with one header line, every line ending with an extra ``|``; one line per
(professional x activity). Columns are found **by header name**, never by position: the classic layout
has 52 columns, the newer one 56 and spells a few headers differently (``Libellé civilité exercice``,
``Code département (coord. structure)``...). Headers are compared after removing case, accents and
punctuation, and each field accepts several aliases.

The file is read in large binary chunks cut at a line end and decoded as UTF-8 a chunk at a time; a chunk
that is not valid UTF-8 is decoded line by line, each invalid line as Windows-1252 (older extracts were
Latin-1), so a file mixing both still imports. LF and CRLF line ends are both accepted.

The parser yields staging rows (``coordination.directory.store.RPPS_FORMAT``) in batches and never keeps
more than one batch plus a bounded cache of the sites already staged: memory does not grow with the file.
A site (structure key, name, address, phone...) repeated on many lines is staged once; the lines point to
it (``site_line``), and a person's fields ride only on their first line, with the digest of the whole run
of the person's lines (``coordination.directory.store``, "Staging rows"); a batch never cuts a run.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import IO, Any, NamedTuple
from zlib import adler32, crc32

from coordination.directory.rules import (
    department_from_postal_code,
    national_id_problem,
    person_search_name,
    search_key,
)
from coordination.directory.store import (
    ACTIVITY_SITE_FIELDS,
    RPPS_LINE_COLUMNS,
    RPPS_SITE_COLUMNS,
    SITE_FIRST,
    SITE_OTHER,
    SITE_UNTRACKED,
)
from ror_sync.report import Rejections

# The classic 52-column header (order of the public extract) and the newer 56-column one, which spells a
# few headers differently and adds four columns. The parser needs neither order: they document the
# format and let tests, the demo data and the benchmark write faithful files.
CLASSIC_HEADERS: tuple[str, ...] = (
    "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP",
    "Code civilité d'exercice", "Libellé civilité d'exercice", "Code civilité", "Libellé civilité",
    "Nom d'exercice", "Prénom d'exercice", "Code profession", "Libellé profession",
    "Code catégorie professionnelle", "Libellé catégorie professionnelle",
    "Code type savoir-faire", "Libellé type savoir-faire", "Code savoir-faire", "Libellé savoir-faire",
    "Code mode exercice", "Libellé mode exercice", "Numéro SIRET site", "Numéro SIREN site",
    "Numéro FINESS site", "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure", "Raison sociale site", "Enseigne commerciale site",
    "Complément destinataire (coord. structure)", "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)", "Indice répétition voie (coord. structure)",
    "Code type de voie (coord. structure)", "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)", "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)", "Code postal (coord. structure)",
    "Code commune (coord. structure)", "Libellé commune (coord. structure)",
    "Code pays (coord. structure)", "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)", "Téléphone 2 (coord. structure)", "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)", "Code Département (structure)",
    "Libellé Département (structure)", "Ancien identifiant de la structure",
    "Autorité d'enregistrement", "Code secteur d'activité", "Libellé secteur d'activité",
    "Code section tableau pharmaciens", "Libellé section tableau pharmaciens",
)  # fmt: skip
_RENAMED_IN_NEW_LAYOUT = {
    "Libellé civilité d'exercice": "Libellé civilité exercice",
    "Indice répétition voie (coord. structure)": "Indice répétition voie (coord. Structure)",
    "Code Département (structure)": "Code département (coord. structure)",
    "Libellé Département (structure)": "Libellé département (coord. structure)",
}
NEW_HEADERS: tuple[str, ...] = (
    *(_RENAMED_IN_NEW_LAYOUT.get(h, h) for h in CLASSIC_HEADERS),
    *("Code fonction", "Libellé fonction", "Code genre d'activité", "Libellé genre d'activité"),
)


def format_line(headers: tuple[str, ...], values: dict[str, str]) -> str:
    """One extract line (with its trailing ``|``) from ``{header: value}``; missing headers are empty."""
    return "|".join(values.get(h, "") for h in headers) + "|"


class RppsFormatError(Exception):
    """The file cannot be read as an RPPS extract at all (bad header): nothing is imported."""


def normalise_header(name: str) -> str:
    """``"Libellé commune (coord. structure)"`` -> ``"libelle commune coord structure"``."""
    return search_key(name.replace("\ufeff", "")).lower()


# canonical field -> accepted header spellings (classic 52-column layout first, then newer variants).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "id_type": ("Type d'identifiant PP",),
    "national_id": ("Identification nationale PP", "Identifiant national PP", "idNatPS"),
    "civility_ex_label": ("Libellé civilité d'exercice", "Libellé civilité exercice"),
    "civility_label": ("Libellé civilité",),
    "family_name": ("Nom d'exercice", "Nom d'exercice PP"),
    "given_name": ("Prénom d'exercice", "Prénom d'exercice PP"),
    "profession_code": ("Code profession",),
    "profession": ("Libellé profession",),
    "specialty": ("Libellé savoir-faire", "Libellé savoir faire"),
    "specialty_code": ("Code savoir-faire", "Code savoir faire"),
    "mode": ("Libellé mode exercice", "Libellé mode d'exercice"),
    "mode_code": ("Code mode exercice", "Code mode d'exercice"),
    "siret": ("Numéro SIRET site",),
    "finess": ("Numéro FINESS site",),
    "technical_id": ("Identifiant technique de la structure",),
    "site_name": ("Raison sociale site",),
    "site_sign": ("Enseigne commerciale site",),
    "street_number": ("Numéro Voie (coord. structure)",),
    "street_repeat": ("Indice répétition voie (coord. structure)",),
    "street_type": ("Libellé type de voie (coord. structure)",),
    "street": ("Libellé Voie (coord. structure)",),
    "address_more": ("Complément point géographique (coord. structure)",),
    "distribution": ("Mention distribution (coord. structure)",),
    "cedex": ("Bureau cedex (coord. structure)",),
    "postal_code": ("Code postal (coord. structure)",),
    "city": ("Libellé commune (coord. structure)",),
    "phone": ("Téléphone (coord. structure)",),
    "email": ("Adresse e-mail (coord. structure)", "Adresse email (coord. structure)"),
    "department": (
        "Code Département (structure)",
        "Code département (coord. structure)",
        "Code département (structure)",
    ),
    "role": ("Libellé fonction",),
    "sector": ("Libellé secteur d'activité",),
}
REQUIRED = ("national_id", "family_name", "given_name", "profession_code")
_FRENCH_NAME = {field: aliases[0] for field, aliases in HEADER_ALIASES.items()}


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each canonical field sits in this file, and how many fields a line must have."""

    index: dict[str, int]
    width: int  # fields per line once split on "|", trailing empty one included
    trailing: bool  # the header ends with "|" (it always does in real extracts)


def read_layout(header: str, *, file: str) -> Layout:
    names = header.rstrip("\r\n").split("|")
    trailing = len(names) > 1 and names[-1].strip() == ""
    positions = {normalise_header(n): i for i, n in enumerate(names) if n.strip()}
    index: dict[str, int] = {}
    for field_name, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            pos = positions.get(normalise_header(alias))
            if pos is not None:
                index[field_name] = pos
                break
    missing = [_FRENCH_NAME[f] for f in REQUIRED if f not in index]
    if missing:
        raise RppsFormatError(
            f"{file}:1: en-tête : colonne(s) {', '.join(f'« {m} »' for m in missing)} absente(s) ; "
            "ce fichier n'est pas une extraction PS_LibreAcces_Personne_activite (vérifiez le fichier "
            "et son séparateur « | »)."
        )
    return Layout(index=index, width=len(names), trailing=trailing)


_PERSON_FIELDS = ("id_type", "civility_ex_label", "civility_label", "family_name", "given_name")
_ACTIVITY_FIELDS = (
    "profession_code",
    "profession",
    "specialty",
    "specialty_code",
    "mode",
    "mode_code",
    "role",
)
_SITE_FIELDS = (
    "finess", "siret", "technical_id", "site_name", "site_sign", "street_number", "street_repeat",
    "street_type", "street", "address_more", "distribution", "cedex", "postal_code", "city", "phone",
    "email", "department",
)  # fmt: skip

# Names and site names repeat a lot: bounded caches (memory stays flat) spare the accent folding.
_person_key = lru_cache(maxsize=1 << 16)(person_search_name)
_site_key = lru_cache(maxsize=1 << 16)(search_key)

CHUNK_BYTES = 1 << 20
# Structures whose site has been staged: structure key -> hash of the columns of its first site in the
# file, which the merge turns into the structure. An open-addressing table in two arrays of 64-bit
# integers (16 bytes a slot, 32 MB in all, against ~100 bytes an entry in a dict of int objects: an
# extract where nearly every line has a structure of its own fills it with structures seen once, issue 6
# item 18), filled up to 3/4: 1.5 million structures, more than half of a 2M-line liberal extract holds.
# Never evicted (that would make a later line look like the structure's own site when it may not be):
# past that many structures, lines of structures not yet seen carry their site like any other line
# (exact, only slower: on PostgreSQL, a first import then groups every site by structure).
STRUCTURE_SLOTS = 1 << 21
# Other sites already staged (a structure's site that differs from its first one, a line without a
# structure). Bounded, emptied when full: a site seen again is then simply staged once more.
SITE_CACHE_ENTRIES = 1 << 16
_LUHN_DOUBLE_BYTES = bytes.maketrans(b"0123456789", b"0246813579")
# A line's digest is 48 bits: CRC-32 of the line, seeded with this version, and 16 bits of its Adler-32.
# It only has to tell a changed line from the same line (a person's fingerprint is the sum of theirs).
# Change the version when the way a line becomes directory rows changes, so that the next import
# rewrites every person instead of calling them unchanged.
_DIGEST_SEED = crc32(b"rpps-line-1")


class RppsBatch(NamedTuple):
    """Staging rows in ``RPPS_FORMAT``: lines, and the sites first seen in them."""

    lines: list[tuple[Any, ...]]
    sites: list[tuple[Any, ...]]


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # 5 bytes are undefined in Windows-1252; Latin-1 decodes anything
        return raw.decode("latin-1")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte UTF-8 sequence never contains b"\n": splitting the bytes on it is safe.
        return "\n".join(map(_decode_line, data.split(b"\n")))


def _chunks(stream: IO[bytes], limit: int | None) -> Iterator[tuple[list[str], int]]:
    """(lines without their line end, bytes read so far), a large chunk of the file at a time: decoding
    and splitting run in C over the whole chunk. Reads at most ``limit`` bytes when given."""
    rest = b""
    consumed = 0
    while True:
        size = CHUNK_BYTES if limit is None else min(CHUNK_BYTES, limit - consumed)
        data = stream.read(size) if size > 0 else b""
        if not data:
            break
        consumed += len(data)
        if rest:
            data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: keep reading
            rest = data
            continue
        rest = data[cut:]
        text = _decode(data[:cut] if rest else data)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        lines.pop()  # the empty string after the chunk's last "\n"
        yield lines, consumed
    if rest:
        yield [_decode(rest).removesuffix("\r")], consumed


def _site_row(line_no: int, structure_id: str, raw: tuple[str, ...], own: int) -> tuple[Any, ...]:
    (
        finess, siret, _, site, sign, num, rep, stype, street, more, distrib, cedex, postal, city, phone,
        email, dep,
    ) = map(str.strip, raw)  # fmt: skip
    site = site or sign
    address = " ".join(filter(None, (num, rep, stype, street, more)))
    if distrib:
        address = f"{address}, {distrib}" if address else distrib
    if not city and cedex:  # "06000 NICE" when the commune column is empty
        city = cedex[6:] if postal and cedex[:5] == postal else cedex
    return (
        line_no, structure_id, site, _site_key(site) if site else "", finess, siret, address, postal,
        city, dep or department_from_postal_code(postal), phone, email, own,
    )  # fmt: skip


@dataclass
class ParsePosition:
    """Where a parse stopped: the number of the last line read (the header is line 1)."""

    line_no: int = 0


def read_header(stream: IO[bytes]) -> str:
    """The first line of an extract, decoded (for a parse that starts further in the file)."""
    return _decode_line(stream.readline()).rstrip("\r\n")


class _Columns:
    """Where a file's fields are, once its header is read: the parse's setup, out of its hot loop."""

    def __init__(self, header: str, *, file: str) -> None:
        if not header.strip():
            raise RppsFormatError(f"{file}:1: fichier vide : aucun en-tête RPPS.")
        layout = read_layout(header, file=file)
        self.file = file
        self.width = width = layout.width
        self.trailing = layout.trailing
        self.expected = width - 1 if layout.trailing else width  # columns as a person counts them
        index = layout.index
        # Absent optional columns read the sentinel "" appended at index ``width`` of every line.
        self.activity_get = itemgetter(*(index.get(name, width) for name in _ACTIVITY_FIELDS))
        self.person_get = itemgetter(*(index.get(name, width) for name in _PERSON_FIELDS))
        self.site_get = itemgetter(*(index.get(name, width) for name in _SITE_FIELDS))
        # The site columns sit side by side in both layouts: the slice covering them (a few unused
        # columns in between do no harm) identifies a site without picking its columns one by one.
        site_positions = [index[name] for name in _SITE_FIELDS if name in index] or [width]
        self.site_from, self.site_to = min(site_positions), max(site_positions) + 1
        self.i_nid = index["national_id"]
        self.i_family = index["family_name"]
        self.i_finess, self.i_siret, self.i_tech = (
            index.get(n, width) for n in ("finess", "siret", "technical_id")
        )

    def misfit(self, fields: list[str], line: str, line_no: int, rejections: Rejections) -> bool:
        """A line that does not split into ``width`` fields: True when it is still usable (``fields``
        completed in place), False when it is blank or rejected."""
        n = len(fields)
        if n == 1 and not line.strip():
            return False  # blank line (e.g. at the end of the file)
        if self.trailing and n == self.width - 1:
            fields.append("")  # the line lacks its final "|": same columns, accept it
            return True
        got = n - 1 if line.endswith("|") else n
        rejections.add(
            self.file,
            line_no,
            f"{got} colonnes au lieu de {self.expected} (séparateur « | » en trop ou manquant)",
        )
        return False


class _Sites:
    """Which sites are already staged, so that a site repeated on many lines is staged once.

    Most lines exercise at their structure's own site (the one the merge derives the structure from):
    they stage the structure key only, and show the structure's coordinates. A line whose site differs
    points to its own site row (``site_line``)."""

    __slots__ = ("_columns", "_keys", "_mask", "_owns", "_room", "_sites", "new")

    def __init__(self, columns: _Columns) -> None:
        self._columns = columns
        # Structure key hash (0: empty slot) -> hash of its own site's columns, in STRUCTURE_SLOTS slots
        # (a site's columns include its key: two structures can only share an entry if their site
        # hashes collide too, a 2**-64 chance).
        self._keys = array("q", bytes(8 * STRUCTURE_SLOTS))
        self._owns = array("q", bytes(8 * STRUCTURE_SLOTS))
        self._mask = STRUCTURE_SLOTS - 1
        self._room = STRUCTURE_SLOTS * 3 // 4
        # Other sites already staged: hash of their columns -> their line << 32 | CRC-32 of the
        # columns. Integers keep the cache small; the CRC confirms a hit (a 2**-96 chance otherwise).
        self._sites: dict[int, int] = {}
        self.new: list[tuple[Any, ...]] = []  # site rows first seen since the last batch

    def place(self, f: list[str], line_no: int) -> tuple[str, int | None]:
        """(structure key, line of the site row to show, or None for the structure's own site)."""
        c = self._columns
        site_text = "|".join(f[c.site_from : c.site_to])
        site_hash = hash(site_text)
        finess, siret, tech = f[c.i_finess], f[c.i_siret], f[c.i_tech]
        if finess:  # rules.rpps_structure_key, inlined: it runs for every line
            structure_id = "finess:" + finess.strip()
        elif siret:
            structure_id = "siret:" + siret.strip()
        elif tech:
            structure_id = "rpps-struct:" + tech.strip()
        else:
            structure_id = ""
        own = SITE_OTHER
        if structure_id:
            keys = self._keys
            key = hash(structure_id) or 1
            slot = key & self._mask
            while True:  # linear probing
                found = keys[slot]
                if found == key:
                    if self._owns[slot] == site_hash:
                        return structure_id, None
                    break
                if found == 0:  # not seen yet: its site is the structure's own, if there is room
                    if self._room:
                        self._room -= 1
                        keys[slot] = key
                        self._owns[slot] = site_hash
                        self.new.append(_site_row(line_no, structure_id, c.site_get(f), SITE_FIRST))
                        return structure_id, None
                    own = SITE_UNTRACKED
                    break
                slot = (slot + 1) & self._mask
        site_check = crc32(site_text.encode())
        known = self._sites.get(site_hash)
        if known is not None and known & 0xFFFFFFFF == site_check:
            return structure_id, known >> 32
        self.new.append(_site_row(line_no, structure_id, c.site_get(f), own))
        if len(self._sites) >= SITE_CACHE_ENTRIES:
            self._sites.clear()
        self._sites[site_hash] = line_no << 32 | site_check
        return structure_id, line_no


# Where a staged line carries the digest of its person's run (see _parse_lines).
_H = RPPS_LINE_COLUMNS.index("h")
# With ``site_fields``: the site fields an activity shows, picked from a site row (_site_row, in
# RPPS_SITE_COLUMNS order), and those of a line at its structure's own site (the structure's coordinates).
_ACTIVITY_SITE = itemgetter(*(RPPS_SITE_COLUMNS.index(c) for c in ACTIVITY_SITE_FIELDS))
_OWN_SITE: tuple[Any, ...] = (None,) * len(ACTIVITY_SITE_FIELDS)


def _fast_nid_problem(nid: str) -> str | None:
    """``national_id_problem``, with a fast path for the usual "8" + 11-digit RPPS number: its Luhn key
    computed on the bytes (0.8 us a call against 8.7 us for ``stdnum.luhn``; it runs once a person)."""
    b = nid.encode()
    if (
        len(b) == 12
        and b[0] == 56
        and b.isdigit()
        and (sum(b[1::2]) + sum(b[2::2].translate(_LUHN_DOUBLE_BYTES)) - 528) % 10 == 0
    ):
        return None
    return national_id_problem(nid)


def parse_rpps(
    stream: IO[bytes],
    *,
    file: str,
    rejections: Rejections,
    batch_size: int = 5_000,
    on_batch: Callable[[int], None] | None = None,
    header: str | None = None,
    limit: int | None = None,
    position: ParsePosition | None = None,
    site_fields: bool = False,
) -> Iterator[RppsBatch]:
    """Yield batches of staging rows; reject malformed lines into ``rejections`` (file, line, reason).

    ``on_batch`` receives the number of bytes consumed so far (for a progress bar).
    Raises :class:`RppsFormatError` when the header is not an RPPS header.

    ``site_fields``: each line row also carries, after the ``RPPS_FORMAT`` columns, the fields of its
    site an activity shows (``ACTIVITY_SITE_FIELDS`` of ``coordination.directory.store``), or ``None``
    for a line at its structure's own site: what :class:`coordination.directory.store.PartRowFiles`
    needs to write the line's activity without the site rows of earlier lines.

    To parse a part of a file: ``limit`` stops after that many bytes (at a line end); ``header``, the
    file's header line, parses a stream positioned after it, numbering its first line 1. ``position``
    receives the number of the last line read.
    """
    chunks = _chunks(stream, limit)
    if header is None:
        first = next(chunks, ([""], 0))
        header = first[0].pop(0)
        line_no = 1
    else:
        first = ([], 0)
        line_no = 0
    columns = _Columns(header, file=file)
    chunks = itertools.chain((first,), chunks)
    del first  # let the first chunk go once read
    position = position if position is not None else ParsePosition()
    position.line_no = line_no
    yield from _parse_lines(chunks, columns, rejections, batch_size, on_batch, position, site_fields)


def _parse_lines(  # noqa: C901, PLR0912, PLR0915  (the hot loop stays whole: locals are its speed)
    chunks: Iterator[tuple[list[str], int]],
    columns: _Columns,
    rejections: Rejections,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
    position: ParsePosition,
    site_fields: bool = False,
) -> Iterator[RppsBatch]:
    """The hot loop: one pass over the lines, everything it needs in local variables."""
    file, width, misfit = columns.file, columns.width, columns.misfit
    i_nid, i_family = columns.i_nid, columns.i_family
    activity_get, person_get = columns.activity_get, columns.person_get
    site_get = columns.site_get
    sites = _Sites(columns)
    place = sites.place
    version = _DIGEST_SEED
    lines: list[tuple[Any, ...]] = []
    line_no = position.line_no
    last_nid = nid = ""
    nid_problem: str | None = None
    person_staged = False  # the current person's fields are already on one of their lines
    # The run of lines of the current person: where its first staged line sits in ``lines`` (-1: none
    # staged yet) and the sum of the digests of its staged lines, which that first line carries once
    # the run ends (the run's other lines carry 0). A batch ends only between runs, so that first line
    # is still in hand when the run ends.
    run_at, run_h = -1, 0
    consumed = 0
    for chunk, consumed in chunks:
        for line in chunk:
            line_no += 1
            f = line.split("|")
            if len(f) != width and not misfit(f, line, line_no, rejections):
                continue
            f.append("")
            # Fields padded with spaces are trimmed by the merge (in C); only the values Python
            # decides on are stripped here.
            raw_nid = f[i_nid]
            if raw_nid != last_nid:
                if run_at >= 0:
                    if run_h != lines[run_at][_H]:
                        row = lines[run_at]
                        lines[run_at] = (*row[:_H], run_h, *row[_H + 1 :])
                    run_at = -1
                if len(lines) >= batch_size:
                    yield RppsBatch(lines, sites.new)
                    lines, sites.new = [], []
                    if on_batch is not None:
                        on_batch(consumed)
                last_nid, nid, person_staged = raw_nid, raw_nid.strip(), False
                nid_problem = _fast_nid_problem(nid)
            if nid_problem is not None:
                rejections.add(file, line_no, f"colonne « Identification nationale PP » : {nid_problem}")
                continue
            if not f[i_family].strip():
                rejections.add(file, line_no, "colonne « Nom d'exercice » vide : nom du professionnel absent")
                continue
            structure_id, site_line = place(f, line_no)
            sf: tuple[Any, ...] = ()
            if site_fields:
                if site_line is None:
                    sf = _OWN_SITE
                elif site_line == line_no:  # a site row just staged for this line
                    sf = _ACTIVITY_SITE(sites.new[-1])
                else:  # the same site as an earlier line's: the same columns, on this line too
                    sf = _ACTIVITY_SITE(_site_row(line_no, structure_id, site_get(f), SITE_OTHER))
            # The whole line is digested: a person is unchanged when their lines are the same bytes.
            data = line.encode()
            h = crc32(data, version) | (adler32(data) & 0xFFFF) << 32
            pcode, prof, spec, spec_code, mode, mode_code, role = activity_get(f)
            if person_staged:
                run_h += h
                lines.append(
                    (
                        line_no, 0, nid, None, None, None, None, None, pcode, prof,
                        spec.strip() or spec_code, mode.strip() or mode_code, role, structure_id,
                        site_line, 0, *sf,
                    )
                )  # fmt: skip
            else:
                person_staged = True
                run_at, run_h = len(lines), h
                id_type, civx, civ, family, given = person_get(f)
                lines.append(
                    (
                        line_no, 1, nid, id_type.strip() or nid[0], civx.strip() or civ, family, given,
                        _person_key(family, given), pcode, prof, spec.strip() or spec_code,
                        mode.strip() or mode_code, role, structure_id, site_line, h, *sf,
                    )
                )  # fmt: skip
    if run_at >= 0 and run_h != lines[run_at][_H]:
        row = lines[run_at]
        lines[run_at] = (*row[:_H], run_h, *row[_H + 1 :])
    if lines or sites.new:
        yield RppsBatch(lines, sites.new)
    if on_batch is not None:
        on_batch(consumed)
    position.line_no = line_no
