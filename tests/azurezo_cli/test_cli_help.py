"""`--help` works everywhere, even before the home exists, and errors are French."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from azurezo_cli.main import app


def command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as argument paths (``[]`` is the root)."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, typer.core.TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(root, [])
    return paths


def test_the_documented_commands_exist() -> None:
    paths = {" ".join(p) for p in command_paths()}
    assert {"up", "init", "account", "account create", "service", "service run"} <= paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "azurezo")
def test_help_of_every_command_without_a_home(path: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "absent"), *path, "--help"])

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert not (tmp_path / "absent").exists()  # help creates nothing


def test_a_command_that_needs_the_home_says_to_run_up_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--home", str(tmp_path / "nowhere"), "account", "create", "899700000013", "--localpart", "x"],
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("Erreur : Aucune instance AZUREZO")
    assert "up" in result.stderr


def test_account_create_refuses_a_short_password_file(tmp_path: Path) -> None:
    from azurezo_cli.home import init_home

    init_home(tmp_path / "var")
    pw = tmp_path / "pw"
    pw.write_text("court\n")

    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(tmp_path / "var"),
            "account",
            "create",
            "899700000013",
            "--localpart",
            "jeanne",
            "--password-file",
            str(pw),
        ],
    )

    assert result.exit_code == 1
    assert "moins de 12 caractères" in result.stderr


def test_account_create_says_when_synapse_is_not_running(tmp_path: Path) -> None:
    from azurezo_cli.home import init_home
    from tests.support.stack import free_port

    init_home(tmp_path / "var", synapse_port=free_port(), service_port=free_port())

    result = CliRunner().invoke(
        app,
        ["--home", str(tmp_path / "var"), "account", "create", "899700000013", "--localpart", "j"],
    )

    assert result.exit_code == 1
    assert "Synapse ne répond pas" in result.stderr
    assert "azurezo --home" in result.stderr


def test_starting_sweeps_what_a_killed_import_left(tmp_path: Path) -> None:
    """Issue 6 item 13: a killed `import-rpps` left its temporary folder in <home>/tmp; the next
    start (`init` does what `up` does before starting anything) removes it."""
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / "home" / "tmp" / f"azurezo-rpps-{dead.stdout.strip()}-x1"
    stale.mkdir(parents=True)
    (stale / "part.db").write_bytes(b"\0" * 1024)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "init", "--no-demo"])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert "import interrompu" in result.output
