"""The one text type of every API field a person types: NFC-normalised, no control characters.

Why: PostgreSQL refuses NUL in text (a 500 there, silently stored on SQLite), control characters have
no place in a title or a name, and macOS input or copy-paste sends names in Unicode NFD
(``E\\u0301LODIE``), which must be read as the same name as ``ÉLODIE``. So every typed string is
normalised to NFC, and any control character is refused
with a 422 that says which field and why (see ``coordination.app``'s French messages).

Use ``LineN`` for one-line fields (titles, names, reasons) and ``ParagraphN`` for free text
(descriptions, notes), which also allows line breaks and tabs; N is the maximum length.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""One line: no C0/C1 control character at all (line breaks included)."""
PARAGRAPH_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
"""Free text: line breaks (LF, CR) and tabs allowed, every other control character refused."""
CONTROL_PATTERNS = frozenset({LINE_PATTERN, PARAGRAPH_PATTERN})


def nfc(value: Any) -> Any:
    """Normalise a string to Unicode NFC (other values pass through for pydantic's type check)."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


# After the constraints, so the JSON schema keeps them (pydantic drops them behind a BeforeValidator);
# NFC never adds a control character and composing only shortens, so checking first is sound.
_NFC = AfterValidator(nfc)


def _line(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length, pattern=LINE_PATTERN)


def _paragraph(max_length: int) -> StringConstraints:
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=PARAGRAPH_PATTERN
    )


# Concrete aliases (mypy needs names, not calls, in annotations). Add a size here when a field needs it;
# a field that must allow the empty string declares its own ``min_length=0`` variant the same way.
Line30 = Annotated[str, _line(30), _NFC]
Line60 = Annotated[str, _line(60), _NFC]
Line100 = Annotated[str, _line(100), _NFC]
Line120 = Annotated[str, _line(120), _NFC]
Line200 = Annotated[str, _line(200), _NFC]
Line300 = Annotated[str, _line(300), _NFC]
Line500 = Annotated[str, _line(500), _NFC]
Paragraph500 = Annotated[str, _paragraph(500), _NFC]
Paragraph2000 = Annotated[str, _paragraph(2000), _NFC]
Paragraph5000 = Annotated[str, _paragraph(5000), _NFC]
Paragraph20000 = Annotated[str, _paragraph(20000), _NFC]
