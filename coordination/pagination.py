"""One page shape for every list endpoint: ``{"items": [...], "next_cursor": "..." | null}``.

The cursor is opaque to clients (base64url of a small JSON object the list's service chooses: a
keyset position or an offset); they send it back as ``?cursor=`` to get the next page, and stop when
``next_cursor`` is null. ``Cursor`` is the query parameter every list endpoint declares.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from coordination.errors import Invalid

T = TypeVar("T")

MAX_CURSOR_LENGTH = 512


class Page(BaseModel, Generic[T]):
    """A page of a list, and how to get the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="À renvoyer tel quel dans `?cursor=` pour la page suivante ; null sur la dernière page.",
    )


Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="Curseur de la page suivante, tel que renvoyé dans `next_cursor` "
        "(absent : première page).",
    ),
]


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for ``position`` (JSON-serialisable values only)."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The position a cursor stands for, None for the first page; a French 422 when it is not ours."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Invalid(_BAD_CURSOR, field="cursor") from exc
    if not isinstance(position, dict):
        raise Invalid(_BAD_CURSOR, field="cursor")
    return position


_BAD_CURSOR = (
    "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente telle quelle, "
    "ou omettez-la pour la première page."
)
