"""Benchmark: RPPS import vs the ``sqlite3`` CLI ``.import`` of the same file, in the same run.

    .venv/bin/python bench/bench_import.py [--lines 2000000] [--postgres URL]

1. generates (once, seeded) ``bench/out/rpps_<n>.txt`` with ``bench/gen_rpps.py``;
2. baseline: ``sqlite3`` CLI ``.import`` of the file into a plain 53-column table;
3. ours: ``import_rpps`` into a fresh service schema, in a child process (first import), then again on
   the same file (re-import: nothing changes);
and prints wall times, the ratio to the baseline, each child's peak RSS (``wait4`` rusage) and the peak
of the RSS summed over it and the helper process that parses the second half of the file.
Budget (issue): first import <= 3 x baseline, peak RSS <= 300 MB.
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


def run_measured(cmd: list[str], *, stdin: str | None = None) -> tuple[float, float, float, str]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall seconds, that process's peak RSS in MB, peak of the
    sum over it and its helper processes in MB, sampled every 0.1 s, stdout)."""
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

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(stdin)
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"échec de {' '.join(cmd)} :\n{out}\n{err}")
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
report = import_rpps(sys.argv[1], Path(sys.argv[2]))
print("\\n".join(report.summary(max_rejections=3)))
print(f"INNER {time.perf_counter() - t:.2f}")
"""

SCHEMA_SNIPPET = """
import asyncio, sys
from tests.support.service import create_schema
asyncio.run(create_schema(sys.argv[1]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument(
        "--postgres", help="also run on PostgreSQL, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432"
    )
    args = parser.parse_args()
    data = OUT / f"rpps_{args.lines}.txt"
    if not data.exists():
        print(f"génération de {data} …", flush=True)
        subprocess.run(
            [PY, str(ROOT / "bench" / "gen_rpps.py"), "--lines", str(args.lines), "--out", str(data)],
            check=True,
        )
    size_mb = data.stat().st_size / 1e6
    print(f"fichier : {data} ({args.lines} lignes, {size_mb:.0f} Mo)")
    if shutil.which("sqlite3") is None:
        raise SystemExit("le client sqlite3 est requis : apt-get install sqlite3")

    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        base_db = Path(tmp) / "baseline.db"
        cols = ", ".join(f"c{i} TEXT" for i in range(53))
        script = (
            f"CREATE TABLE t ({cols});\n.separator |\n.import --skip 1 {data} t\nSELECT count(*) FROM t;\n"
        )
        base_wall, base_rss, _, base_out = run_measured(["sqlite3", str(base_db)], stdin=script)
        print(
            f"référence sqlite3 .import : {base_wall:6.2f} s   RSS max {base_rss:6.0f} Mo   "
            f"({base_out.strip()} lignes)"
        )
        base_db.unlink()

        url = f"sqlite+aiosqlite:///{tmp}/coordination.db"
        run_child([PY, "-c", SCHEMA_SNIPPET, url])
        for label in ("1er import", "réimport  "):
            wall, rss, tree, out = run_measured([PY, "-c", IMPORT_SNIPPET, url, str(data)])
            print(
                f"import_rpps ({label}) : {wall:6.2f} s   RSS max {rss:6.0f} Mo "
                f"(avec le processus d'aide : {tree:4.0f} Mo)   ratio {wall / base_wall:.2f} x "
                "(budget 3 x)"
            )
            print("   " + "\n   ".join(out.strip().splitlines()))

    if args.postgres:
        import asyncio
        import uuid

        import asyncpg

        name = f"azbench_{uuid.uuid4().hex[:8]}"
        dsn = args.postgres.replace("postgresql+asyncpg://", "postgresql://").rstrip("/")

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(f"{dsn}/postgres")
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        try:
            url = f"{args.postgres.rstrip('/')}/{name}"
            run_child([PY, "-c", SCHEMA_SNIPPET, url])
            for label in ("1er import", "réimport"):
                wall, rss, _, out = run_measured([PY, "-c", IMPORT_SNIPPET, url, str(data)])
                print(
                    f"PostgreSQL import_rpps ({label}) : {wall:6.2f} s   RSS max {rss:6.0f} Mo   "
                    f"ratio {wall / base_wall:.2f} x la référence sqlite3"
                )
                print("   " + "\n   ".join(out.strip().splitlines()[:4]))
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
