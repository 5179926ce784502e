"""Pure rules of tasks: the fixed vocabularies, assignee keys and the keyset cursor."""

from __future__ import annotations

import base64
import binascii
import unicodedata
import uuid
from datetime import date

from coordination.errors import Invalid

TASK_TYPES: dict[str, str] = {
    "concertation_pluriprofessionnelle": "Concertation pluriprofessionnelle",
    "visite": "Visite",
    "appel": "Appel",
    "evaluation": "Évaluation",
    "soins": "Soins",
    "rendez_vous": "Rendez-vous",
    "administratif": "Administratif",
    "autre": "Autre",
}
TASK_STATUSES: dict[str, str] = {
    "à_faire": "À faire",
    "en_cours": "En cours",
    "terminée": "Terminée",
    "annulée": "Annulée",
}
OPEN_STATUSES = ("à_faire", "en_cours")
TASK_PRIORITIES: dict[str, str] = {"basse": "Basse", "normale": "Normale", "haute": "Haute"}

NO_DUE_DATE = date(9999, 12, 31)
"""Sort key of undated tasks: after every real due date."""


def ascii_code(value: str) -> str:
    """Fold a code typed by a person or a bot ("À faire", "a_faire", "TERMINEE") to a comparable form."""
    folded = unicodedata.normalize("NFKD", value.strip().lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return "_".join(folded.replace("-", " ").replace("_", " ").split())


def canonical(value: object, vocabulary: dict[str, str]) -> object:
    """Map any spelling of a code to its canonical form (others pass through for the Literal check)."""
    if not isinstance(value, str):
        return value
    wanted = ascii_code(value)
    for code in vocabulary:
        if ascii_code(code) == wanted:
            return code
    return value


def sort_due(due: date | None) -> date:
    return due if due is not None else NO_DUE_DATE


def person_key(national_id: str) -> str:
    return f"pp:{national_id}"


def structure_key(structure_id: str) -> str:
    return f"st:{structure_id}"


def encode_cursor(due: date, task_id: uuid.UUID) -> str:
    raw = f"{due.isoformat()}|{task_id.hex}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date, uuid.UUID]:
    """Parse a cursor given back by a client; anything else is a French 422, never a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        due_s, _, id_s = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return date.fromisoformat(due_s), uuid.UUID(hex=id_s)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Invalid(
            "Curseur de pagination invalide : reprenez la liste depuis le début (sans « cursor »).",
            field="cursor",
        ) from exc
