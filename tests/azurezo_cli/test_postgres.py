"""An instance on PostgreSQL: home settings, Synapse's rendered database, `azurezo init --postgres`."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import asyncpg
import pytest
import yaml
from synapse.config.homeserver import HomeServerConfig
from typer.testing import CliRunner

from azurezo_cli.home import HomeError, init_home, load_home, postgres_database_urls
from azurezo_cli.main import app
from azurezo_cli.synapse_config import render_synapse_config
from tests.support.service import PG_ENV

needs_postgres = pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set")


def test_database_names_follow_the_instance_and_urls_keep_the_credentials() -> None:
    synapse_db, synapse_url, service_db, service_url = postgres_database_urls(
        "postgresql://azurezo:s%40cret@db.exemple.fr:5433/", "Soins.Exemple.fr:8448"
    )
    assert synapse_db == "azurezo_soins_exemple_fr_8448_synapse"
    assert service_db == "azurezo_soins_exemple_fr_8448_coordination"
    assert synapse_url == f"postgresql://azurezo:s%40cret@db.exemple.fr:5433/{synapse_db}"
    assert service_url == f"postgresql+asyncpg://azurezo:s%40cret@db.exemple.fr:5433/{service_db}"


@pytest.mark.parametrize("url", ["mysql://u@h/", "postgresql://u@h:5432/already_a_db", "postgresql:///"])
def test_a_server_url_that_is_not_one_is_refused_in_french(url: str) -> None:
    with pytest.raises(HomeError, match="postgresql://"):
        postgres_database_urls(url, "a.test")


def test_synapse_renders_psycopg2_args_that_synapse_accepts(tmp_path: Path) -> None:
    url = "postgresql://azurezo:p%40ss@db.exemple.fr:5433/azurezo_a_synapse"
    home, _ = init_home(tmp_path / "var", synapse_database_url=url)

    render_synapse_config(home)
    data = yaml.safe_load(home.synapse_config.read_text())

    assert data["database"] == {
        "name": "psycopg2",
        "args": {
            "user": "azurezo",
            "password": "p@ss",
            "host": "db.exemple.fr",
            "port": "5433",
            "dbname": "azurezo_a_synapse",
            "cp_min": 5,
            "cp_max": 10,
        },
    }
    data.pop("modules")
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(data))
    config = HomeServerConfig.load_config("test", ["-c", str(tmp_path / "plain.yaml")])
    [database] = config.database.databases
    assert database.config["name"] == "psycopg2"
    assert database.config["args"]["dbname"] == "azurezo_a_synapse"


def test_the_default_stays_sqlite_inside_the_home(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    render_synapse_config(home)
    data = yaml.safe_load(home.synapse_config.read_text())
    assert data["database"] == {"name": "sqlite3", "args": {"database": str(home.synapse_database)}}
    assert json.loads(home.settings_file.read_text())["synapse_database_url"] is None


def test_the_synapse_database_is_stored_and_fixed_at_creation(tmp_path: Path) -> None:
    url = "postgresql://azurezo@127.0.0.1:5432/azurezo_a_synapse"
    init_home(tmp_path / "pg", synapse_database_url=url)
    assert load_home(tmp_path / "pg").synapse_database_url == url
    init_home(tmp_path / "pg", synapse_database_url=url)  # the same again: fine

    init_home(tmp_path / "sqlite")
    with pytest.raises(HomeError, match="ne change pas après la création"):
        init_home(tmp_path / "sqlite", synapse_database_url=url)


def test_a_damaged_synapse_database_url_names_the_key(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path / "var")
    raw = json.loads(home.settings_file.read_text())
    raw["synapse_database_url"] = "sqlite:///ailleurs.db"
    home.settings_file.write_text(json.dumps(raw))
    with pytest.raises(HomeError, match="« synapse_database_url »"):
        load_home(home.path)


@needs_postgres
def test_init_with_postgres_creates_both_databases_as_synapse_requires(tmp_path: Path) -> None:
    server_url = os.environ[PG_ENV].replace("postgresql+asyncpg://", "postgresql://").rstrip("/") + "/"
    server_name = f"t{uuid.uuid4().hex[:10]}.test"
    synapse_db, _, service_db, _ = postgres_database_urls(server_url, server_name)
    home_dir = tmp_path / "var"
    args = ["--home", str(home_dir), "init", "--no-demo", "--server-name", server_name]
    try:
        result = CliRunner().invoke(app, [*args, "--postgres", server_url])
        assert result.exit_code == 0, result.output + str(result.exception)
        assert f"Base PostgreSQL « {synapse_db} » créée." in result.output

        again = CliRunner().invoke(app, [*args, "--postgres", server_url])  # idempotent
        assert again.exit_code == 0, again.output
        assert "créée" not in again.output

        home = load_home(home_dir)
        assert home.database_url.endswith(f"/{service_db}")
        rows = asyncio.run(_databases(server_url, (synapse_db, service_db)))
        assert rows == {
            synapse_db: ("UTF8", "C", "C"),
            service_db: ("UTF8", "C", "C"),
        }
    finally:
        asyncio.run(_drop(server_url, (synapse_db, service_db)))


async def _databases(server_url: str, names: tuple[str, ...]) -> dict[str, tuple[str, str, str]]:
    conn = await asyncpg.connect(f"{server_url}postgres")
    try:
        rows = await conn.fetch(
            "SELECT datname, pg_encoding_to_char(encoding) AS enc, datcollate, datctype "
            "FROM pg_database WHERE datname = ANY($1::text[])",
            list(names),
        )
    finally:
        await conn.close()
    return {r["datname"]: (r["enc"], r["datcollate"], r["datctype"]) for r in rows}


async def _drop(server_url: str, names: tuple[str, ...]) -> None:
    conn = await asyncpg.connect(f"{server_url}postgres")
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
