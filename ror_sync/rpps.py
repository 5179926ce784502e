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
from typing import IO, Any

from coordination.directory.rules import (
    department_from_postal_code,
    national_id_problem,
    person_search_name,
    rpps_structure_key,
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
NEW_HEADERS: tuple[str, ...] = tuple(
    {
        "Libellé civilité d'exercice": "Libellé civilité exercice",
        "Indice répétition voie (coord. structure)": "Indice répétition voie (coord. Structure)",
        "Code Département (structure)": "Code département (coord. structure)",
        "Libellé Département (structure)": "Libellé département (coord. structure)",
    }.get(h, h)
    for h in CLASSIC_HEADERS
) + ("Code fonction", "Libellé fonction", "Code genre d'activité", "Libellé genre d'activité")


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


def parse_rpps(
    stream: IO[bytes],
    *,
    file: str,
    rejections: Rejections,
    batch_size: int = 20_000,
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
    ix = layout.index
    width = layout.width
    short_ok = width - 1 if layout.trailing else width  # tolerate a line missing its final "|"

    def col(name: str) -> int:
        return ix.get(name, -1)

    i_nid, i_type = col("national_id"), col("id_type")
    i_fam, i_giv = col("family_name"), col("given_name")
    i_civx, i_civ = col("civility_ex_label"), col("civility_label")
    i_pcode, i_prof = col("profession_code"), col("profession")
    i_spec, i_spec_code = col("specialty"), col("specialty_code")
    i_mode, i_mode_code = col("mode"), col("mode_code")
    i_siret, i_finess, i_tech = col("siret"), col("finess"), col("technical_id")
    i_site, i_sign = col("site_name"), col("site_sign")
    addr_cols = [
        col(c) for c in ("street_number", "street_repeat", "street_type", "street", "address_more")
    ]
    i_distrib, i_cedex = col("distribution"), col("cedex")
    i_cp, i_city, i_phone, i_mail, i_dep = (
        col("postal_code"),
        col("city"),
        col("phone"),
        col("email"),
        col("department"),
    )
    i_role = col("role")

    last_nid = ""
    last_nid_problem: str | None = None
    last_names: tuple[str, str] = ("", "")
    last_search = ""
    blake = hashlib.blake2b
    batch: list[tuple[Any, ...]] = []
    line_no = 1
    buffer = text.buffer

    def consumed() -> int:
        try:
            return int(buffer.tell())
        except (OSError, ValueError):  # a pipe cannot tell: progress just stays put
            return 0

    for raw_line in text:
        line_no += 1
        line = raw_line[:-1] if raw_line.endswith("\n") else raw_line
        if not line.isascii() and _SURROGATE.search(line):
            line = _fix_encoding(line)
        if not line.strip():
            continue
        f = line.split("|")
        n = len(f)
        if n != width and n != short_ok:
            rejections.add(
                file,
                line_no,
                f"{n - 1 if line.endswith('|') else n} colonnes au lieu de "
                f"{width - 1 if layout.trailing else width} (séparateur « | » en trop ou manquant)",
            )
            continue
        if n < width:
            f.append("")

        nid = f[i_nid].strip().upper()
        if nid != last_nid:
            last_nid = nid
            last_nid_problem = national_id_problem(nid)
        if last_nid_problem is not None:
            rejections.add(file, line_no, f"colonne « Identification nationale PP » : {last_nid_problem}")
            continue
        family = f[i_fam].strip()
        if not family:
            rejections.add(file, line_no, "colonne « Nom d'exercice » vide : nom du professionnel absent")
            continue
        given = f[i_giv].strip()
        if (family, given) != last_names:
            last_names = (family, given)
            last_search = person_search_name(family, given)

        finess = f[i_finess].strip() if i_finess >= 0 else ""
        siret = f[i_siret].strip() if i_siret >= 0 else ""
        tech = f[i_tech].strip() if i_tech >= 0 else ""
        structure_id = rpps_structure_key(finess=finess, siret=siret, technical_id=tech) or ""
        site = (f[i_site].strip() if i_site >= 0 else "") or (f[i_sign].strip() if i_sign >= 0 else "")
        address = " ".join(p for p in (f[i].strip() for i in addr_cols if i >= 0) if p)
        distrib = f[i_distrib].strip() if i_distrib >= 0 else ""
        if distrib:
            address = f"{address}, {distrib}" if address else distrib
        postal = f[i_cp].strip() if i_cp >= 0 else ""
        city = f[i_city].strip() if i_city >= 0 else ""
        if not city and i_cedex >= 0:  # "06000 NICE" when the commune column is empty
            cedex = f[i_cedex].strip()
            city = cedex[6:] if cedex[:5] == postal and postal else cedex
        dep = (f[i_dep].strip() if i_dep >= 0 else "") or department_from_postal_code(postal)
        civility = (f[i_civx].strip() if i_civx >= 0 else "") or (
            f[i_civ].strip() if i_civ >= 0 else ""
        )
        specialty = (f[i_spec].strip() if i_spec >= 0 else "") or (
            f[i_spec_code].strip() if i_spec_code >= 0 else ""
        )
        mode = (f[i_mode].strip() if i_mode >= 0 else "") or (
            f[i_mode_code].strip() if i_mode_code >= 0 else ""
        )
        values = (
            nid,
            f[i_type].strip() if i_type >= 0 else nid[0],
            civility,
            family,
            given,
            last_search,
            f[i_pcode].strip(),
            f[i_prof].strip() if i_prof >= 0 else "",
            structure_id,
            specialty,
            mode,
            f[i_role].strip() if i_role >= 0 else "",
            site,
            search_key(site) if site else "",
            finess,
            siret,
            address,
            postal,
            city,
            dep,
            f[i_phone].strip() if i_phone >= 0 else "",
            f[i_mail].strip() if i_mail >= 0 else "",
        )
        digest = blake("\x1f".join(values).encode(), digest_size=6).digest()
        batch.append(
            (
                line_no,
                1,
                1,
                *values[:8],
                None,
                None,
                structure_id,
                None,
                *values[9:],
                int.from_bytes(digest, "big"),
            )
        )
        if len(batch) >= batch_size:
            yield batch
            batch = []
            if on_batch is not None:
                on_batch(consumed())
    if batch:
        yield batch
    if on_batch is not None:
        on_batch(consumed())
    # Detach so closing the wrapper does not close the caller's stream twice.
    text.detach()
