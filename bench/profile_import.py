"""Where a first RPPS import on PostgreSQL spends its time: every statement and COPY, timed, in order.

    .venv/bin/python bench/profile_import.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432 \\
        [--lines 2000000] [--distribution liberal]
    .venv/bin/python bench/profile_import.py --helper-kinds 2   # the helper's part: staging vs rows

Imports the benchmark's file (``bench/gen_rpps.py``, generated once as by ``bench/bench_import.py``)
into a fresh database with the service schema, as ``azurezo import-rpps`` does, and prints, in seconds
since the start: each statement or ``COPY`` the import's connection runs that takes 0.05 s or more,
with its duration, and when the helper process finishes its part of the file. The database is dropped
afterwards. Not a benchmark (no baseline, figures only comparable within one run): a profile, for the
"where the time goes" figures of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_import import OUT, _data_file, pg_admin  # noqa: E402

STARTED = time.perf_counter()
SHOWN_FROM = 0.05  # seconds: shorter statements are left out


def _log(message: str) -> None:
    print(f"{time.perf_counter() - STARTED:7.2f}  {message}", flush=True)


class _TimedConnection:
    """The import's asyncpg connection, with its ``execute`` and ``copy_to_table`` timed."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self._timed(sql, self._conn.execute(sql, *args))

    async def copy_to_table(self, table: str, **kwargs: Any) -> Any:
        return await self._timed(
            f"COPY {table} FROM {kwargs.get('source')}", self._conn.copy_to_table(table, **kwargs)
        )

    @staticmethod
    async def _timed(what: str, call: Any) -> Any:
        started = time.perf_counter()
        result = await call
        took = time.perf_counter() - started
        if took >= SHOWN_FROM:
            _log(f"{took:6.2f} s  {' '.join(what.split())[:100]}")
        return result


def _instrument() -> None:
    from coordination.directory import store
    from ror_sync import importer

    connect = store._pg_connect

    async def timed_connect(database_url: str) -> Any:
        return _TimedConnection(await connect(database_url))

    store._pg_connect = timed_connect
    enter = importer._SecondHalf.__enter__

    def enter_and_watch(self: Any) -> Any:
        entered = enter(self)
        self._future.add_done_callback(lambda _f: _log("the helper process has parsed its part"))
        return entered

    importer._SecondHalf.__enter__ = enter_and_watch  # type: ignore[method-assign]


def time_helper_kinds(data: Path, rounds: int) -> None:
    """Time, alone on the machine, the helper's work on its part of a first import (``stage_part``
    from the split of ``FIRST_IMPORT_SHARE``) as staging files ("copy") and as the directory's rows
    ("rows", PartRowFiles), alternately: what making the rows costs the helper."""
    from datetime import UTC, datetime

    from ror_sync.importer import FIRST_IMPORT_SHARE, _split_point
    from ror_sync.part import stage_part

    start = _split_point(data, data.stat().st_size, FIRST_IMPORT_SHARE)
    assert start is not None
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        for _ in range(rounds):
            for kind in ("copy", "rows"):
                started = time.perf_counter()
                part = stage_part(str(data), start, f"{tmp}/part_{kind}", kind, datetime.now(UTC))
                took = time.perf_counter() - started
                print(f"helper's part as {kind!r}: {took:6.2f} s ({part.staged} lines)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432")
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--distribution", choices=("shared", "liberal"), default="liberal")
    parser.add_argument(
        "--helper-kinds",
        type=int,
        metavar="ROUNDS",
        help="instead: time the helper's part as staging files and as rows, ROUNDS times each",
    )
    args = parser.parse_args()
    data = _data_file(args.lines, args.distribution)
    if args.helper_kinds:
        time_helper_kinds(data, args.helper_kinds)
        return
    if not args.postgres:
        parser.error("--postgres is required (or --helper-kinds)")

    from ror_sync.importer import import_rpps
    from tests.support.service import create_schema

    server = args.postgres.rstrip("/")
    name = f"azprofile_{uuid.uuid4().hex[:8]}"
    pg_admin(server, f'CREATE DATABASE "{name}"')
    try:
        url = f"{server}/{name}"
        asyncio.run(create_schema(url))
        _instrument()
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            _log(f"import of {data.name}")
            import_rpps(url, data, temp_dir=Path(tmp))
            _log("import done")
    finally:
        pg_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
