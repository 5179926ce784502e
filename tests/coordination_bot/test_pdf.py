"""The synthesis PDF: well-formed, French text kept (WinAnsi), PDF specials escaped, paginated."""

from __future__ import annotations

import re

from coordination_bot.pdf import text_pdf


def test_pdf_structure_and_text() -> None:
    data = text_pdf("Synthèse - DUPONT Marie", ["Tâche (urgente) \\ ❗ important", "é" * 300])
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    assert "Synthèse".encode("cp1252") in data
    assert b"T\xe2che \\(urgente\\) \\\\ \\(!\\) important" in data
    # The xref offsets point at the objects.
    xref = int(re.search(rb"startxref\n(\d+)", data)[1])  # type: ignore[index]
    assert data[xref:].startswith(b"xref")
    offsets = [int(x) for x in re.findall(rb"(\d{10}) 00000 n", data)]
    for number, offset in enumerate(offsets, start=1):
        assert data[offset:].startswith(b"%d 0 obj" % number)


def test_long_texts_are_paginated() -> None:
    data = text_pdf("T", [f"ligne {i}" for i in range(150)])
    assert b"/Count 3" in data
