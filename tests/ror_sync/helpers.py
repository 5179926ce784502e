"""Builders of RPPS extract files and FHIR resources for the import tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordination.directory.rules import luhn_key
from ror_sync.rpps import CLASSIC_HEADERS, format_line


def national_id(n: int) -> str:
    """A well-formed (Luhn-valid) fictitious idNatPS."""
    body = f"1990{n:06d}"
    return "8" + body + luhn_key(body)


def rpps_line(
    n: int,
    *,
    site: int | None = 1,
    headers: tuple[str, ...] = CLASSIC_HEADERS,
    **overrides: str,
) -> str:
    nid = national_id(n)
    values = {
        "Type d'identifiant PP": "8",
        "Identifiant PP": nid[1:],
        "Identification nationale PP": nid,
        "Nom d'exercice": f"DUPONT{n}",
        "Prénom d'exercice": "Élodie",
        "Code profession": "10",
        "Libellé profession": "Médecin",
        "Libellé savoir-faire": "Médecine générale",
        "Libellé mode exercice": "Libéral",
        "Numéro FINESS site": f"06999{site:04d}" if site else "",
        "Raison sociale site": f"CLINIQUE Nº{site}" if site else "",
        "Code postal (coord. structure)": "06000",
        "Libellé commune (coord. structure)": "NICE",
        "Téléphone (coord. structure)": "0493000000",
        "Code Département (structure)": "06",
        "Code département (coord. structure)": "06",
    }
    values.update({k.replace("_", " "): v for k, v in overrides.items()})
    return format_line(headers, values)


def write_rpps(
    path: Path,
    lines: list[str],
    *,
    headers: tuple[str, ...] = CLASSIC_HEADERS,
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    header = "|".join(headers) + "|"
    path.write_bytes((newline.join([header, *lines]) + newline).encode(encoding))
    return path


def bundle(resources: list[dict[str, Any]], *, next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": r} for r in resources],
    }


def stage_part_with_a_small_structure_table(*args: Any) -> Any:
    """``ror_sync.part.stage_part`` in the helper process, with room for 6 structures: the helper
    imports this module by name (a "spawn" process), so a test's monkeypatch does not reach it."""
    from ror_sync import part, rpps

    rpps.STRUCTURE_SLOTS = 8
    return part.stage_part(*args)
