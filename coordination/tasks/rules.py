"""Pure rules of tasks: assignee keys, the undated sort key and the keyset cursor."""

from __future__ import annotations

import uuid
from datetime import date

from coordination.errors import Invalid
from coordination.pagination import decode_cursor, encode_cursor

NO_DUE_DATE = date(9999, 12, 31)
"""Sort key of undated tasks: after every real due date."""

PERSON = "pp:"
STRUCTURE = "st:"


def sort_due(due: date | None) -> date:
    return due if due is not None else NO_DUE_DATE


def person_key(national_id: str) -> str:
    return f"{PERSON}{national_id}"


def structure_key(structure_id: str) -> str:
    return f"{STRUCTURE}{structure_id}"


def split_keys(keys: set[str] | list[str]) -> tuple[list[str], list[str]]:
    """(national ids, structure ids) named by assignee keys, sorted."""
    return (
        sorted(k[len(PERSON) :] for k in keys if k.startswith(PERSON)),
        sorted(k[len(STRUCTURE) :] for k in keys if k.startswith(STRUCTURE)),
    )


def task_cursor(due: date, task_id: uuid.UUID) -> str:
    """The cursor of the page that starts after the task (``due``, ``task_id``)."""
    return encode_cursor({"d": due.isoformat(), "i": task_id.hex})


def task_position(cursor: str | None) -> tuple[date, uuid.UUID] | None:
    """The keyset position a cursor stands for (None: first page); anything else is a French 422."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        return date.fromisoformat(str(position["d"])), uuid.UUID(hex=str(position["i"]))
    except (KeyError, ValueError) as exc:
        raise Invalid(
            "Curseur de pagination invalide : reprenez la liste depuis le début (sans « cursor »).",
            field="cursor",
        ) from exc


def number_scope(
    *, patient_id: uuid.UUID | None, creator_national_id: str, theme_id: uuid.UUID | None = None
) -> str:
    """Where a task's short number is unique: its patient, its theme (« !fait 3 » in the thematic
    room), or its creator for a task with neither."""
    if patient_id is not None:
        return f"patient:{patient_id}"
    return f"theme:{theme_id}" if theme_id is not None else f"creator:{creator_national_id}"
