"""Benchmark: RPPS import vs a bulk load of the same file by the database's own client, in the same run.

    .venv/bin/python bench/bench_import.py [--lines 2000000] [--distribution shared liberal]
                                           [--postgres URL] [--no-sqlite] [--no-reimport]

For each distribution of sites (``bench/gen_rpps.py``: ``shared``, 300,000 sites drawn at random;
``liberal``, most lines with a structure of their own, about one structure per line):

1. generates (once, seeded) ``bench/out/rpps_<n>.txt`` / ``rpps_liberal_<n>.txt``;
2. SQLite baseline: ``sqlite3`` CLI ``.import`` of the file into a plain 53-column table;
   ours: ``import_rpps`` into a fresh service schema, in a child process (first import), then again on
   the same file (re-import: nothing changes);
3. with ``--postgres``, PostgreSQL baseline: ``psql`` ``\\copy`` of the file into a plain 53-column table
   of a fresh database; ours: the same two imports into a fresh database with the service schema;

and prints wall times, the ratio to the baseline of the same backend, each child's peak RSS (``wait4``
rusage) and the peak of the RSS summed over it and the helper process that parses the second half.
Budget (issue 6, item 18): first import <= 3 x baseline, peak RSS ~235 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable


def run_child(cmd: list[str]) -> None:
    """Run an unmeasured helper (schema creation)."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    if proc.returncode != 0:
        raise SystemExit(f"échec de {' '.join(cmd)} :\n{proc.stdout}\n{proc.stderr}")


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, now (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[int(entry.name)] = int(line.split()[1])
    total = 0
    for pid, kb in rss.items():
        node = pid
        while node > 1 and node != root:
            node = parents.get(node, 0)
        if node == root:
            total += kb
    return total / 1024


_TICK = os.sysconf("SC_CLK_TCK")


def _server_cpu(database: str, seen: dict[int, float]) -> None:
    """Record the CPU seconds so far of the local PostgreSQL backends serving ``database`` (their process
    title names it: ``postgres: 15/main: user database host(port) ...``), by process id."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres: ") or f" {database} " not in title:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK


def _cpu_seconds(err: str) -> float:
    """User + system CPU seconds of the measured process and its children (``/usr/bin/time -v``)."""
    total = 0.0
    for line in err.splitlines():
        if "User time (seconds)" in line or "System time (seconds)" in line:
            total += float(line.rsplit(":", 1)[1])
    return total


# The sqlite3 .import of the current file (wall, CPU seconds): PostgreSQL's import is also compared to it.
SQLITE_BASELINE: list[float] = []
# CPU seconds of the last measured run: (the process and its children, the PostgreSQL server's backends).
LAST_CPU = [0.0, 0.0]


def run_measured(
    cmd: list[str], *, stdin: str | None = None, database: str | None = None
) -> tuple[float, float, float, str]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall seconds, that process's peak RSS in MB, peak of the
    sum over it and its helper processes in MB, sampled every 0.1 s, stdout). ``LAST_CPU`` then holds
    its CPU seconds and, with ``database`` (a local PostgreSQL), those of the server backends serving
    that database, sampled every 0.1 s (a backend's last 0.1 s can be missed)."""
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time est requis pour mesurer la mémoire : apt-get install time")
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-v", *cmd],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    peak = [0.0]
    done = threading.Event()
    backends: dict[int, float] = {}

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            if database is not None:
                _server_cpu(database, backends)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(stdin)
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"échec de {' '.join(cmd)} :\n{out}\n{err}")
    LAST_CPU[:] = [_cpu_seconds(err), sum(backends.values())]
    rss = 0.0
    for line in err.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1]) / 1024
    return wall, rss, peak[0], out


IMPORT_SNIPPET = """
import sys, time
from pathlib import Path
from ror_sync.importer import import_rpps
t = time.perf_counter()
# temp_dir as the CLI gives it (<home>/tmp): the helper's file of the second half goes there.
report = import_rpps(sys.argv[1], Path(sys.argv[2]), temp_dir=Path(sys.argv[3]))
print("\\n".join(report.summary(max_rejections=3)))
print(f"INNER {time.perf_counter() - t:.2f}")
"""

SCHEMA_SNIPPET = """
import asyncio, sys
from tests.support.service import create_schema
asyncio.run(create_schema(sys.argv[1]))
"""


def _data_file(lines: int, distribution: str) -> Path:
    name = f"rpps_{lines}.txt" if distribution == "shared" else f"rpps_{distribution}_{lines}.txt"
    data = OUT / name
    if not data.exists():
        print(f"génération de {data} …", flush=True)
        subprocess.run(
            [
                *(PY, str(ROOT / "bench" / "gen_rpps.py"), "--lines", str(lines)),
                *("--distribution", distribution, "--out", str(data)),
            ],
            check=True,
        )
    return data


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_text(base_cpu: float) -> str:
    """CPU of the last run, and its ratio to the baseline's: far less sensitive than the wall time to
    the other processes of a shared machine (what they take is not counted)."""
    own, server = LAST_CPU
    where = f" (dont serveur {server:.2f} s)" if server else ""
    return f"CPU {own + server:6.2f} s{where}, ratio CPU {(own + server) / base_cpu:.2f} x"


def _ours(
    label: str,
    url: str,
    data: Path,
    base_wall: float,
    temp_dir: Path,
    reimport: bool,
    *,
    base_cpu: float,
    database: str | None = None,
) -> None:
    for step in ("1er import", "réimport  ")[: 2 if reimport else 1]:
        wall, rss, tree, out = run_measured(
            [PY, "-c", IMPORT_SNIPPET, url, str(data), str(temp_dir)], database=database
        )
        print(
            f"  {label} import_rpps ({step}) : {wall:6.2f} s   RSS max {rss:6.0f} Mo "
            f"(avec le processus d'aide : {tree:4.0f} Mo)   ratio {wall / base_wall:.2f} x "
            f"(budget 3 x)   {_cpu_text(base_cpu)}   charge {_load()}",
            flush=True,
        )
        if database is not None and SQLITE_BASELINE:
            print(
                f"     soit {wall / SQLITE_BASELINE[0]:.2f} x le sqlite3 .import du même fichier, "
                f"{sum(LAST_CPU) / SQLITE_BASELINE[1]:.2f} x en CPU"
            )
        print("     " + "\n     ".join(out.strip().splitlines()[:5]))


def bench_sqlite(data: Path, *, reimport: bool) -> None:
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        base_db = Path(tmp) / "baseline.db"
        cols = ", ".join(f"c{i} TEXT" for i in range(53))
        script = (
            f"CREATE TABLE t ({cols});\n.separator |\n.import --skip 1 {data} t\nSELECT count(*) FROM t;\n"
        )
        base_wall, base_rss, _, base_out = run_measured(["sqlite3", str(base_db)], stdin=script)
        base_cpu = LAST_CPU[0]
        SQLITE_BASELINE[:] = [base_wall, base_cpu]
        print(
            f"  référence sqlite3 .import : {base_wall:6.2f} s   RSS max {base_rss:6.0f} Mo   "
            f"({base_out.strip()} lignes)   CPU {base_cpu:6.2f} s   charge {_load()}",
            flush=True,
        )
        base_db.unlink()
        url = f"sqlite+aiosqlite:///{tmp}/coordination.db"
        run_child([PY, "-c", SCHEMA_SNIPPET, url])
        _ours("SQLite", url, data, base_wall, Path(tmp) / "tmp", reimport, base_cpu=base_cpu)


def pg_admin(server: str, sql: str) -> None:
    """Run ``sql`` (CREATE / DROP DATABASE) on the ``postgres`` database of ``server``
    (``postgresql+asyncpg://user@host:port``)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(f"{pg_dsn(server)}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def pg_dsn(server: str) -> str:
    """``server`` as libpq and asyncpg read it (no SQLAlchemy driver, no trailing slash)."""
    return server.replace("postgresql+asyncpg://", "postgresql://").rstrip("/")


def bench_postgres(server: str, data: Path, *, reimport: bool) -> None:
    import uuid

    dsn = pg_dsn(server)

    def admin(sql: str) -> None:
        pg_admin(server, sql)

    base, ours = f"azbench_{uuid.uuid4().hex[:8]}", f"azbench_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{base}"')
    admin(f'CREATE DATABASE "{ours}"')
    try:
        cols = ", ".join(f"c{i} TEXT" for i in range(53))
        # CSV with a quote character the file never holds: every byte is data, as for sqlite3 .import.
        copy = (
            f"CREATE TABLE t ({cols});\n"
            f"\\copy t FROM '{data}' WITH (FORMAT csv, DELIMITER '|', QUOTE E'\\x01', HEADER true)\n"
        )
        base_wall, base_rss, _, _ = run_measured(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{dsn}/{base}"], stdin=copy, database=base
        )
        base_cpu = sum(LAST_CPU)
        print(
            f"  référence PostgreSQL psql \\copy : {base_wall:6.2f} s   RSS max {base_rss:6.0f} Mo   "
            f"CPU {base_cpu:6.2f} s (dont serveur {LAST_CPU[1]:.2f} s)   charge {_load()}",
            flush=True,
        )
        admin(f'DROP DATABASE IF EXISTS "{base}" WITH (FORCE)')
        url = f"{server.rstrip('/')}/{ours}"
        run_child([PY, "-c", SCHEMA_SNIPPET, url])
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            _ours("PostgreSQL", url, data, base_wall, Path(tmp), reimport, base_cpu=base_cpu, database=ours)
    finally:
        for name in (base, ours):
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument(
        "--distribution", nargs="+", choices=("shared", "liberal"), default=["shared", "liberal"]
    )
    parser.add_argument(
        "--postgres", help="also run on PostgreSQL, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-reimport", action="store_true", help="first import only")
    args = parser.parse_args()
    if shutil.which("sqlite3") is None:
        raise SystemExit("le client sqlite3 est requis : apt-get install sqlite3")
    if args.postgres and shutil.which("psql") is None:
        raise SystemExit("le client psql est requis : apt-get install postgresql-client")
    print(f"{os.cpu_count()} CPU, charge au départ {_load()}")
    for distribution in args.distribution:
        SQLITE_BASELINE.clear()
        data = _data_file(args.lines, distribution)
        size_mb = data.stat().st_size / 1e6
        print(f"\n== {distribution} : {data} ({args.lines} lignes, {size_mb:.0f} Mo)", flush=True)
        if not args.no_sqlite:
            bench_sqlite(data, reimport=not args.no_reimport)
        if args.postgres:
            bench_postgres(args.postgres, data, reimport=not args.no_reimport)


if __name__ == "__main__":
    main()
