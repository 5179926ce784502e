"""Streaming ``multipart/form-data`` reception with a hard cap (the HTTP edge of uploads).

Starlette's form parsing would accept a body of any size (spooled to disk) before our code runs.
Here the body is read chunk by chunk: a declared ``Content-Length`` over the cap is refused before
reading anything, and the file part is written to a temporary file that refuses its
``max_bytes + 1``-th byte, so no more than the cap (plus a small allowance for the form fields) is
ever read, and never into memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from coordination.documents.storage import ReceivedFile, Receiver, too_large
from coordination.errors import Invalid

FILE_FIELD = "file"
FORM_ALLOWANCE = 64 * 1024
"""Bytes allowed on top of the file for the other fields and the multipart framing."""
_MAX_FIELDS = 60
_MAX_FIELD_BYTES = 4096


@dataclass
class ParsedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    file: ReceivedFile | None = None


def _bad_form(detail: str) -> Invalid:
    return Invalid(
        f"Formulaire d'envoi illisible ({detail}) : envoyez un formulaire multipart/form-data avec "
        "le fichier dans le champ « file », un titre (« title ») et une catégorie (« category »).",
        field="file",
    )


class _Collector:
    """Callbacks of the multipart parser: fields to memory (small, bounded), the file to disk."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.form = ParsedForm()
        self.receiver: Receiver | None = None
        self._headers: dict[bytes, bytes] = {}
        self._hfield = bytearray()
        self._hvalue = bytearray()
        self._name: str | None = None
        self._to_file = False
        self._buf = bytearray()
        self._count = 0

    def on_part_begin(self) -> None:
        self._headers = {}
        self._buf = bytearray()
        self._count += 1
        if self._count > _MAX_FIELDS:
            raise _bad_form("trop de champs")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hfield += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._hfield).lower()] = bytes(self._hvalue)
        self._hfield = bytearray()
        self._hvalue = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw_name = options.get(b"name")
        if raw_name is None:
            raise _bad_form("partie sans nom")
        self._name = raw_name.decode("utf-8", "replace")
        self._to_file = self._name == FILE_FIELD
        if self._to_file:
            if self.receiver is not None:
                raise _bad_form("un seul fichier par envoi")
            self.receiver = Receiver(self.root, max_bytes=self.max_bytes)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._to_file:
            assert self.receiver is not None
            self.receiver.write(data[start:end])
            return
        self._buf += data[start:end]
        if len(self._buf) > _MAX_FIELD_BYTES:
            raise _bad_form(f"champ « {self._name} » trop long")

    def on_part_end(self) -> None:
        if self._to_file or self._name is None:
            return
        try:
            value = self._buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad_form(f"champ « {self._name} » pas en UTF-8") from exc
        self.form.fields.setdefault(self._name, []).append(value)


async def receive_form(request: Request, *, root: Path, max_bytes: int) -> ParsedForm:
    """Read the request's multipart body within the cap; the caller owns ``form.file`` (delete it)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _bad_form("type de contenu attendu : multipart/form-data")
    cap = max_bytes + FORM_ALLOWANCE
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise too_large(max_bytes)  # refused before reading a single byte of the body

    collector = _Collector(root, max_bytes)
    try:
        parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": collector.on_part_begin,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
            },
        )
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > cap:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
        if collector.receiver is not None:
            collector.form.file = collector.receiver.finish()
    except FormParserError as exc:
        if collector.receiver is not None:
            collector.receiver.discard()
        raise _bad_form("structure multipart invalide") from exc
    except BaseException:
        if collector.receiver is not None:
            collector.receiver.discard()
        raise
    return collector.form
