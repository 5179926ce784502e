"""`azurezo backup` / `restore` on a stopped SQLite home: what is saved, what is left out, the refusals."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from azurezo_cli import backup, turn
from azurezo_cli.home import init_home, load_home
from azurezo_cli.main import app


def _sqlite(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(r,) for r in rows])


def _rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY rowid")]


def test_backup_then_restore_a_sqlite_home(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", server_name="sauvegarde.test", profile="test")
    _sqlite(home.synapse_database, ["event-1", "event-2"])
    _sqlite(home.coordination_dir / "coordination.db", ["patient-1"])
    _sqlite(home.bot_dir / "store" / "bot.db", ["olm-account"])
    (home.bot_dir / "state.json").write_text('{"device_id": "BOT"}')
    (home.media_store / "local_content" / "ab").mkdir(parents=True)
    (home.media_store / "local_content" / "ab" / "cdef").write_bytes(b"media")
    (home.documents_dir / "12").mkdir()
    (home.documents_dir / "12" / "3456").write_bytes(b"document")
    turn.ensure_secret(home)  # written by `azurezo init` / `up`
    (home.logs_dir / "synapse.log").write_text("not saved")
    (home.synapse_dir / "workers").mkdir()
    (home.synapse_dir / "workers" / "sync1.yaml").write_text("regenerated at start")

    result = CliRunner().invoke(app, ["--home", str(home.path), "backup", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    saved = tmp_path / "b"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o700
    manifest = json.loads((saved / "manifest.json").read_text())
    assert [(d["name"], d["kind"]) for d in manifest["databases"]] == [
        ("synapse", "sqlite"),
        ("coordination", "sqlite"),
    ]
    assert not (saved / "home" / "logs").exists() and not (saved / "home" / "synapse" / "workers").exists()
    assert not (saved / "home" / "synapse" / "homeserver.db").exists()  # saved under databases/

    restored = CliRunner().invoke(app, ["--home", str(tmp_path / "new"), "restore", str(saved)])
    assert restored.exit_code == 0, restored.output
    new = load_home(tmp_path / "new")
    assert new.server_name == "sauvegarde.test" and new.secrets == home.secrets
    assert _rows(new.synapse_database) == ["event-1", "event-2"]
    assert _rows(new.coordination_dir / "coordination.db") == ["patient-1"]
    assert _rows(new.bot_dir / "store" / "bot.db") == ["olm-account"]
    assert (new.bot_dir / "state.json").read_text() == '{"device_id": "BOT"}'
    assert (new.media_store / "local_content" / "ab" / "cdef").read_bytes() == b"media"
    assert (new.documents_dir / "12" / "3456").read_bytes() == b"document"
    assert new.signing_key_path.read_bytes() == home.signing_key_path.read_bytes()
    assert (new.path / "turn" / "shared_secret").read_text() == (
        home.path / "turn" / "shared_secret"
    ).read_text()
    assert stat.S_IMODE(new.path.stat().st_mode) == 0o700


def test_refusals_are_french_and_change_nothing(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var", profile="test")
    _sqlite(home.synapse_database, ["x"])
    with pytest.raises(backup.BackupError, match="dans l'instance elle-même"):
        backup.backup(home, home.path / "b")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(backup.BackupError, match="n'est pas vide"):
        backup.backup(home, tmp_path / "full")
    with pytest.raises(backup.BackupError, match="n'est pas une sauvegarde"):
        backup.restore(tmp_path / "full", tmp_path / "new")
    backup.backup(home, tmp_path / "b")
    with pytest.raises(backup.BackupError, match="contient déjà une instance"):
        backup.restore(tmp_path / "b", home.path)
