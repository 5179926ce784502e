"""The child side of ``filetyping.pdf``: run as a plain script (``python -I _pdf_child.py``).

Reads a whole PDF on its standard input, limits its own memory and CPU time first, and writes one
word: ``ok`` or the problem found. Imports nothing but the standard library and pikepdf.
"""

from __future__ import annotations

import sys

OK = "ok"
DAMAGED = "damaged"
NO_PAGES = "no_pages"
ENCRYPTED = "encrypted"
JAVASCRIPT = "javascript"
LAUNCH = "launch"
TOO_COMPLEX = "too_complex"

_MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
_CPU_LIMIT_SECONDS = 10
_MAX_OBJECTS = 500_000
_MAX_NODES = 5_000_000


def _limit_self() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (_CPU_LIMIT_SECONDS, _CPU_LIMIT_SECONDS))


def check(data: bytes) -> str | None:
    """The check itself (runs in the child; in-process only in tests of the rules)."""
    import io

    import pikepdf

    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError:
        return ENCRYPTED
    except (pikepdf.PdfError, ValueError, RuntimeError):
        return DAMAGED
    with pdf:
        try:
            if pdf.is_encrypted and not pdf.allow.extract:
                return ENCRYPTED
            if len(pdf.pages) == 0:
                return NO_PAGES
            return _active_content(pdf)
        except (pikepdf.PdfError, ValueError, RuntimeError):
            return DAMAGED


def _active_content(pdf: object) -> str | None:
    import pikepdf

    assert isinstance(pdf, pikepdf.Pdf)
    script_keys = {"/JS", "/JavaScript"}
    nodes = 0
    for count, obj in enumerate(pdf.objects):
        if count > _MAX_OBJECTS:
            return TOO_COMPLEX
        # Indirect objects are all visited by this loop; direct objects nested in them are walked
        # here (an /OpenAction is often a direct dictionary inside the catalogue).
        stack: list[object] = [obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj]
        while stack:
            nodes += 1
            if nodes > _MAX_NODES:
                return TOO_COMPLEX
            node = stack.pop()
            if isinstance(node, pikepdf.Dictionary):
                keys = set(node.keys())
                if keys & script_keys:
                    return JAVASCRIPT
                action = node.get("/S")
                if action == pikepdf.Name.JavaScript:
                    return JAVASCRIPT
                if action == pikepdf.Name.Launch or "/Launch" in keys:
                    return LAUNCH
                stack.extend(v for v in node.values() if _direct_container(v))
            elif isinstance(node, pikepdf.Array):
                stack.extend(v for v in node if _direct_container(v))
    return None


def _direct_container(value: object) -> bool:
    import pikepdf

    return isinstance(value, pikepdf.Dictionary | pikepdf.Array) and not value.is_indirect


def _main() -> int:
    _limit_self()
    data = sys.stdin.buffer.read()
    problem = check(data)
    sys.stdout.write(OK if problem is None else problem)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
