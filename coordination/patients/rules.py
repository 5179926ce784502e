"""Pure identity-vigilance rules: INS number check, identity status, search keys.

References: the national identity-vigilance reference (RNIV) and the INS guide (Agence du Numérique
en Santé): five strict traits, four identity statuses, the homonyme / douteuse / fictive attributes,
and the NIR key = 97 - (number mod 97) with Corsica's "2A" / "2B" read as 19 / 18.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from stdnum.fr import nir

from coordination.vocab import IdentityStatus

Sex = Literal["F", "M", "I"]

# Patients live in France: "today" for a birth date, an age or a discharge date is the date in Paris,
# whatever the server's own time zone (a server in UTC would otherwise refuse a discharge dated today
# between midnight and 1 or 2 a.m.).
PATIENT_TZ = ZoneInfo("Europe/Paris")


def today() -> date:
    """Today's date for a patient (Europe/Paris)."""
    return datetime.now(PATIENT_TZ).date()


# First digit of an INS number (NIR or NIA) by sex: 1/2 for a NIR, 3/4 for a provisional number of
# a person born abroad, 7/8 for a NIA (number awaiting registration). Odd = male, even = female.
_SEX_DIGITS: dict[str, frozenset[str]] = {
    "M": frozenset("137"),
    "F": frozenset("248"),
    "I": frozenset("123478"),  # indeterminate sex: any sex digit is consistent
}
_NIA_DIGITS = frozenset("78")

_INS_FORMAT = re.compile(r"^[1-478][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}$")
BIRTH_PLACE_PATTERN = r"^(?:[0-9]{5}|2[AB][0-9]{3})$"

# Ligatures that NFKD does not split.
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"})
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def search_key(text: str) -> str:
    """Upper-case ASCII letters and digits only: "Le Goff-Hervé" -> "LEGOFFHERVE".

    Case, accents and separators are dropped so that "le goff", "LEGOFF" and "Le Goff" find the same
    row with a prefix range scan on an indexed column.
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_ALNUM.sub("", ascii_only.upper())


def prefix_upper_bound(key: str) -> str:
    """The smallest string greater than every string starting with ``key`` (keys are [A-Z0-9])."""
    return key + "~"  # "~" sorts after every character a search key can hold (binary order)


def ins_key(number13: str) -> int:
    """The 2-digit control key of a 13-character NIR/NIA (Corsica: 2A -> 19, 2B -> 18), as
    ``python-stdnum`` computes it for the NIR (the NIA uses the same key)."""
    return int(nir.calc_check_digits(number13.upper()))


def normalise_ins(value: str) -> str:
    """Drop spaces, dots and dashes people type, and upper-case the Corsica letters."""
    return re.sub(r"[\s.\-]", "", value).upper()


def ins_problem(number: str, *, sex: str) -> str | None:
    """Why ``number`` (normalised) is not a valid INS for this sex, in French; None when valid."""
    if not _INS_FORMAT.match(number):
        return (
            "le matricule INS doit compter 15 caractères : 13 chiffres (2A ou 2B pour un "
            "département corse) puis la clé à 2 chiffres"
        )
    if int(number[13:]) != ins_key(number[:13]):
        return "la clé du matricule INS ne correspond pas : vérifiez chaque chiffre"
    if number[0] not in _SEX_DIGITS.get(sex, frozenset()):
        return "le premier chiffre du matricule INS ne correspond pas au sexe saisi"
    return None


def is_nia(number: str) -> bool:
    """A NIA (number awaiting registration) rather than a NIR."""
    return number[:1] in _NIA_DIGITS


def identity_status(
    *,
    insi_retrieved: bool,
    document_checked: bool,
    homonyme: bool,
    douteuse: bool,
    fictive: bool,
) -> tuple[IdentityStatus, list[str]]:
    """The identity status and the attributes that forced it to "provisoire" (for the badge).

    provisoire: nothing checked; récupérée: INSi retrieval only; validée: ID document only;
    qualifiée: both. Any of homonyme / douteuse / fictive keeps the identity provisoire.
    """
    forced = [
        name for name, on in (("homonyme", homonyme), ("douteuse", douteuse), ("fictive", fictive)) if on
    ]
    if forced:
        return IdentityStatus.PROVISOIRE, forced
    if insi_retrieved and document_checked:
        return IdentityStatus.QUALIFIEE, []
    if insi_retrieved:
        return IdentityStatus.RECUPEREE, []
    if document_checked:
        return IdentityStatus.VALIDEE, []
    return IdentityStatus.PROVISOIRE, []
