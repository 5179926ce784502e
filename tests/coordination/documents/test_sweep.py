"""What a crash leaves in the document store is cleaned, and nothing referenced or recent is touched."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from coordination.documents import storage


def _blob(root: Path, content: bytes, *, age: float) -> Path:
    sha = hashlib.sha256(content).hexdigest()
    path = storage.blob_path(root, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_sweep_removes_old_orphans_only(tmp_path: Path) -> None:
    kept = _blob(tmp_path, b"referenced", age=7200)
    orphan = _blob(tmp_path, b"orphan", age=7200)
    recent = _blob(tmp_path, b"in flight", age=10)
    incoming = tmp_path / ".incoming"
    incoming.mkdir()
    stale_upload = incoming / "up-abc"
    stale_upload.write_bytes(b"half")
    os.utime(stale_upload, (time.time() - 7200, time.time() - 7200))

    removed = storage.sweep_orphans(tmp_path, referenced={kept.name}, older_than_seconds=3600)

    assert removed == 2
    assert kept.exists() and recent.exists()
    assert not orphan.exists() and not stale_upload.exists()


def test_sweep_of_a_missing_store_is_a_no_op(tmp_path: Path) -> None:
    assert storage.sweep_orphans(tmp_path / "nope", referenced=set(), older_than_seconds=0) == 0
