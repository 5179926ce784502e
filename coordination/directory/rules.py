"""Pure directory rules: national ids, search keys, structure keys, DAC recognition.

No I/O here: the importers (``ror_sync``) and the service share these so a name typed in a search box and
a name read from the RPPS extract are normalised the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from stdnum import luhn

_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")
# Letters that NFKD does not decompose into a base letter + combining mark.
_SPECIAL = str.maketrans({"Œ": "OE", "Æ": "AE", "Ø": "O", "ß": "SS", "Ð": "D", "Þ": "TH", "Ł": "L"})


def search_key(text: str) -> str:
    """Upper-case, accent- and punctuation-free form for prefix search: "Le Gall-Hervé" -> "LE GALL HERVE"."""
    upper = text.upper()
    if not upper.isascii():
        upper = upper.translate(_SPECIAL)
        upper = "".join(
            c for c in unicodedata.normalize("NFKD", upper) if not unicodedata.combining(c)
        ).upper()
    return _NOT_ALNUM.sub(" ", upper).strip()


def person_search_name(family_name: str, given_name: str) -> str:
    return search_key(f"{family_name} {given_name}")


_LOCALPART_WORD = re.compile(r"[^a-z0-9]+")


def sso_localparts(*, given_name: str, family_name: str, national_id: str, tries: int = 20) -> list[str]:
    """Matrix localparts to offer, in order, to a professional whose account is created at their first
    single sign-on: ``jeanne.martin``, ``jeanne.martin2``… then one made of the national id (unique).

    Accents and punctuation go ("Le Gall-Hervé" -> "le.gall.herve"); the caller takes the first one no
    other account holds.
    """
    words = [
        _LOCALPART_WORD.sub(".", search_key(part).lower()).strip(".") for part in (given_name, family_name)
    ]
    base = ".".join(word for word in words if word)[:64].strip(".")
    fallback = f"pro.{national_id.lower()}"
    if not base:
        return [fallback]
    return [base, *(f"{base}{n}" for n in range(2, tries + 1)), fallback]


def luhn_ok(digits: str) -> bool:
    """Luhn check over a digit string whose last digit is the key (RPPS numbers, SIRET).

    ``python-stdnum`` does it; the RPPS import's hot loop keeps an inlined copy for the usual
    "8" + RPPS form (``ror_sync.rpps._fast_nid_problem``, measured ten times faster)."""
    return digits.isascii() and digits.isdigit() and luhn.is_valid(digits)


def luhn_key(body: str) -> str:
    """The Luhn key digit to append to ``body`` (used to mint well-formed fictitious RPPS numbers)."""
    return str(luhn.calc_check_digit(body))


_ADELI = re.compile(r"(?:[0-9]{2}|2A|2B)[0-9]{7}")


def national_id_problem(national_id: str) -> str | None:
    """Why ``national_id`` is not a well-formed idNatPS, in French, or None when it is.

    idNatPS = ``8`` + RPPS number (11 digits, the last one a Luhn key) or ``0`` + ADELI number
    (9 characters: department on 2 characters, Corsica as ``2A``/``2B``, then digits).
    """
    if not national_id:
        return "identifiant national vide"
    if national_id[0] == "8":
        rpps = national_id[1:]
        if len(rpps) != 11 or not rpps.isdigit():
            return f"identifiant national « {national_id} » : 8 suivi de 11 chiffres RPPS attendu"
        if not luhn_ok(rpps):
            return f"identifiant national « {national_id} » : clé de contrôle RPPS incorrecte"
        return None
    if national_id[0] == "0":
        if len(national_id) != 10 or not _ADELI.fullmatch(national_id[1:].upper()):
            return f"identifiant national « {national_id} » : 0 suivi de 9 caractères ADELI attendu"
        return None
    return f"identifiant national « {national_id} » : doit commencer par 8 (RPPS) ou 0 (ADELI)"


def national_id_from_query(text: str) -> str | None:
    """The national id a search text designates exactly (idNatPS, or a bare 11-digit RPPS), if any."""
    compact = text.strip().replace(" ", "")
    if len(compact) == 11 and compact.isdigit():
        compact = "8" + compact
    if national_id_problem(compact) is None:
        return compact.upper()
    return None


def department_from_postal_code(postal_code: str) -> str:
    """Department code from a French postal code ("06000" -> "06", "20090" -> "2A", "97400" -> "974")."""
    if len(postal_code) != 5 or not postal_code.isdigit():
        return ""
    if postal_code.startswith("97"):
        return postal_code[:3]
    if postal_code.startswith("20"):  # Corsica: 200xx/201xx are 2A, 202xx/206xx 2B
        return "2A" if postal_code[2] in "01" else "2B"
    return postal_code[:2]


def rpps_structure_key(*, finess: str, siret: str, technical_id: str) -> str | None:
    """Directory key of an RPPS activity site: FINESS first, then SIRET, then the RPPS technical id."""
    if finess:
        return f"finess:{finess}"
    if siret:
        return f"siret:{siret}"
    if technical_id:
        return f"rpps-struct:{technical_id}"
    return None


# How a DAC is recognised in ROR / Annuaire Santé data (any coding of an Organization's ``type`` or a
# HealthcareService's ``type``/``category``/``specialty``):
#  - TRE_R66-CategorieEtablissement code 606 "Dispositif d'appui à la coordination (DAC)" (FINESS),
#  - TRE_R316-AutreCategorieEtablissement code 801 (the former, now deprecated, DAC code),
#  - or a coding display / text spelling out "Dispositif d'appui à la coordination".
# The system URI is matched on its terminology name (R66, R316), not on the full URI string, because
# sources spell the URI differently (mos.esante.gouv.fr/NOS/TRE_R66-..., urn:oid:..., http/https).
_DAC_CODES = {("R66", "606"), ("R316", "801")}
_DAC_TEXT = "DISPOSITIF D APPUI A LA COORDINATION"
_TRE = re.compile(r"TRE[_-](R\d+)", re.IGNORECASE)


def is_dac_coding(*, system: str | None, code: str | None, display: str | None) -> bool:
    if display and _DAC_TEXT in search_key(display):
        return True
    if system and code:
        match = _TRE.search(system)
        if match and (match.group(1).upper(), code.strip()) in _DAC_CODES:
            return True
    return False


def any_dac(codings: Iterable[tuple[str | None, str | None, str | None]], texts: Iterable[str]) -> bool:
    """True when one coding ``(system, code, display)`` or one free text designates a DAC."""
    if any(is_dac_coding(system=s, code=c, display=d) for s, c, d in codings):
        return True
    return any(_DAC_TEXT in search_key(t) for t in texts if t)


# A full import is a snapshot: whoever is missing from it is deactivated, and loses Matrix access within a
# minute. A truncated or wrong file must not do that to a large part of the directory silently.
MASS_DEACTIVATION_RATIO = 0.05
MASS_DEACTIVATION_FLOOR = 50


def is_mass_deactivation(*, deactivating: int, active: int, max_ratio: float, floor: int) -> bool:
    """True when deactivating ``deactivating`` of ``active`` persons needs the operator's explicit
    consent: more than ``max_ratio`` of them **and** more than ``floor`` (a few departures a day are
    normal, even in a small directory)."""
    return deactivating > floor and deactivating > max_ratio * active
