"""The process supervisor behind `azurezo up`, with real child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from azurezo_cli.supervisor import KEPT_RUNS, ChildFailed, ChildSpec, Supervisor, port_is_free
from tests.support.stack import free_port


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def python_child(tmp_path: Path, name: str, code: str, ready_port: int | None = None) -> ChildSpec:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(code))
    port = ready_port or free_port()
    return ChildSpec(
        name=name,
        argv=[sys.executable, str(script), str(port)],
        log_path=tmp_path / "logs" / f"{name}.log",
        ready_url=f"http://127.0.0.1:{port}/",
    )


HTTP_SERVER = """
    import http.server, sys
    print("serving", flush=True)
    handler = http.server.SimpleHTTPRequestHandler
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


def test_waits_until_ready_then_stops_cleanly(tmp_path: Path) -> None:
    supervisor = Supervisor(stop_timeout=5)
    child = supervisor.start(python_child(tmp_path, "web", HTTP_SERVER))
    try:
        supervisor.wait_ready(child, timeout=30)
        assert supervisor.exited() is None
    finally:
        supervisor.stop_all()

    assert not alive(child.pid)
    assert supervisor.children == []
    assert "serving" in (tmp_path / "logs" / "web.log").read_text()


def test_a_crash_is_reported_with_its_code_and_only_this_runs_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "crash.log"
    log.parent.mkdir()
    log.write_text("line from an older run\n")
    spec = python_child(
        tmp_path,
        "crash",
        """
        import sys
        for i in range(50):
            print(f"line {i}")
        sys.exit(3)
        """,
    )
    supervisor = Supervisor()
    child = supervisor.start(spec)
    try:
        with pytest.raises(ChildFailed) as caught:
            supervisor.wait_ready(child, timeout=30)
    finally:
        supervisor.stop_all()

    failure = caught.value
    assert failure.name == "crash"
    assert failure.returncode == 3
    assert "« crash » s'est arrêté (code de sortie 3)" in str(failure)
    assert failure.tail.splitlines()[-1] == "line 49"
    assert "older run" not in failure.tail
    assert len(failure.tail.splitlines()) == 30


def test_a_crash_report_never_shows_what_a_process_of_an_older_run_still_writes(tmp_path: Path) -> None:
    """Issue 6 item 12: a process of the previous run, still stopping, appends a traceback to the
    log after this run started; the failure of this run's child must not show it."""
    log = tmp_path / "logs" / "crash.log"
    log.parent.mkdir()
    stale = log.open("ab")  # the older run's process holds its log open, in append mode
    stale.write(b"=== azurezo: start of crash (older run) ===\n")
    stale.flush()
    go = tmp_path / "go"
    spec = python_child(
        tmp_path,
        "crash",
        f"""
        import pathlib, sys, time
        print("fresh line of this run", flush=True)
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.02)
        sys.exit(3)
        """,
    )
    supervisor = Supervisor(poll_interval=0.05)
    child = supervisor.start(spec)
    try:
        deadline = time.monotonic() + 20
        while "fresh line" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        stale.write(b"Traceback (most recent call last):\nOldError: from the older run\n")
        stale.flush()
        go.touch()
        with pytest.raises(ChildFailed) as caught:
            supervisor.wait_ready(child, timeout=30)
    finally:
        supervisor.stop_all()
        stale.close()

    assert "fresh line of this run" in caught.value.tail
    assert "OldError" not in caught.value.tail
    assert "Traceback" not in caught.value.tail
    # The older run's log is kept beside the new one, whole.
    assert "OldError: from the older run" in (tmp_path / "logs" / "crash.log.1").read_text()


def test_logs_of_the_last_runs_are_kept(tmp_path: Path) -> None:
    spec = python_child(tmp_path, "once", "print('run')\n")
    for _ in range(KEPT_RUNS + 2):
        supervisor = Supervisor()
        child = supervisor.start(spec)
        child.process.wait()
        supervisor.stop_all()

    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert logs == ["once.log"] + [f"once.log.{n}" for n in range(1, KEPT_RUNS + 1)]


def test_watch_reports_a_child_killed_later(tmp_path: Path) -> None:
    supervisor = Supervisor(poll_interval=0.05)
    web = supervisor.start(python_child(tmp_path, "web", HTTP_SERVER))
    other = supervisor.start(python_child(tmp_path, "other", HTTP_SERVER))
    try:
        supervisor.wait_ready(web, timeout=30)
        supervisor.wait_ready(other, timeout=30)
        os.kill(web.pid, signal.SIGKILL)
        with pytest.raises(ChildFailed) as caught:
            supervisor.watch()
    finally:
        supervisor.stop_all()

    assert caught.value.name == "web"
    assert caught.value.returncode == -signal.SIGKILL
    assert not alive(other.pid)


def test_never_ready_times_out_in_french(tmp_path: Path) -> None:
    spec = python_child(tmp_path, "mute", "import time\ntime.sleep(60)\n")
    supervisor = Supervisor(stop_timeout=5)
    child = supervisor.start(spec)
    try:
        with pytest.raises(ChildFailed, match="ne répond pas"):
            supervisor.wait_ready(child, timeout=0.5)
    finally:
        supervisor.stop_all()
    assert not alive(child.pid)


def test_a_child_ignoring_sigterm_is_killed_and_so_are_its_own_children(tmp_path: Path) -> None:
    spec = python_child(
        tmp_path,
        "stubborn",
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print(grandchild.pid, flush=True)
        time.sleep(300)
        """,
    )
    supervisor = Supervisor(stop_timeout=0.5)
    child = supervisor.start(spec)
    deadline = time.monotonic() + 20
    while not spec.log_path.read_text().strip().splitlines()[1:] and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(spec.log_path.read_text().splitlines()[-1])
    assert alive(grandchild)

    supervisor.stop_all()

    assert not alive(child.pid)
    assert wait_gone(grandchild)


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """If `azurezo up` is SIGKILLed (no chance to clean up), the kernel still stops its children."""
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from pathlib import Path
            from azurezo_cli.supervisor import ChildSpec, Supervisor
            s = Supervisor()
            c = s.start(ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"],
                                  Path({str(tmp_path / "sleeper.log")!r}), "http://127.0.0.1:9/"))
            print(c.pid, flush=True)
            time.sleep(300)
            """
        )
    )
    driver_proc = subprocess.Popen(
        [sys.executable, str(driver)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert driver_proc.stdout is not None
        sleeper = int(driver_proc.stdout.readline())
        assert alive(sleeper)
        driver_proc.kill()
        driver_proc.wait()
        assert wait_gone(sleeper)
    finally:
        driver_proc.kill()
        driver_proc.wait()
        if driver_proc.stdout is not None:
            driver_proc.stdout.close()


def test_port_is_free() -> None:
    port = free_port()
    assert port_is_free(port)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_is_free(port)


def test_a_listener_that_reuses_addresses_still_holds_its_port() -> None:
    """uvicorn and Twisted set SO_REUSEADDR on their listeners: the check must still see them."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])


def _serve_and_close_first(port: int, connections: int = 5) -> None:
    """A server's life on ``port``: it accepts clients and closes each connection first (as an HTTP
    server does at shutdown), which leaves them in TIME_WAIT on the server's port, then it stops."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        for _ in clients:
            conn, _addr = server.accept()
            conn.sendall(b"bye")
            conn.close()
        for client in clients:
            assert client.recv(3) == b"bye"
            client.close()


def _time_wait_on(port: int) -> bool:
    """True when a TCP socket bound to 127.0.0.1:``port`` is in TIME_WAIT (state 06 of /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if local == f"0100007F:{port:04X}" and state == "06":
            return True
    return False


def test_stop_then_start_again_at_once_ten_times() -> None:
    """Issue 6 item 11: TIME_WAIT connections of a stopped server do not make its port "used"."""
    port = free_port()
    for attempt in range(10):
        _serve_and_close_first(port)
        assert _time_wait_on(port), f"attempt {attempt}: no TIME_WAIT connection to test against"
        assert port_is_free(port), f"attempt {attempt}: port {port} reported used while nobody listens"
