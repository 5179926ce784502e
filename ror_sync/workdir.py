"""Temporary files of an import, kept under the instance's home and swept when their import is dead.

A large RPPS import parses the second half of its file in a helper process, which stages it in files
(a SQLite file, or ``COPY`` text files for PostgreSQL: 35 to 250 MB). They live in a directory of their
own, ``<temp_dir>/azurezo-rpps-<pid>-<random>`` (``<home>/tmp`` from the CLI), not in the system's
``/tmp``: a killed import (``kill -9``, a reboot) used to leave them there forever (issue 6, item 13).
The importing process holds a lock on ``.lock`` in that directory for as long as it runs;
:func:`sweep_stale_import_files` removes every directory whose process is gone or whose lock nobody
holds. Each import sweeps its ``temp_dir`` before it starts, and ``azurezo up`` sweeps ``<home>/tmp``
when it starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "azurezo-rpps-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")
LOCK_FILE = ".lock"
# A directory whose lock file is not there yet may be one being created right now: left alone that long.
CREATION_GRACE_SECONDS = 60.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _lock_is_free(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases the lock this probe may have taken
    return True


def _is_stale(path: Path) -> bool:
    match = _NAME.match(path.name)
    if match is None:
        return False  # not one of ours
    if not _alive(int(match.group(1))):
        return True
    # The number may belong to another process now (after a reboot): the live import holds the lock.
    try:
        return _lock_is_free(path / LOCK_FILE)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            return time.time() - path.stat().st_mtime > CREATION_GRACE_SECONDS
        return False


def sweep_stale_import_files(temp_dir: Path) -> int:
    """Remove the temporary directories that dead imports left in ``temp_dir``; returns how many.

    Safe to call at any time, also while imports run (theirs are kept); a missing ``temp_dir`` is fine.
    ``azurezo up`` calls it with ``<home>/tmp`` when it starts.
    """
    removed = 0
    try:
        entries = list(Path(temp_dir).iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_dir() and _is_stale(entry):
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed += 1
                logger.info("import temporary directory of a dead import removed: %s", entry)
    return removed


@contextlib.contextmanager
def import_temp_dir(temp_dir: Path) -> Iterator[Path]:
    """A private directory for this import's temporary files under ``temp_dir``, locked while it runs,
    removed when the block ends (and by a later sweep if this process is killed)."""
    temp_dir = Path(temp_dir)
    temp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=temp_dir))
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
