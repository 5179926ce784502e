"""File typing by real content, on real sample files generated in the tests."""

from __future__ import annotations

import io
import os
import random
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

import filetyping
from filetyping import ALLOWED_KINDS, Refusal, classify, classify_path
from filetyping.pdf import PDF_TIMEOUT_SECONDS
from tests.filetyping import samples

ALLOWED: list[tuple[str, Callable[[], bytes]]] = [
    ("pdf", samples.pdf),
    ("jpeg", samples.jpeg),
    ("png", samples.png),
    ("gif", samples.gif),
    ("webp", samples.webp),
    ("heic", samples.heic),
    ("doc", samples.doc),
    ("docx", samples.docx),
    ("xls", samples.xls),
    ("xlsx", samples.xlsx),
    ("odt", samples.odt),
    ("ods", samples.ods),
]


@pytest.mark.parametrize(("kind", "make"), ALLOWED, ids=[k for k, _ in ALLOWED])
def test_each_allowed_kind_is_recognised_with_its_mime_type_and_extension(
    kind: str, make: Callable[[], bytes]
) -> None:
    verdict = classify(make())
    assert verdict.allowed, verdict.reason
    assert verdict.kind is ALLOWED_KINDS[kind]
    assert verdict.mime_type == ALLOWED_KINDS[kind].mime_type
    assert verdict.extension == ALLOWED_KINDS[kind].extension
    assert not verdict.encrypted
    assert verdict.reason is None


def test_allowed_kinds_cover_the_product_list() -> None:
    assert set(ALLOWED_KINDS) == {k for k, _ in ALLOWED} | {"heif"}
    assert ALLOWED_KINDS["docx"].mime_type.endswith("wordprocessingml.document")


def test_xls_written_by_old_excel_with_a_book_stream_is_accepted() -> None:
    assert classify(samples.xls(stream="Book")).kind is ALLOWED_KINDS["xls"]


def test_a_file_object_is_read_without_being_loaded_whole(tmp_path: Path) -> None:
    class CountingReader(io.BytesIO):
        largest_read = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            CountingReader.largest_read = max(CountingReader.largest_read, len(data))
            return data

    # Images are scanned whole for hidden markup, but in pieces of at most 1 MiB.
    big_jpeg = samples.jpeg() + b"\0" * (9 * 1024 * 1024)
    verdict = classify(CountingReader(big_jpeg))
    assert verdict.kind is ALLOWED_KINDS["jpeg"]
    assert verdict.size == len(big_jpeg)
    assert CountingReader.largest_read <= 1024 * 1024

    path = tmp_path / "ordonnance.pdf"
    path.write_bytes(samples.pdf())
    assert classify_path(str(path)).kind is ALLOWED_KINDS["pdf"]


REFUSED: list[tuple[str, Callable[[], bytes], str]] = [
    ("elf-named-pdf", samples.elf, Refusal.EXECUTABLE),
    ("pe", samples.pe, Refusal.EXECUTABLE),
    ("dos-mz", samples.dos_exe, Refusal.EXECUTABLE),
    ("macho", samples.macho, Refusal.EXECUTABLE),
    ("shebang", samples.shell_script, Refusal.SCRIPT),
    ("html", samples.html, Refusal.HTML),
    ("svg", samples.svg, Refusal.SVG),
    ("text", samples.plain_text, Refusal.TEXT),
    ("zip", samples.plain_zip, Refusal.ARCHIVE),
    ("gzip", samples.gzip_file, Refusal.ARCHIVE),
    ("tar", samples.tar_file, Refusal.ARCHIVE),
    ("7z", samples.seven_zip, Refusal.ARCHIVE),
    ("rar", samples.rar, Refusal.ARCHIVE),
    ("docm", samples.docm, Refusal.MACRO),
    ("xlsm", samples.xlsm, Refusal.MACRO),
    ("docx-with-vbaproject", samples.docx_with_macro_but_plain_content_type, Refusal.MACRO),
    ("doc-with-macros", lambda: samples.doc(with_macros=True), Refusal.MACRO),
    ("xls-with-macros", lambda: samples.xls(with_macros=True), Refusal.MACRO),
    ("odt-with-basic", lambda: samples.odf(samples.ODT, with_basic=True), Refusal.MACRO),
    ("docx-without-content-types", samples.docx_without_content_types, Refusal.INVALID_OFFICE),
    ("docx-without-document", samples.docx_without_document, Refusal.INVALID_OFFICE),
    ("doc-with-bad-fib", samples.doc_with_bad_fib, Refusal.INVALID_OFFICE),
    (
        "odt-compressed-mimetype",
        lambda: samples.odf(samples.ODT, stored_mimetype=False),
        Refusal.INVALID_OFFICE,
    ),
    ("password-protected-docx", samples.encrypted_ooxml, Refusal.PROTECTED),
    ("pptx", samples.pptx, Refusal.UNSUPPORTED),
    ("other-ole", samples.msi_like, Refusal.UNSUPPORTED),
    ("mp4", samples.mp4, Refusal.UNSUPPORTED),
    ("low-entropy-unknown", samples.low_entropy_unknown, Refusal.UNKNOWN),
]


@pytest.mark.parametrize(("make", "refusal"), [(m, r) for _, m, r in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_refused_content_says_why_in_french(make: Callable[[], bytes], refusal: str) -> None:
    verdict = classify(make())
    assert not verdict.allowed
    assert verdict.refusal == refusal
    assert verdict.kind is None and not verdict.encrypted
    assert verdict.reason and verdict.reason.endswith(".")
    assert any(word in verdict.reason for word in (" pas ", " ne ", "n'est"))


def test_disguised_executable_reason_names_the_executable() -> None:
    verdict = classify(samples.elf())
    assert verdict.reason is not None
    assert "programme exécutable (ELF (Linux))" in verdict.reason
    assert "quel que soit son nom" in verdict.reason


def test_size_limit_refuses_one_byte_more_without_reading() -> None:
    limit = filetyping.DEFAULT_MAX_UPLOAD_BYTES
    exactly = samples.pdf().ljust(limit, b"\0")
    assert classify(exactly).allowed
    verdict = classify(exactly + b"\0")
    assert verdict.refusal == Refusal.TOO_LARGE
    assert verdict.reason is not None and "10 Mo" in verdict.reason
    assert verdict.size == limit + 1
    assert classify(samples.png(), max_bytes=100).refusal == Refusal.TOO_LARGE


def test_empty_file_is_refused() -> None:
    assert classify(b"").refusal == Refusal.EMPTY


def test_zip_bomb_is_not_inflated() -> None:
    bomb = samples.zip_bomb_content_types()
    assert len(bomb) < 200 * 1024
    verdict = classify(bomb)
    assert verdict.refusal == Refusal.INVALID_OFFICE


def test_zip_with_too_many_entries_is_refused_before_parsing() -> None:
    verdict = classify(samples.zip_with_many_entries(6000))
    assert verdict.refusal == Refusal.ARCHIVE
    assert verdict.detected == "zip de 6000 fichiers"


def test_truncated_zip_and_ole_are_refused_not_crashing() -> None:
    assert not classify(samples.docx()[:300]).allowed
    assert not classify(samples.doc()[:1200]).allowed
    assert not classify(b"PK\x03\x04" + b"\0" * 100).allowed


# --- encrypted attachments -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [samples.pdf, samples.docx, samples.jpeg, samples.plain_text])
def test_real_matrix_encrypted_attachment_is_allowed_as_ciphertext(
    make: Callable[[], bytes],
) -> None:
    plaintext = make()
    ciphertext, keys = encrypt_attachment(plaintext)
    verdict = classify(ciphertext)
    assert verdict.allowed and verdict.encrypted
    assert verdict.kind is None and verdict.mime_type is None
    assert decrypt_attachment(ciphertext, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"]) == plaintext


def test_encrypted_attachment_of_ten_megabytes_is_allowed() -> None:
    ciphertext, _ = encrypt_attachment(os.urandom(16) * (10 * 1024 * 1024 // 16))
    assert classify(ciphertext).encrypted


@pytest.mark.parametrize("size", [64, 100, 300, 1000, 1279, 1280, 5000, 100_000])
def test_random_bytes_of_any_size_pass_as_ciphertext(size: int) -> None:
    # Many seeds: the false-refusal rate of ciphertext must be negligible at every size.
    for seed in range(200):
        data = random.Random(seed * 1000 + size).randbytes(size)
        verdict = classify(data)
        assert verdict.allowed, (size, seed, verdict.refusal)


def test_ciphertext_starting_with_a_two_byte_signature_is_not_refused() -> None:
    for prefix in (b"MZ", b"\x1f\x8b", b"#!"):
        for seed in range(50):
            data = prefix + random.Random(seed).randbytes(4000)
            assert classify(data).encrypted, (prefix, seed)


def test_encryption_detection_is_off_for_plaintext_uploads() -> None:
    ciphertext, _ = encrypt_attachment(samples.pdf())
    verdict = classify(ciphertext, allow_encrypted=False)
    assert verdict.refusal == Refusal.UNKNOWN


def test_tiny_or_structured_unknown_bytes_are_not_taken_for_ciphertext() -> None:
    assert classify(os.urandom(40)).refusal in (Refusal.UNKNOWN, Refusal.TEXT)
    assert classify(bytes(range(256)) * 20).refusal == Refusal.UNKNOWN
    assert classify(b"\x00\x01" * 5000).refusal == Refusal.UNKNOWN


def test_executable_hidden_behind_a_random_prefix_is_not_taken_for_ciphertext() -> None:
    body = samples.elf()
    padded = os.urandom(16 * 1024) + body * 4
    verdict = classify(padded)
    assert not verdict.allowed
    assert verdict.refusal == Refusal.UNKNOWN


def test_known_signatures_are_refused_before_the_randomness_test() -> None:
    # A gzip stream is high-entropy after its header, yet it is refused as an archive.
    data = zlib.compress(os.urandom(50_000))
    gz = samples.gzip_file()[:10] + data
    assert classify(gz).refusal == Refusal.ARCHIVE


def test_filetyping_imports_no_package_of_ours_nor_synapse() -> None:
    code = (
        "import sys, filetyping, filetyping.pdf; "
        "ours = {'synapse', 'synapse_module', 'coordination', 'ror_sync', 'azurezo_cli'}; "
        "assert not ours & {m.split('.')[0] for m in sys.modules}, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- hostile samples (issue 6, item 8) -------------------------------------------------------------

HOSTILE: list[tuple[str, Callable[[], bytes], str, str]] = [
    ("mz-then-random", samples.mz_then_random, Refusal.EXECUTABLE, "programme exécutable"),
    ("shebang-then-random", samples.shebang_then_random, Refusal.SCRIPT, "script"),
    ("pdf-header-then-garbage", samples.pdf_header_then_garbage, Refusal.INVALID_PDF, "pas un valide"),
    ("pdf-openaction-js", samples.pdf_open_action_javascript, Refusal.ACTIVE_CONTENT, "JavaScript"),
    ("pdf-js-name-tree", samples.pdf_javascript_name_tree, Refusal.ACTIVE_CONTENT, "JavaScript"),
    (
        "pdf-page-js-in-object-stream",
        samples.pdf_page_action_in_object_stream,
        Refusal.ACTIVE_CONTENT,
        "JavaScript",
    ),
    ("pdf-js-hex-name", samples.pdf_javascript_hex_encoded_name, Refusal.ACTIVE_CONTENT, "JavaScript"),
    ("pdf-launch", samples.pdf_launch_action, Refusal.ACTIVE_CONTENT, "lance un programme"),
    ("pdf-plus-zip-exe", samples.pdf_then_zip_with_exe, Refusal.HIDDEN_CONTENT, "archive ZIP"),
    ("gif-plus-zip", samples.gif_then_zip, Refusal.HIDDEN_CONTENT, "archive ZIP"),
    ("jpeg-plus-html", samples.jpeg_then_html, Refusal.HIDDEN_CONTENT, "page web"),
    ("docx-inflating-to-1.5-GB", samples.docx_inflating_to, Refusal.COMPRESSION_BOMB, "décompresse"),
]


@pytest.mark.parametrize(("make", "refusal", "words"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_sample_is_refused_with_a_french_reason(
    make: Callable[[], bytes], refusal: str, words: str
) -> None:
    verdict = classify(make())
    assert not verdict.allowed
    assert verdict.refusal == refusal, verdict
    assert verdict.reason is not None and words in verdict.reason
    assert (
        "réessayez" in verdict.reason or "Formats acceptés" in verdict.reason or ("envoyée" in verdict.reason)
    )


def test_pdf_with_a_web_link_is_still_accepted() -> None:
    assert classify(samples.pdf_with_link()).kind is ALLOWED_KINDS["pdf"]


def test_pdf_in_object_streams_without_script_is_accepted() -> None:
    assert classify(samples._pdf_with(lambda doc: None, object_streams=True)).kind is ALLOWED_KINDS["pdf"]


def test_office_bomb_is_refused_in_bounded_time() -> None:
    bomb = samples.docx_inflating_to()
    start = time.monotonic()
    assert classify(bomb).refusal == Refusal.COMPRESSION_BOMB
    assert time.monotonic() - start < 2.0


def test_pdf_inflating_to_gigabytes_is_parsed_outside_the_calling_process() -> None:
    # One object stream inflating to 1.5 GB: qpdf parses it in the limited child process; the
    # caller (Synapse's reactor process, the service) neither inflates it nor waits unboundedly.
    sample = samples.pdf_with_huge_object_stream()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    verdict = classify(sample)
    assert time.monotonic() - start < PDF_TIMEOUT_SECONDS
    assert verdict.refusal in (None, Refusal.INVALID_PDF)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100 * 1024  # KiB


def test_office_package_understating_its_sizes_is_refused() -> None:
    # 64 MiB of zeros declared as 1 byte (local header and central directory): the member is
    # inflated anyway and zipfile's size/CRC check refuses the package.
    buf = io.BytesIO(samples.docx())
    with (
        zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf,
        zf.open("word/media/image1.bin", "w") as member,
    ):
        for _ in range(64):
            member.write(b"\0" * (1024 * 1024))
    honest = buf.getvalue()
    assert classify(honest).kind is ALLOWED_KINDS["docx"]
    with zipfile.ZipFile(io.BytesIO(honest)) as zf:
        info = zf.getinfo("word/media/image1.bin")
    lying = bytearray(honest)
    struct.pack_into("<I", lying, info.header_offset + 22, 1)  # local header: uncompressed size
    central = lying.rfind(b"PK\x01\x02")  # the appended member is the last central entry
    struct.pack_into("<I", lying, central + 24, 1)  # central directory: uncompressed size
    with zipfile.ZipFile(io.BytesIO(bytes(lying))) as zf:
        assert zf.getinfo("word/media/image1.bin").file_size == 1
    verdict = classify(bytes(lying))
    assert not verdict.allowed
    assert verdict.detected == "zip illisible ou corrompu"  # our inflation, before olevba sees it
