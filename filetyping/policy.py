"""What a file really is, from its bytes: the single upload policy of AZUREZO.

Used by the Synapse module on every stored media (uploads, thumbnails, remote media), by the
coordination service on document uploads, and by the bot. Names and declared types are never
trusted: the decision comes from magic bytes, the structure of the format (qpdf for PDF, ``zipfile``
and ``olefile`` for containers) and what the file would make a reader do (scripts, macros,
hidden content). Standard library and its own libraries only: no package of AZUREZO is imported.

Encrypted attachments of end-to-end encrypted rooms reach the server as AES-CTR ciphertext, which
cannot be typed. They are told apart as "no known signature, not text, and a byte distribution that
is statistically uniform" (see ``_looks_random``); ``synapse_module/README.md`` explains the limits.
A file that *starts* like a program is refused even when the rest looks random (issue 6, item 8).

Blocking and bounded: read in pieces, at most ``_ZIP_MAX_INFLATED`` bytes inflated, PDF parsing
in a child process with its own memory and CPU limits. Call it from a worker thread.
"""

from __future__ import annotations

import codecs
import io
import math
import re
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO

import olefile
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree
from oletools.olevba import VBA_Parser

from filetyping.pdf import PdfProblem, inspect_pdf

__all__ = [
    "ALLOWED_KINDS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "FileKind",
    "Refusal",
    "Verdict",
    "classify",
    "classify_path",
    "too_large_reason",
]

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileKind:
    """An accepted kind of file, with its canonical MIME type and extension."""

    kind: str
    mime_type: str
    extension: str
    label: str


ALLOWED_KINDS: Mapping[str, FileKind] = MappingProxyType(
    {
        k.kind: k
        for k in (
            FileKind("pdf", "application/pdf", ".pdf", "PDF"),
            FileKind("jpeg", "image/jpeg", ".jpg", "image JPEG"),
            FileKind("png", "image/png", ".png", "image PNG"),
            FileKind("gif", "image/gif", ".gif", "image GIF"),
            FileKind("webp", "image/webp", ".webp", "image WebP"),
            FileKind("heic", "image/heic", ".heic", "photo HEIC"),
            FileKind("heif", "image/heif", ".heif", "photo HEIF"),
            FileKind("doc", "application/msword", ".doc", "document Word 97-2003"),
            FileKind(
                "docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                ".docx",
                "document Word",
            ),
            FileKind("xls", "application/vnd.ms-excel", ".xls", "classeur Excel 97-2003"),
            FileKind(
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ".xlsx",
                "classeur Excel",
            ),
            FileKind("odt", "application/vnd.oasis.opendocument.text", ".odt", "texte OpenDocument"),
            FileKind(
                "ods",
                "application/vnd.oasis.opendocument.spreadsheet",
                ".ods",
                "classeur OpenDocument",
            ),
        )
    }
)


class Refusal:
    """Machine-readable refusal categories (``Verdict.refusal``)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    EXECUTABLE = "executable"
    SCRIPT = "script"
    HTML = "html"
    SVG = "svg"
    TEXT = "text"
    ARCHIVE = "archive"
    MACRO = "macro"
    PROTECTED = "protected"
    INVALID_OFFICE = "invalid_office"
    INVALID_PDF = "invalid_pdf"
    ACTIVE_CONTENT = "active_content"
    HIDDEN_CONTENT = "hidden_content"
    COMPRESSION_BOMB = "compression_bomb"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


_ACCEPTED = (
    "Formats acceptés : PDF, images (JPEG, PNG, GIF, WebP, HEIC), Word (.doc, .docx), "
    "Excel (.xls, .xlsx) et OpenDocument (.odt, .ods)."
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one file.

    ``allowed`` with a ``kind``: a recognised document or image. ``allowed`` with ``encrypted``:
    ciphertext of an end-to-end encrypted attachment (no kind can be known). Otherwise ``refusal``
    says which rule refused it, ``reason`` says it in French to the professional, and ``detected``
    names what was seen (e.g. ``"elf"``, ``"zip"``), for logs.
    """

    allowed: bool
    kind: FileKind | None = None
    encrypted: bool = False
    refusal: str | None = None
    reason: str | None = None
    detected: str | None = None
    size: int = 0

    @property
    def mime_type(self) -> str | None:
        return self.kind.mime_type if self.kind else None

    @property
    def extension(self) -> str | None:
        return self.kind.extension if self.kind else None


# Bounds on what one classification may read: a 10 MB upload must never make us read or inflate
# more than this, whatever it claims (zip bombs, huge central directories).
_HEAD_BYTES = 8192
_SAMPLE_CHUNK = 16 * 1024
_SAMPLE_CHUNKS = 4
_ZIP_MAX_ENTRIES = 5000
_ZIP_MAX_CENTRAL_DIRECTORY = 2 * 1024 * 1024
_ZIP_MAX_XML_READ = 1024 * 1024
_ZIP_EOCD_SEARCH = 22 + 65535
# What all members of an Office/OpenDocument package may inflate to, together. Every member is
# inflated (and its CRC checked) within this budget, so a lying central directory is caught too.
_ZIP_MAX_INFLATED = 256 * 1024 * 1024
_INFLATE_CHUNK = 1024 * 1024
_SCAN_CHUNK = 1024 * 1024

# Random-looking test (see _looks_random). With 256 bins the chi-square statistic of uniform bytes
# follows chi2(255): mean 255, sd 22.6. The band 130..420 holds real ciphertext except with a
# probability far below 1e-9 (Wilson-Hilferty, 6 sd each side), while text, executables, images and
# office files score in the thousands or more.
_CHI2_LOW = 130.0
_CHI2_LIMIT = 420.0
_CHI2_MIN_SAMPLE = 1280  # 5 expected hits per bin, the usual validity condition of the test
_RANDOM_MIN_SAMPLE = 64  # below this nothing can be told apart: refused as unknown


def classify(
    data: bytes | bytearray | memoryview | BinaryIO,
    *,
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    allow_encrypted: bool = True,
) -> Verdict:
    """Decide whether ``data`` may be stored, from its real content.

    Args:
        data: the whole file as bytes, or a readable *seekable* binary file object (read in
            bounded pieces, never whole; its position is not preserved).
        max_bytes: files larger than this are refused without being read.
        allow_encrypted: accept content that looks like ciphertext (true for Matrix media, where
            end-to-end encrypted attachments arrive encrypted; false for plaintext documents).
    """
    fp: BinaryIO = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    fp.seek(0)
    verdict = _classify(fp, size=size, max_bytes=max_bytes, allow_encrypted=allow_encrypted)
    return _with_size(verdict, size)


def classify_path(
    path: str, *, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, allow_encrypted: bool = True
) -> Verdict:
    """``classify`` on a file on disk (blocking: call it from a worker thread)."""
    with open(path, "rb") as fp:
        return classify(fp, max_bytes=max_bytes, allow_encrypted=allow_encrypted)


def too_large_reason(max_bytes: int) -> str:
    """The French reason given for a file over ``max_bytes`` (also by Synapse's size check)."""
    limit = max_bytes / (1024 * 1024)
    return (
        f"Le fichier dépasse la taille maximale autorisée ({limit:g} Mo) : réduisez-le "
        "(PDF compressé, photo moins lourde) ou partagez-le en plusieurs parties."
    )


def _with_size(verdict: Verdict, size: int) -> Verdict:
    return Verdict(
        allowed=verdict.allowed,
        kind=verdict.kind,
        encrypted=verdict.encrypted,
        refusal=verdict.refusal,
        reason=verdict.reason,
        detected=verdict.detected,
        size=size,
    )


def _ok(kind: str) -> Verdict:
    return Verdict(allowed=True, kind=ALLOWED_KINDS[kind], detected=kind)


def _no(refusal: str, reason: str, detected: str | None = None) -> Verdict:
    return Verdict(allowed=False, refusal=refusal, reason=reason, detected=detected)


def _executable(what: str) -> Verdict:
    return _no(
        Refusal.EXECUTABLE,
        f"Ce fichier est un programme exécutable ({what}), quel que soit son nom : les programmes "
        "ne peuvent pas être partagés. " + _ACCEPTED,
        what,
    )


def _archive(what: str) -> Verdict:
    return _no(
        Refusal.ARCHIVE,
        f"Les archives compressées ({what}) ne sont pas acceptées : envoyez les documents un par "
        "un, sans les compresser. " + _ACCEPTED,
        what,
    )


def _unsupported(what: str) -> Verdict:
    return _no(Refusal.UNSUPPORTED, f"Ce type de fichier ({what}) n'est pas accepté. " + _ACCEPTED, what)


def _macro(what: str) -> Verdict:
    return _no(
        Refusal.MACRO,
        "Ce document contient des macros, qui peuvent exécuter du code : il n'est pas accepté. "
        "Enregistrez-le sans macros (au format .docx, .xlsx, .odt ou .ods) puis envoyez-le à "
        "nouveau.",
        what,
    )


def _invalid_office(what: str) -> Verdict:
    return _no(
        Refusal.INVALID_OFFICE,
        "Ce fichier se présente comme un document bureautique mais n'en est pas un valide : "
        "ouvrez-le dans votre logiciel, enregistrez-le à nouveau (ou exportez-le en PDF) puis "
        "réessayez.",
        what,
    )


def _protected(what: str) -> Verdict:
    return _no(
        Refusal.PROTECTED,
        "Ce document est protégé par un mot de passe et son contenu ne peut pas être vérifié : "
        "retirez la protection (ou exportez-le en PDF) puis envoyez-le à nouveau.",
        what,
    )


# Signatures of executables and archives, checked on the first bytes. Two-byte signatures ("MZ",
# gzip) are confirmed by structure below, so that ciphertext starting with them by chance
# (1 in 65536) is not refused.
_EXECUTABLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF (Linux)"),
    (b"\xfe\xed\xfa\xce", "Mach-O (macOS)"),
    (b"\xfe\xed\xfa\xcf", "Mach-O (macOS)"),
    (b"\xce\xfa\xed\xfe", "Mach-O (macOS)"),
    (b"\xcf\xfa\xed\xfe", "Mach-O (macOS)"),
    (b"\xca\xfe\xba\xbe", "Mach-O universel ou classe Java"),
    (b"\x00asm", "WebAssembly"),
    (b"dex\n", "Android DEX"),
)
_ARCHIVE_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "RAR"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (0, b"\x04\x22\x4d\x18", "lz4"),
    (0, b"LZIP", "lzip"),
    (0, b"MSCF", "cabinet Windows"),
    (0, b"!<arch>\n", "ar / paquet Debian"),
    (0, b"\xed\xab\xee\xdb", "paquet RPM"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"PK\x07\x08", "zip"),
    (257, b"ustar", "tar"),
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEIF_BRANDS = {
    b"heic": "heic",
    b"heix": "heic",
    b"heim": "heic",
    b"heis": "heic",
    b"hevc": "heic",
    b"hevx": "heic",
    b"hevm": "heic",
    b"hevs": "heic",
    b"mif1": "heif",
    b"msf1": "heif",
}


def _classify(fp: BinaryIO, *, size: int, max_bytes: int, allow_encrypted: bool) -> Verdict:
    if size == 0:
        return _no(Refusal.EMPTY, "Le fichier est vide : choisissez un document ou une photo.")
    if size > max_bytes:
        return _no(Refusal.TOO_LARGE, too_large_reason(max_bytes), "too_large")
    head = fp.read(_HEAD_BYTES)

    # A file that starts like a program is refused whatever follows (issue 6, item 8): these
    # prefixes are long enough that ciphertext starts with one of them less than once in 2^32.
    starts_as_program = _program_start(head)
    if starts_as_program is not None:
        return starts_as_program

    # PDF: the magic says which parser to ask; qpdf says whether it is really one, and safe.
    if head.startswith(b"%PDF-"):
        return _inspect_pdf(fp, size=size)
    image = _image_kind(head)
    if image is not None:
        if not image.allowed:
            return image
        return _hidden_content(fp, size=size, markup=True) or image

    # Containers: Office 97-2003 (OLE2) and zip (OOXML, OpenDocument, or a plain archive).
    if head.startswith(_OLE_MAGIC):
        return _inspect_ole(fp, size=size)
    if head.startswith(b"PK\x03\x04"):
        return _inspect_zip(fp, size=size)

    archive = _archive_kind(head)
    if archive is not None:
        return archive
    if head.startswith(b"MZ") and _is_dos_or_pe(head, fp, size=size):
        return _executable("Windows PE/MZ")

    text = _text_kind(head)
    if text is not None:
        return text

    if allow_encrypted and _looks_random(_sample(fp, size=size)):
        return Verdict(allowed=True, encrypted=True, detected="encrypted")
    return _no(
        Refusal.UNKNOWN,
        "Le type de ce fichier n'a pas pu être reconnu, il n'est donc pas accepté. " + _ACCEPTED,
        "unknown",
    )


def _archive_kind(head: bytes) -> Verdict | None:
    for offset, magic, what in _ARCHIVE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return _archive(what)
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[3:4] != b"0":
        return _archive("bzip2")
    if head.startswith(b"\x1f\x8b") and len(head) > 3 and head[2] == 8 and head[3] & 0xE0 == 0:
        return _archive("gzip")
    return None


def _image_kind(head: bytes) -> Verdict | None:
    """Accepted images, by their unambiguous first bytes (then checked for hidden content)."""
    if head.startswith(b"\xff\xd8\xff"):
        return _ok("jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _ok("png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _ok("gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _ok("webp")
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    return None


_MZ_LINKER_PREFIXES = (b"MZ\x90\x00", b"MZP\x00", b"MZ\x80\x00")
_DOS_STUB_TEXTS = (b"This program cannot be run in DOS mode", b"This program must be run under Win32")
# "#!" then an absolute interpreter path and the end of the line, as every script starts; random
# bytes make a printable line ending in a newline with a vanishing probability.
_SHEBANG = re.compile(rb"#! ?/[\x21-\x7e]{1,200}[ \t\x21-\x7e]{0,200}\r?\n")


def _program_start(head: bytes) -> Verdict | None:
    for magic, what in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return _executable(what)
    if head.startswith(_MZ_LINKER_PREFIXES) or (
        head.startswith(b"MZ") and any(text in head[:512] for text in _DOS_STUB_TEXTS)
    ):
        return _executable("Windows PE/MZ")
    if _SHEBANG.match(head):
        return _script()
    return None


def _script() -> Verdict:
    return _no(
        Refusal.SCRIPT,
        "Ce fichier est un script (programme en texte), quel que soit son nom : il ne peut pas "
        "être partagé. " + _ACCEPTED,
        "script",
    )


_REPRINT = (
    "Ouvrez-le dans votre lecteur PDF et imprimez-le en PDF (Imprimer, puis « Enregistrer au format "
    "PDF ») : la copie obtenue peut être envoyée."
)


def _inspect_pdf(fp: BinaryIO, *, size: int) -> Verdict:
    hidden = _hidden_content(fp, size=size, markup=False)
    if hidden is not None:
        return hidden
    fp.seek(0)
    problem = inspect_pdf(fp.read(size))
    if problem is None:
        return _ok("pdf")
    if problem is PdfProblem.ENCRYPTED:
        return _protected("pdf-chiffré")
    if problem in (PdfProblem.JAVASCRIPT, PdfProblem.LAUNCH):
        what = "du JavaScript" if problem is PdfProblem.JAVASCRIPT else "une commande qui lance un programme"
        return _no(
            Refusal.ACTIVE_CONTENT,
            f"Ce PDF contient {what}, qui s'exécuterait à l'ouverture : il n'est pas accepté. " + _REPRINT,
            f"pdf-{problem.value}",
        )
    if problem is PdfProblem.TOO_COMPLEX:
        return _no(
            Refusal.INVALID_PDF,
            "Ce PDF est trop complexe pour être vérifié : il n'est pas accepté. " + _REPRINT,
            "pdf-trop-complexe",
        )
    return _no(
        Refusal.INVALID_PDF,
        "Ce fichier se présente comme un PDF mais n'en est pas un valide (structure illisible) : il "
        "n'est pas accepté. " + _REPRINT,
        f"pdf-{problem.value}",
    )


# Markup that a browser would run if it sniffed the file as a page (JPEG+HTML polyglots). At least
# six fixed bytes each: in compressed image data a false match is below 1 in 2^40 per position.
_MARKUP = re.compile(rb"<(?:script|html|body|iframe)[\s>/]|<!doctype\s+html|<\?php\s", re.IGNORECASE)
_MARKUP_OVERLAP = 32


def _hidden_content(fp: BinaryIO, *, size: int, markup: bool) -> Verdict | None:
    """A refusal if a document or an image also carries a second file (a polyglot).

    A zip is read from its end record, so a zip appended to a PDF or an image is a working archive
    (PDF + zip holding an .exe, GIF + zip): refused when a real end record points to a real
    central directory. Images are also scanned whole for HTML or PHP markup (JPEG + HTML).
    """
    tail_len = min(size, _ZIP_EOCD_SEARCH)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos >= 0 and pos + 22 <= len(tail):
        cd_size = struct.unpack_from("<I", tail, pos + 12)[0]
        cd_start = size - tail_len + pos - cd_size
        if 0 <= cd_start < size:
            fp.seek(cd_start)
            if fp.read(4) == b"PK\x01\x02":
                return _hidden("une archive ZIP ajoutée à la fin", "polyglotte-zip")
    if not markup:
        return None
    fp.seek(0)
    previous = b""
    while chunk := fp.read(_SCAN_CHUNK):
        if _MARKUP.search(previous + chunk):
            return _hidden("du code de page web (HTML ou PHP)", "polyglotte-html")
        previous = chunk[-_MARKUP_OVERLAP:]
    return None


def _hidden(what: str, detected: str) -> Verdict:
    return _no(
        Refusal.HIDDEN_CONTENT,
        f"Ce fichier cache un second contenu ({what}) en plus du document : il n'est pas accepté. "
        "Enregistrez ou exportez à nouveau le document depuis son logiciel d'origine, puis "
        "réessayez.",
        detected,
    )


def _iso_media(head: bytes) -> Verdict:
    """ISO base media (``ftyp`` box): HEIC/HEIF photos are accepted; video and others are not."""
    box_size = struct.unpack(">I", head[:4])[0]
    major = head[8:12]
    brands = [major]
    end = min(box_size, len(head)) if box_size >= 16 else 16
    brands += [head[i : i + 4] for i in range(16, end - 3, 4)]
    if major in _HEIF_BRANDS:
        return _ok(_HEIF_BRANDS[major])
    if major in (b"avif", b"avis"):
        return _unsupported("image AVIF")
    if any(b in _HEIF_BRANDS for b in brands[1:]) and major not in (b"isom", b"mp41", b"mp42"):
        return _ok("heif")
    return _unsupported("vidéo ou média ISO (" + major.decode("latin-1").strip() + ")")


def _is_dos_or_pe(head: bytes, fp: BinaryIO, *, size: int) -> bool:
    """Whether an ``MZ`` file is a DOS/Windows executable rather than ciphertext starting by chance.

    A PE file points (offset 0x3C) to a ``PE\\0\\0`` header. A bare DOS program has no such pointer:
    it is recognised by its header fields (header size in paragraphs, page counts) being coherent.
    """
    if len(head) < 64:
        return not _looks_random(head) or len(head) < _RANDOM_MIN_SAMPLE
    e_lfanew = struct.unpack_from("<I", head, 0x3C)[0]
    if 0 < e_lfanew <= size - 4:
        fp.seek(e_lfanew)
        if fp.read(4) == b"PE\x00\x00":
            return True
    last_page, pages, _relocs, header_paragraphs = struct.unpack_from("<4H", head, 2)
    return bool(0 < pages <= (size + 511) // 512 + 1 and last_page < 512 and header_paragraphs >= 2)


_TEXT_CONTROL = frozenset(range(32)) - {9, 10, 12, 13, 27}
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe")


def _text_kind(head: bytes) -> Verdict | None:
    """A refusal if ``head`` is text (HTML, SVG, script or plain text); None if it is binary."""
    text = _as_text(head)
    if text is None:
        return None
    lowered = text.lstrip().lower()
    sample = lowered[:_HEAD_BYTES].encode("utf-8", "ignore")
    if lowered.startswith("#!") or sample.startswith(b"<?php") or b"<?php" in sample:
        return _script()
    if b"<svg" in sample:
        return _no(
            Refusal.SVG,
            "Les images SVG ne sont pas acceptées (elles peuvent contenir du code) : exportez "
            "l'image en PNG ou en JPEG puis envoyez-la à nouveau.",
            "svg",
        )
    if any(marker in sample for marker in _HTML_MARKERS):
        return _no(
            Refusal.HTML,
            "Les pages web (HTML) ne sont pas acceptées : enregistrez ou imprimez la page en PDF "
            "puis envoyez le PDF.",
            "html",
        )
    return _no(
        Refusal.TEXT,
        "Les fichiers texte (dont les scripts, pages web et fichiers XML) ne sont pas acceptés : "
        "enregistrez le contenu en PDF ou dans un document Word ou OpenDocument. " + _ACCEPTED,
        "text",
    )


def _as_text(head: bytes) -> str | None:
    """Decode ``head`` if it is text in a common encoding; None for binary content."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            body = head[len(bom) :]
            try:
                return codecs.getincrementaldecoder(encoding)().decode(body, final=False)
            except UnicodeDecodeError:
                return None
    if b"\x00" in head:
        return None
    controls = sum(1 for b in head if b in _TEXT_CONTROL)
    if controls > len(head) // 100:
        return None
    try:
        # final=False: a multi-byte character cut by the head's end is not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        pass
    # Legacy 8-bit text (Windows-1252, Latin-1): almost only printable ASCII.
    printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
    if printable >= 0.95 * len(head):
        return head.decode("latin-1")
    return None


def _sample(fp: BinaryIO, *, size: int) -> bytes:
    """Up to 64 KiB spread over the file (start, two interior points, end).

    Spreading matters: a program padded with random bytes at its start must still show its
    structure somewhere in the sample.
    """
    if size <= _SAMPLE_CHUNK * _SAMPLE_CHUNKS:
        fp.seek(0)
        return fp.read(size)
    parts = []
    step = (size - _SAMPLE_CHUNK) // (_SAMPLE_CHUNKS - 1)
    for i in range(_SAMPLE_CHUNKS):
        fp.seek(i * step)
        parts.append(fp.read(_SAMPLE_CHUNK))
    return b"".join(parts)


def _looks_random(sample: bytes) -> bool:
    """Whether ``sample`` is statistically indistinguishable from uniformly random bytes.

    Two independent tests must agree. (1) The byte histogram: from 1280 bytes on, Pearson's
    chi-square against the uniform distribution must fall inside the band where real randomness
    lands (too flat is as suspicious as too skewed: a counter 0, 1, 2... is perfectly flat); below
    1280 bytes, where the chi-square is unreliable, no byte value may be much more frequent than
    chance allows and the number of distinct values must be near its expectation. (2) Order:
    ciphertext does not compress, so deflate must not shrink the sample. Under 64 bytes: False.
    """
    n = len(sample)
    if n < _RANDOM_MIN_SAMPLE:
        return False
    if len(zlib.compress(sample, 1)) < 0.98 * n:
        return False
    counts = Counter(sample)
    expected = n / 256
    if n >= _CHI2_MIN_SAMPLE:
        chi2 = sum((c - expected) ** 2 for c in counts.values()) / expected
        chi2 += (256 - len(counts)) * expected  # values that never occur
        return _CHI2_LOW < chi2 < _CHI2_LIMIT
    max_count = max(counts.values())
    if max_count > expected + 7 * math.sqrt(expected) + 6:
        return False
    expected_distinct = 256 * (1 - (255 / 256) ** n)
    return len(counts) >= 0.8 * expected_distinct


# --- zip containers ------------------------------------------------------------------------------

_WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_SHEET_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_OOXML_OTHER_MAIN = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": "modèle Word",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": "modèle Excel",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": (
        "présentation PowerPoint"
    ),
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml": (
        "diaporama PowerPoint"
    ),
}
_ODF_KINDS = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
}


def _inspect_zip(fp: BinaryIO, *, size: int) -> Verdict:
    """Zip-based files: OOXML (.docx/.xlsx) and OpenDocument (.odt/.ods) pass; archives do not.

    Bounded: the end record is read first and a zip with too many entries or a huge central
    directory is refused before ``zipfile`` parses it; at most ``_ZIP_MAX_XML_READ`` bytes of one
    small part are ever inflated.
    """
    bounds = _zip_bounds(fp, size=size)
    if bounds is not None:
        return bounds
    fp.seek(0)
    try:
        with zipfile.ZipFile(fp) as zf:
            verdict = _inspect_zip_entries(zf)
            if verdict.allowed:
                verdict = _inflates_within_budget(zf) or verdict
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        KeyError,
    ):
        # RuntimeError: an encrypted member; NotImplementedError: an exotic compression method.
        return _archive("zip illisible ou corrompu")
    if verdict.allowed and verdict.kind is not None and verdict.kind.kind in ("docx", "xlsx"):
        return _vba_macros(fp, size=size) or verdict
    return verdict


def _inflates_within_budget(zf: zipfile.ZipFile) -> Verdict | None:
    """Refuse a package that inflates past ``_ZIP_MAX_INFLATED`` (zip bomb), declared or real.

    Every member is inflated in pieces and thrown away, so ``zipfile`` checks each one's size and
    CRC: a central directory that understates sizes fails here (``BadZipFile``) instead of later in
    the professional's office suite.
    """
    infos = zf.infolist()
    declared = sum(info.file_size for info in infos)
    if declared > _ZIP_MAX_INFLATED:
        return _bomb(declared)
    inflated = 0
    for info in infos:
        with zf.open(info) as member:
            while chunk := member.read(_INFLATE_CHUNK):
                inflated += len(chunk)
                if inflated > _ZIP_MAX_INFLATED:
                    return _bomb(inflated)
    return None


def _bomb(inflated: int) -> Verdict:
    return _no(
        Refusal.COMPRESSION_BOMB,
        "Ce document se décompresse en un volume anormal (plus de "
        f"{_ZIP_MAX_INFLATED // (1024 * 1024)} Mo) : il n'est pas accepté. Ouvrez-le dans votre "
        "logiciel, enregistrez-le à nouveau (ou exportez-le en PDF) puis réessayez.",
        f"bombe-zip ({inflated} octets)",
    )


def _vba_macros(fp: BinaryIO, *, size: int) -> Verdict | None:
    """oletools' olevba on the whole file: VBA projects and Excel 4 (XLM) macros, wherever stored."""
    fp.seek(0)
    data = fp.read(size)
    try:
        parser = VBA_Parser("document", data=data)
    except Exception:  # olevba raises its own and many library exceptions on malformed input
        return _invalid_office("olevba-illisible")
    try:
        if parser.detect_vba_macros():
            return _macro("vba")
        if parser.type == "OLE" and parser.detect_xlm_macros():
            return _macro("xlm")
        return None
    except Exception:
        return _invalid_office("olevba-illisible")
    finally:
        parser.close()


def _zip_bounds(fp: BinaryIO, *, size: int) -> Verdict | None:
    """Refuse zips whose end record announces more than we accept to parse."""
    tail_len = min(size, _ZIP_EOCD_SEARCH)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return _archive("zip illisible ou corrompu")
    (entries, cd_size) = struct.unpack_from("<HI", tail, pos + 10)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        return _archive("zip64")
    if entries > _ZIP_MAX_ENTRIES or cd_size > _ZIP_MAX_CENTRAL_DIRECTORY:
        return _archive(f"zip de {entries} fichiers")
    return None


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """A member's content if it inflates to at most ``limit`` bytes, else None (never more read)."""
    if info.file_size > limit:
        return None
    with zf.open(info) as member:
        data = member.read(limit + 1)
    return data if len(data) <= limit else None


def _inspect_zip_entries(zf: zipfile.ZipFile) -> Verdict:
    infos = zf.infolist()
    by_name = {info.filename: info for info in infos}
    lowered = [name.lower() for name in by_name]
    first = min(infos, key=lambda i: i.header_offset) if infos else None

    if "[Content_Types].xml" in by_name:
        return _inspect_ooxml(zf, by_name, lowered)
    if first is not None and first.filename == "mimetype":
        return _inspect_odf(zf, by_name, first)
    if any(n in ("word/document.xml", "xl/workbook.xml", "content.xml") for n in lowered):
        return _invalid_office("zip-office-incomplet")
    if "classes.dex" in lowered or "meta-inf/manifest.mf" in lowered:
        return _executable("application Java/Android")
    return _archive("zip")


def _inspect_ooxml(zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], lowered: list[str]) -> Verdict:
    if any(info.flag_bits & 0x1 for info in by_name.values()):
        return _protected("ooxml-chiffré")
    if any(n.endswith(("vbaproject.bin", "vbadata.xml")) or "/activex/" in n for n in lowered):
        return _macro("ooxml-macro")
    raw = _read_member(zf, by_name["[Content_Types].xml"], _ZIP_MAX_XML_READ)
    if raw is None:
        return _invalid_office("ooxml-content-types-trop-grand")
    if re.search(rb"macroEnabled|vnd\.ms-office\.vbaProject|vnd\.ms-office\.activeX", raw, re.I):
        return _macro("ooxml-macro")
    try:
        # defusedxml: no entity expansion, no external entities (a billion-laughs part is refused).
        root = SafeElementTree.fromstring(raw)
    except (SafeElementTree.ParseError, ValueError, DefusedXmlException):
        return _invalid_office("ooxml-content-types-illisible")
    parts: dict[str, str] = {}
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Override":
            name, content_type = element.get("PartName"), element.get("ContentType")
            if name is not None and content_type is not None:
                parts[name.lstrip("/")] = content_type.strip()
    for part, content_type in parts.items():
        if content_type in (_WORD_MAIN, _SHEET_MAIN) and part in by_name:
            return _ok("docx" if content_type == _WORD_MAIN else "xlsx")
    for content_type in parts.values():
        if content_type in _OOXML_OTHER_MAIN:
            return _unsupported(_OOXML_OTHER_MAIN[content_type])
    return _invalid_office("ooxml-sans-partie-principale")


def _inspect_odf(zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], first: zipfile.ZipInfo) -> Verdict:
    # ODF 1.2 part 3, 3.3: "mimetype" is the first entry, stored uncompressed.
    if first.compress_type != zipfile.ZIP_STORED:
        return _invalid_office("odf-mimetype-compressé")
    raw = _read_member(zf, first, 200)
    mimetype = raw.decode("ascii", "replace").strip() if raw is not None else ""
    if any(info.flag_bits & 0x1 for info in by_name.values()):
        return _protected("odf-chiffré")
    lowered = [n.lower() for n in by_name]
    if any(n.startswith(("basic/", "scripts/")) for n in lowered):
        return _macro("odf-macro")
    kind = _ODF_KINDS.get(mimetype)
    if kind is None:
        if mimetype.startswith("application/vnd.oasis.opendocument."):
            return _unsupported("document OpenDocument " + mimetype.rsplit(".", 1)[-1])
        return _invalid_office("odf-mimetype-inconnu")
    if "content.xml" not in by_name:
        return _invalid_office("odf-sans-content")
    return _ok(kind)


# --- OLE2 compound files (Office 97-2003) ------------------------------------------------------


def _inspect_ole(fp: BinaryIO, *, size: int) -> Verdict:
    verdict = _inspect_ole_directory(fp)
    if verdict.allowed:
        return _vba_macros(fp, size=size) or verdict
    return verdict


def _inspect_ole_directory(fp: BinaryIO) -> Verdict:
    """Word .doc (``WordDocument`` stream) and Excel .xls (``Workbook``/``Book``) pass.

    Refused: any VBA project (Word's ``Macros`` storage, Excel's ``_VBA_PROJECT_CUR``, a ``VBA``
    storage anywhere), password-protected OOXML (``EncryptedPackage``), other OLE files (.msi,
    .ppt, .msg...).
    """
    fp.seek(0)
    try:
        ole = olefile.OleFileIO(fp)
    except Exception:  # olefile raises many exception types on malformed input
        return _invalid_office("ole-illisible")
    try:
        paths = [[part.lower() for part in entry] for entry in ole.listdir(streams=True, storages=True)]
        names = {part for entry in paths for part in entry}
        if names & {"macros", "_vba_project_cur", "vba", "_vba_project"}:
            return _macro("ole-vba")
        if "encryptedpackage" in names or "encryptioninfo" in names:
            return _protected("ole-chiffré")
        top = {entry[0] for entry in paths if len(entry) == 1}
        if "worddocument" in top:
            if _stream_head(ole, "WordDocument", 2) == b"\xec\xa5":  # FIB wIdent, [MS-DOC] 2.5.2
                return _ok("doc")
            return _invalid_office("ole-worddocument-invalide")
        for stream in ("Workbook", "Book"):
            if stream.lower() in top:
                if _stream_head(ole, stream, 2) == b"\x09\x08":  # BIFF BOF record, [MS-XLS] 2.4.21
                    return _ok("xls")
                return _invalid_office("ole-workbook-invalide")
        return _unsupported("fichier OLE (Outlook, PowerPoint, installeur Windows...)")
    except Exception:
        return _invalid_office("ole-illisible")
    finally:
        ole.close()


def _stream_head(ole: olefile.OleFileIO, name: str, n: int) -> bytes:
    with ole.openstream(name) as stream:
        data: bytes = stream.read(n)
    return data
