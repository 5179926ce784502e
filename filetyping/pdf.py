"""PDF structure and active content, checked by qpdf (through pikepdf) in a bounded child process.

Why a child process: a 10 MB PDF can hold object streams that inflate to gigabytes, and qpdf has no
memory cap of its own. The child sets its own address-space and CPU limits before parsing
(``resource.setrlimit``), and the parent kills it after ``PDF_TIMEOUT_SECONDS``; a parser stuck or
blown up on hostile input therefore costs a bounded amount of time and memory and answers "refused".
The parent side (``inspect_pdf``) is blocking: call it from a worker thread.

What is refused (issue 6, item 8): content that qpdf cannot read as a PDF with at least one page
(``%PDF-1.4`` followed by garbage), password-protected PDFs (their content cannot be checked), and
any JavaScript or launch action wherever it hides: ``/JS``, ``/JavaScript`` (name trees, actions,
``/OpenAction`` and ``/AA`` triggers), ``/Launch`` actions. qpdf decodes names (``/J#61vaScript``)
and follows cross-reference streams and object streams, so a hidden key is seen as it is.
"""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path

from filetyping import _pdf_child

__all__ = ["PDF_TIMEOUT_SECONDS", "PdfProblem", "inspect_pdf"]

PDF_TIMEOUT_SECONDS = 15.0
_CHILD = Path(_pdf_child.__file__)


class PdfProblem(enum.StrEnum):
    """Why a PDF is refused (the child's whole answer, one word on its standard output)."""

    DAMAGED = _pdf_child.DAMAGED
    NO_PAGES = _pdf_child.NO_PAGES
    ENCRYPTED = _pdf_child.ENCRYPTED
    JAVASCRIPT = _pdf_child.JAVASCRIPT
    LAUNCH = _pdf_child.LAUNCH
    TOO_COMPLEX = _pdf_child.TOO_COMPLEX


def inspect_pdf(data: bytes) -> PdfProblem | None:
    """Check ``data`` (a whole PDF) in a bounded child process; None when it may be accepted."""
    try:
        done = subprocess.run(
            # -I: the child sees neither the environment's PYTHONPATH nor the working directory;
            # it is a plain script importing pikepdf only (not this package: fast to start).
            [sys.executable, "-I", str(_CHILD)],
            input=data,
            capture_output=True,
            timeout=PDF_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return PdfProblem.TOO_COMPLEX
    answer = done.stdout.decode("ascii", "replace").strip()
    if done.returncode == 0 and answer == _pdf_child.OK:
        return None
    try:
        return PdfProblem(answer)
    except ValueError:
        # Killed by its CPU or memory limit (or crashed): the file is more than we accept to parse.
        return PdfProblem.TOO_COMPLEX
