"""Streaming parser of the RPPS extract ``PS_LibreAcces_Personne_activite_<horodatage>.txt``.

The file is ``|``-separated with one header line, every line ending with an extra ``|``; one line per
(professional x activity). Columns are found **by header name**, never by position: the classic layout
has 52 columns, the newer one 56 and spells a few headers differently (``Libellé civilité exercice``,
``Code département (coord. structure)``...). Headers are compared after removing case, accents and
punctuation, and each field accepts several aliases.

Bytes are decoded as UTF-8; a line that is not valid UTF-8 is decoded as Windows-1252 (older extracts were
Latin-1), so a file mixing both still imports. LF and CRLF line ends are both accepted.

The parser yields staging rows (``coordination.directory.store.LINE_COLUMNS``) in batches and never keeps
more than one batch: memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import IO, Any

from coordination.directory.rules import (
    department_from_postal_code,
    national_id_problem,
    person_search_name,
    search_key,
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


_SURROGATE = re.compile("[\udc80-\udcff]")


def _fix_encoding(line: str) -> str:
    """A line read as UTF-8 with surrogateescape that held non-UTF-8 bytes: decode it as Windows-1252."""
    raw = line.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_FIELDS = (
    "national_id", "id_type", "civility_ex_label", "civility_label", "family_name", "given_name",
    "profession_code", "profession", "specialty", "specialty_code", "mode", "mode_code", "siret",
    "finess", "technical_id", "site_name", "site_sign", "street_number", "street_repeat",
    "street_type", "street", "address_more", "distribution", "cedex", "postal_code", "city", "phone",
    "email", "department", "role",
)  # fmt: skip

# Names and site names repeat a lot: bounded caches (memory stays flat) spare the accent folding.
_person_key = lru_cache(maxsize=1 << 16)(person_search_name)
_site_key = lru_cache(maxsize=1 << 16)(search_key)


def parse_rpps(
    stream: IO[bytes],
    *,
    file: str,
    rejections: Rejections,
    batch_size: int = 10_000,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """Yield batches of staging rows; reject malformed lines into ``rejections`` (file, line, reason).

    ``on_batch`` receives the number of bytes consumed so far (for a progress bar).
    Raises :class:`RppsFormatError` when the header is not an RPPS header.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline=None)
    header = text.readline()
    if _SURROGATE.search(header):
        header = _fix_encoding(header)
    if not header.strip():
        raise RppsFormatError(f"{file}:1: fichier vide : aucun en-tête RPPS.")
    layout = read_layout(header, file=file)
    width = layout.width
    expected = width - 1 if layout.trailing else width  # columns as a person counts them
    # Absent optional columns read the sentinel "" appended at index ``width`` of every line.
    getter = itemgetter(*(layout.index.get(name, width) for name in _FIELDS))
    blake = hashlib.blake2b
    from_bytes = int.from_bytes
    batch: list[tuple[Any, ...]] = []
    line_no = 1
    last_nid = ""
    last_nid_problem: str | None = None
    buffer = text.buffer

    def consumed() -> int:
        try:
            return int(buffer.tell())
        except (OSError, ValueError):  # a pipe cannot tell: progress just stays put
            return 0

    for raw_line in text:
        line_no += 1
        line = raw_line[:-1] if raw_line[-1:] == "\n" else raw_line
        if not line.isascii() and _SURROGATE.search(line):
            line = _fix_encoding(line)
        f = line.split("|")
        n = len(f)
        if n != width:
            if n == 1 and not line.strip():
                continue  # blank line (e.g. at the end of the file)
            if layout.trailing and n == width - 1:
                f.append("")  # the line lacks its final "|": same columns, accept it
            else:
                got = n - 1 if line.endswith("|") else n
                rejections.add(
                    file,
                    line_no,
                    f"{got} colonnes au lieu de {expected} (séparateur « | » en trop ou manquant)",
                )
                continue
        f.append("")
        if " |" in line or "| " in line or line[:1] == " ":
            f = [x.strip() for x in f]
        (
            nid, id_type, civx, civ, family, given, pcode, prof, spec, spec_code, mode, mode_code,
            siret, finess, tech, site, sign, num, rep, stype, street, more, distrib, cedex, postal,
            city, phone, email, dep, role,
        ) = getter(f)  # fmt: skip
        if nid != last_nid:
            last_nid = nid
            last_nid_problem = national_id_problem(nid)
        if last_nid_problem is not None:
            rejections.add(file, line_no, f"colonne « Identification nationale PP » : {last_nid_problem}")
            continue
        if not family:
            rejections.add(file, line_no, "colonne « Nom d'exercice » vide : nom du professionnel absent")
            continue
        if finess:
            structure_id = "finess:" + finess
        elif siret:
            structure_id = "siret:" + siret
        elif tech:
            structure_id = "rpps-struct:" + tech
        else:
            structure_id = ""
        site = site or sign
        address = " ".join(filter(None, (num, rep, stype, street, more)))
        if distrib:
            address = f"{address}, {distrib}" if address else distrib
        if not city and cedex:  # "06000 NICE" when the commune column is empty
            city = cedex[6:] if postal and cedex[:5] == postal else cedex
        values = (
            nid, id_type or nid[0], civx or civ, family, given, _person_key(family, given), pcode,
            prof, structure_id, spec or spec_code, mode or mode_code, role, site,
            _site_key(site) if site else "", finess, siret, address, postal, city,
            dep or department_from_postal_code(postal), phone, email,
        )  # fmt: skip
        digest = from_bytes(blake("\x1f".join(values).encode(), digest_size=6).digest(), "big")
        batch.append((line_no, 1, 1, *values[:8], None, None, structure_id, None, *values[9:], digest))
        if len(batch) >= batch_size:
            yield batch
            batch = []
            if on_batch is not None:
                on_batch(consumed())
    if batch:
        yield batch
    if on_batch is not None:
        on_batch(consumed())
    # Detach so that dropping the wrapper does not close the caller's stream.
    text.detach()
