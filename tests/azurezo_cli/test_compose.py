"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from azurezo_cli.home import DEFAULT_SERVICE_PORT, DEFAULT_SYNAPSE_PORT, init_home
from azurezo_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
# The subset of the Compose specification (compose-spec.json) this file may use.
SERVICE_KEYS = {
    "build", "image", "network_mode", "volumes", "environment", "command", "depends_on",
    "healthcheck", "restart",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_top_level_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert set(compose) - {"name", "services", "volumes"} <= {k for k in compose if k.startswith("x-")}
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", compose["name"])
    assert set(compose["services"]) == {"init", "coordination", "synapse"}
    for name in compose["volumes"]:
        assert re.fullmatch(r"[a-zA-Z0-9._-]+", name)


def test_services_use_known_keys_and_valid_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, name
        assert service["build"] == "."
        assert isinstance(service["command"], list)
        assert all(isinstance(part, str) for part in service["command"])
        for volume in service["volumes"]:
            source, target = volume.split(":")
            assert source in compose["volumes"]
            assert target == service["environment"]["AZUREZO_HOME"] == "/data"
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services and dependency != name
            assert rule["condition"] in CONDITIONS
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency]
        if "healthcheck" in service:
            check = service["healthcheck"]
            assert check["test"][0] == "CMD"
            assert all(isinstance(p, str) for p in check["test"])
            assert re.fullmatch(r"\d+s", check["interval"]) and re.fullmatch(r"\d+s", check["timeout"])


def test_the_azurezo_commands_exist_in_the_cli(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        command = service["command"]
        if command[0] != "azurezo":
            continue
        args = [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", a) for a in command[1:]]
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_synapse_reads_the_config_that_init_writes(compose: dict[str, Any], tmp_path: Path) -> None:
    command = compose["services"]["synapse"]["command"]
    assert command[:3] == ["python", "-m", "synapse.app.homeserver"]
    home, _ = init_home(tmp_path / "data")
    relative = home.synapse_config.relative_to(home.path)
    assert command[command.index("-c") + 1] == f"/data/{relative}"


def test_healthchecks_probe_the_default_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "--synapse-port" not in services["init"]["command"]
    assert f"127.0.0.1:{DEFAULT_SERVICE_PORT}/health" in services["coordination"]["healthcheck"]["test"][-1]
    assert (
        f"127.0.0.1:{DEFAULT_SYNAPSE_PORT}/_matrix/client/versions"
        in services["synapse"]["healthcheck"]["test"][-1]
    )
    assert "--no-demo" in services["init"]["command"]


def test_the_image_finds_the_templates() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"AZUREZO_CONFIG_DIR=(\S+)", dockerfile)
    assert match
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, re.M)
    assert workdir and match.group(1) == f"{workdir.group(1)}/config"
    assert (ROOT / "config" / "homeserver.yaml.j2").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"var", ".venv", ".git"} <= set(ignored)
