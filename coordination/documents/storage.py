"""The content-addressed document store: ``<documents_dir>/ab/cd/<sha256>``.

Paths come only from the sha256 we computed, never from anything a user sent. Writes are atomic:
content is received into ``<documents_dir>/.incoming/`` (same filesystem), flushed to disk, then
renamed into place, so a crash leaves at worst an orphan in ``.incoming`` and never a half file at a
referenced path. Identical content is stored once (the second upload finds the file and drops its
copy). These functions do blocking file I/O: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from coordination.errors import ErrCode, TooLarge

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def too_large(max_bytes: int) -> TooLarge:
    mb = max_bytes / (1024 * 1024)
    return TooLarge(
        f"Le fichier dépasse la taille maximale de {mb:g} Mo : réduisez-le (par exemple en "
        "l'exportant en PDF ou en baissant la résolution de la photo) puis réessayez.",
        errcode=ErrCode.TOO_LARGE,
    )


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A fully received upload, still in ``.incoming``."""

    path: Path
    size: int
    sha256: str


class Receiver:
    """Writes an upload to a temporary file as it arrives, hashing it and refusing it past the cap."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        incoming = root / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming, prefix="up-")
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.size = 0
        self._hash = hashlib.sha256()
        self._max = max_bytes

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max:
            raise too_large(self._max)
        self._hash.update(data)
        self._file.write(data)

    def finish(self) -> ReceivedFile:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return ReceivedFile(path=self.path, size=self.size, sha256=self._hash.hexdigest())

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def blob_path(root: Path, sha256: str) -> Path:
    if not _SHA256.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return root / sha256[:2] / sha256[2:4] / sha256


def store(root: Path, received: ReceivedFile) -> Path:
    """Move received content to its content address (or drop it if that content is already there)."""
    final = blob_path(root, received.sha256)
    if final.exists():
        received.path.unlink(missing_ok=True)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(received.path, final)  # atomic on one filesystem
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return final


def sweep_orphans(root: Path, *, referenced: set[str], older_than_seconds: float) -> int:
    """Remove what a crash left behind: unfinished uploads in ``.incoming``, and stored content that
    no document row references (stored, then the transaction failed). Only files older than
    ``older_than_seconds`` go, so an upload in flight is never touched. Returns how many were removed.
    """
    if not root.exists():
        return 0
    limit = time.time() - older_than_seconds
    removed = 0
    incoming = root / ".incoming"
    candidates = list(incoming.glob("up-*")) if incoming.exists() else []
    candidates += [p for p in root.glob("??/??/*") if _SHA256.match(p.name) and p.name not in referenced]
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
