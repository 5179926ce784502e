"""A plain-text PDF (A4, Helvetica, WinAnsi) for the ``!synthese`` attachment: no dependency, and
nothing but the text it is given (no metadata, no creation date that would name anyone)."""

from __future__ import annotations

import textwrap

_PAGE_LINES = 60
_WIDTH = 95  # characters per line at 10 pt Helvetica on A4 with 50 pt margins (approximately)
_SYMBOLS = {"❗": "(!)", "❗️": "(!)", "❓": "(?)", "❓️": "(?)", "•": "-", "—": "-", "«": '"', "»": '"'}


def _encode(line: str) -> bytes:
    for symbol, text in _SYMBOLS.items():
        line = line.replace(symbol, text)
    raw = line.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def text_pdf(title: str, lines: list[str]) -> bytes:
    """A PDF showing ``title`` then ``lines`` (wrapped, paginated)."""
    wrapped: list[str] = [title, ""]
    for line in lines:
        wrapped += textwrap.wrap(line, _WIDTH, subsequent_indent="   ") or [""]
    pages = [wrapped[i : i + _PAGE_LINES] for i in range(0, len(wrapped), _PAGE_LINES)] or [[]]

    objects: list[bytes] = []  # object n is objects[n - 1]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"")  # the page tree, filled once the page ids are known
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for page in pages:
        stream = (
            b"BT /F1 10 Tf 50 800 Td 13 TL\n" + b"".join(b"(" + _encode(x) + b") '\n" for x in page) + b"ET"
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % content_id
        )
        page_ids.append(len(objects))
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_ids)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
