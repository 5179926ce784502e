"""The one PATCH convention: the body lists only the fields to change; ``null`` clears a field.

Update bodies are pydantic models whose fields all default to "not sent"; the service calls
``changes(body)`` to get exactly what the client sent (``model_dump(exclude_unset=True)``), checks
its rules on that dict, then ``apply(row, changed)``. A field sent as ``null`` is cleared, a field
not sent is left alone, so no endpoint needs a separate "clear" flag.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel


def changes(body: BaseModel, *, exclude: Collection[str] = ("version",)) -> dict[str, Any]:
    """The fields the client sent, with their parsed values (``version`` left out by default)."""
    return body.model_dump(exclude_unset=True, exclude=set(exclude))


def apply(row: object, changed: Mapping[str, Any]) -> list[str]:
    """Set each changed attribute on ``row``; return the names that really changed value."""
    touched: list[str] = []
    for name, value in changed.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            touched.append(name)
    return touched
