"""A small process supervisor: start children with their logs in files, wait until they answer,
notice a crash, stop everything cleanly.

Children run in their own session, so a Ctrl-C in the terminal reaches ``azurezo up`` only, which
then stops them in reverse start order (SIGTERM, then SIGKILL after a grace period). On Linux they
also get SIGTERM if ``azurezo up`` itself dies (``PR_SET_PDEATHSIG``), so none is left orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Logs of earlier runs kept beside the current one: <name>.log.1 (the previous run) … .5.
KEPT_RUNS = 5
# Resolved once here: the pre-exec hook runs in the forked child, where it must not start processes
# (ctypes.util.find_library would) nor import anything.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class ChildFailed(Exception):
    """A child stopped (or never became ready). The message is French and ends with its log tail."""

    def __init__(self, name: str, returncode: int | None, reason: str, tail: str) -> None:
        self.name = name
        self.returncode = returncode
        self.tail = tail
        super().__init__(f"{reason}\n--- dernières lignes de son journal ---\n{tail}".rstrip())


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    log_path: Path
    ready_url: str
    env: dict[str, str] | None = None


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]
    log_offset: int
    started_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        """The last lines this child wrote during this run (not older runs of the same log)."""
        self.log_file.flush()
        try:
            with self.spec.log_path.open("rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read()
        except OSError:
            return "(journal illisible)"
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel for SIGTERM when the supervisor dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``host:port`` now.

    Binds the way Synapse (Twisted) and uvicorn do, with ``SO_REUSEADDR``: connections of a stopped
    instance left in TIME_WAIT (for up to a minute after a stop or a crash) do not hold the port, a
    listener does (issue 6, item 11).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class Supervisor:
    """Starts children, waits for them, watches them, stops them. Not thread-safe; one per ``up``."""

    def __init__(self, *, stop_timeout: float = 15.0, poll_interval: float = 0.2) -> None:
        self.children: list[Child] = []
        self._stop_timeout = stop_timeout
        self._poll = poll_interval

    def start(self, spec: ChildSpec) -> Child:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        _rotate(spec.log_path)
        log_file = spec.log_path.open("ab")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log_file.write(f"=== azurezo: start of {spec.name} at {stamp} ===\n".encode())
        log_file.flush()
        offset = log_file.tell()
        env = {**os.environ, **(spec.env or {}), "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            list(spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = Child(spec=spec, process=process, log_file=log_file, log_offset=offset)
        self.children.append(child)
        logger.info("started %s (pid %d)", spec.name, process.pid)
        return child

    def wait_ready(
        self,
        child: Child,
        *,
        timeout: float,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Poll the child's ready URL until it answers 2xx; ``ChildFailed`` if it exits or times out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                self.raise_if_exited()
                try:
                    if client.get(child.spec.ready_url).is_success:
                        return
                except httpx.HTTPError:
                    pass
                if should_stop():
                    return
                if time.monotonic() > deadline:
                    raise ChildFailed(
                        child.name,
                        None,
                        f"« {child.name} » ne répond pas sur {child.spec.ready_url} après "
                        f"{timeout:.0f} s ; son journal complet : {child.spec.log_path}",
                        child.tail(),
                    )
                time.sleep(self._poll)

    def exited(self) -> Child | None:
        """The first child that has stopped, if any."""
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def raise_if_exited(self) -> None:
        child = self.exited()
        if child is not None:
            code = child.process.returncode
            raise ChildFailed(
                child.name,
                code,
                f"Le processus « {child.name} » s'est arrêté (code de sortie {code}) ; "
                f"son journal complet : {child.spec.log_path}",
                child.tail(),
            )

    def watch(self) -> None:
        """Block until a child stops (``ChildFailed``) or the process is interrupted (Ctrl-C)."""
        while True:
            self.raise_if_exited()
            time.sleep(self._poll)

    def stop_all(self) -> None:
        """Stop every child, last started first: SIGTERM to its process group, SIGKILL if it lingers.

        Signals are ignored meanwhile, so a second Ctrl-C cannot leave a child behind (from the main
        thread only: Python handles signals there, and only there may their handlers change).
        """
        in_main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGINT, signal.SIGTERM) if in_main else ()
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
        try:
            while self.children:
                self._stop(self.children.pop())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self, child: Child) -> None:
        """Stop one child as ``stop_all`` does, and stop watching it (to start it again)."""
        self.children.remove(child)
        self._stop(child)

    def _stop(self, child: Child) -> None:
        process = child.process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0f s: killing it", child.name, self._stop_timeout)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Grandchildren left in the child's group (none expected) go with it.
        _signal_group(process.pid, signal.SIGKILL)
        child.log_file.close()


def _rotate(log_path: Path) -> None:
    """Start every run in a fresh log file; the previous ones become ``<name>.log.1`` … ``.5``.

    A process of an earlier run may still be writing (stopping after a crash of ``azurezo up``):
    it keeps writing to its own, renamed, file, so the tail shown when this run's child fails
    holds only lines written since this start (issue 6, item 12).
    """
    if not log_path.exists():
        return
    for n in range(KEPT_RUNS - 1, 0, -1):
        older = log_path.with_name(f"{log_path.name}.{n}")
        if older.exists():
            os.replace(older, log_path.with_name(f"{log_path.name}.{n + 1}"))
    os.replace(log_path, log_path.with_name(f"{log_path.name}.1"))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
