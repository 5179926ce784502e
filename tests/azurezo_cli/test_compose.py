"""docker-compose.yml, the Dockerfile and the configurations `azurezo init --compose*` renders,
checked without a Docker engine (none runs here): the Compose specification's JSON schema
(tests/data/compose-spec.json, see tests/data/README.md), each command exists, each path it names is
mounted, each service has a healthcheck, the secrets come from the env file `init --compose` writes,
and the rendered Synapse, nginx, Element Web, LiveKit and coturn configurations are valid."""

from __future__ import annotations

import importlib.util
import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from azurezo_cli import compose as deploy
from azurezo_cli.home import DEFAULT_BOT_PORT, DEFAULT_SERVICE_PORT, load_home
from azurezo_cli.main import app
from azurezo_cli.workers import CLIENT_ROUTES, MEDIA_ROUTES, SYNC_ROUTES, nginx_binary

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
ONE_SHOT = {"init", "element-web"}
VARIABLE = re.compile(r"\$\{([A-Z_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """`azurezo init --compose` then, with its env file, the init container's `--compose-configs`
    (SQLite here: the PostgreSQL path is the same code as `azurezo up --postgres`)."""
    home = tmp_path_factory.mktemp("deploy") / "data"
    runner = CliRunner()
    made = runner.invoke(app, ["--home", str(home), "init", "--compose", "--server-name", "soins.exemple.fr"])
    assert made.exit_code == 0, made.output
    env_file = home / deploy.ENV_FILE
    env = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#")
    )
    rendered = runner.invoke(
        app,
        ["--home", str(home), "init", "--server-name", "soins.exemple.fr", "--no-demo", "--compose-configs"],
        env=env,
    )
    assert rendered.exit_code == 0, rendered.output
    return home, env


def test_the_file_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose, schema)
    broken = {**compose, "services": {"x": {"image": "a", "healthcheck": {"test": 3}}}}
    with pytest.raises(jsonschema.ValidationError):  # the schema really checks
        jsonschema.validate(broken, schema)


def test_every_service_of_a_region_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "postgres", "redis", "init", "coordination", "synapse", "synapse-persister1", "synapse-persister2",
        "synapse-sync1", "synapse-client1", "synapse-media1", "element-web", "proxy", "coturn", "livekit",
        "lk-jwt-service", "bot", "directory-import", "backup",
    }  # fmt: skip
    assert set(services) == expected
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert service["restart"] == "unless-stopped", name
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and all(isinstance(p, str) for p in check["test"]), name
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services and dependency != name
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
            if rule["condition"] == "service_completed_successfully":
                assert dependency in ONE_SHOT


def test_images_are_pinned_and_built_from_the_repository(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert not image.endswith(":latest") and ":" in image, name
        if service.get("build") == ".":
            assert image == "azurezo:local"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-bookworm$", dockerfile, re.M)
    assert "-r requirements.lock" in dockerfile
    lock = [
        line for line in (ROOT / "requirements.lock").read_text().splitlines() if not line.startswith("#")
    ]
    assert lock and all(re.fullmatch(r"[a-z0-9-]+==[\w.+-]+", line) for line in lock)
    names = {line.split("==")[0] for line in lock}
    assert {"matrix-synapse", "txredisapi", "fastapi", "matrix-nio", "prometheus-client"} <= names


def test_the_lock_pins_every_runtime_dependency() -> None:
    """The image installs requirements.lock with --no-deps: a dependency added to pyproject.toml and
    not to the lock (``make requirements.lock``) would be missing from the image only."""
    path = ROOT / "tools" / "lock_requirements.py"
    spec = importlib.util.spec_from_file_location("lock_requirements", path)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    lock = {
        line.split("==")[0]
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    missing = sorted(set(tool.closure("azurezo")) - lock)
    assert not missing, f"absent de requirements.lock (make requirements.lock) : {missing}"


def test_secrets_come_only_from_the_env_file(
    compose: dict[str, Any], deployment: tuple[Path, dict[str, str]]
) -> None:
    home, env = deployment
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(VARIABLE.findall(text))
    assert used <= set(deploy.ENV_KEYS) | {"AZUREZO_DIRECTORY_FHIR_URL"}
    assert set(deploy.ENV_KEYS) <= set(env)
    env_file = home / deploy.ENV_FILE
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert len(env["POSTGRES_PASSWORD"]) >= 32 and len(env["LIVEKIT_API_SECRET"]) >= 48
    again = CliRunner().invoke(
        app, ["--home", str(home), "init", "--compose", "--server-name", "soins.exemple.fr"]
    )
    assert again.exit_code == 0
    assert env_file.read_text().count(env["POSTGRES_PASSWORD"]) == 1  # kept, not regenerated
    assert "compose.env" in (ROOT / ".gitignore").read_text()


def test_commands_exist_and_their_paths_are_mounted(
    compose: dict[str, Any], deployment: tuple[Path, dict[str, str]]
) -> None:
    home, _ = deployment
    for name, service in compose["services"].items():
        command = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
        mounts = {volume.split(":")[1] for volume in service.get("volumes", [])}
        for part in command:
            for path in re.findall(r"(/(?:data|certs|element|backups)\b[\w./-]*)", part):
                assert any(path == m or path.startswith(m + "/") for m in mounts), (name, path)
                if path.startswith("/data/") and "$" not in path and not path.endswith(".prom"):
                    assert (home / path.removeprefix("/data/")).exists(), (name, path)
        if command and command[0] == "azurezo":
            args = [VARIABLE.sub("x", a) for a in command[1:]]
            result = CliRunner().invoke(app, [*args, "--help"])
            assert result.exit_code == 0, (name, result.output)
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, name


def test_rendered_synapse_config_loads_with_every_worker(deployment: tuple[Path, dict[str, str]]) -> None:
    from synapse.config.homeserver import HomeServerConfig

    home_path, env = deployment
    home = load_home(home_path)
    main = HomeServerConfig.load_config("synapse", ["-c", str(home.synapse_config)])
    assert main.server.public_baseurl == f"https://{env['AZUREZO_MATRIX_HOST']}/"
    assert main.worker.writers.events == ["persister1", "persister2"]
    assert main.redis.redis_enabled and not main.media.can_load_media_repo
    assert main.experimental.msc4143_enabled
    assert main.matrix_rtc.transports == [
        {"type": "livekit", "livekit_service_url": f"https://{env['AZUREZO_LIVEKIT_HOST']}/jwt"}
    ]
    assert main.voip.turn_uris[0] == f"turn:{env['AZUREZO_TURN_HOST']}:3478?transport=udp"
    for worker in ("persister1", "persister2", "sync1", "client1", "media1"):
        path = home.synapse_dir / "workers" / f"{worker}.yaml"
        loaded = HomeServerConfig.load_config("synapse", ["-c", str(home.synapse_config), "-c", str(path)])
        assert loaded.worker.worker_name == worker
    media = HomeServerConfig.load_config(
        "synapse", ["-c", str(home.synapse_config), "-c", str(home.synapse_dir / "workers" / "media1.yaml")]
    )
    assert media.media.can_load_media_repo


def test_rendered_proxy_routes_workers_and_announces_the_livekit_focus(
    deployment: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    home, env = deployment
    conf = (home / "proxy" / "nginx.conf").read_text()
    for pattern in (*SYNC_ROUTES, *CLIENT_ROUTES, *MEDIA_ROUTES):
        assert f"location ~ {pattern} {{" in conf
    assert "listen 127.0.0.1:8008;" in conf and "listen 443 ssl http2;" in conf
    assert "location /_synapse/admin { return 404; }" in conf
    assert f"server_name {env['AZUREZO_ELEMENT_HOST']};" in conf
    focus = {"type": "livekit", "livekit_service_url": f"https://{env['AZUREZO_LIVEKIT_HOST']}/jwt"}
    assert json.dumps({"org.matrix.msc4143.rtc_foci": [focus]}, separators=(",", ":"))[1:-1] in conf
    # nginx itself accepts it (with throw-away certificates in place of the `certs` volume).
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
         "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    test_conf = tmp_path / "nginx.conf"
    test_conf.write_text(conf.replace(f"{deploy.CERTS_DIR}/", f"{certs}/"))
    checked = subprocess.run(
        [nginx_binary(), "-t", "-c", str(test_conf), "-p", str(home / "proxy")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_element_livekit_and_coturn_configs(deployment: tuple[Path, dict[str, str]]) -> None:
    home_path, env = deployment
    home = load_home(home_path)
    element = json.loads((home_path / "element" / "config.json").read_text())
    assert element["default_server_config"]["m.homeserver"] == {
        "base_url": f"https://{env['AZUREZO_MATRIX_HOST']}",
        "server_name": "soins.exemple.fr",
    }
    assert element["setting_defaults"]["language"] == "fr"
    # Synapse runs without presence: Element must not show everyone as offline.
    assert element["enable_presence_by_hs_url"] == {f"https://{env['AZUREZO_MATRIX_HOST']}": False}
    assert element["setting_defaults"]["UIFeature.registration"] is False
    assert element["features"]["feature_group_calls"] is True and "element_call" in element
    assert element["azurezo"]["bot"] == home.bot_user_id
    livekit = yaml.safe_load((home_path / "livekit" / "livekit.yaml").read_text())
    assert livekit["keys"] == {env["LIVEKIT_API_KEY"]: env["LIVEKIT_API_SECRET"]}
    assert livekit["port"] == deploy.PORTS["livekit"] and livekit["redis"]["address"] == "127.0.0.1:6379"
    assert stat.S_IMODE((home_path / "livekit" / "livekit.yaml").stat().st_mode) == 0o600
    turn = (home_path / "turn" / "turnserver.conf").read_text()
    assert "listening-ip=0.0.0.0" in turn and "denied-peer-ip=10.0.0.0-10.255.255.255" in turn
    assert "allow-loopback-peers" not in turn


def test_healthchecks_probe_the_ports_the_configs_use(compose: dict[str, Any]) -> None:
    services = compose["services"]
    probe = {
        name: " ".join(service["healthcheck"]["test"])
        for name, service in services.items()
        if "healthcheck" in service
    }
    assert f"127.0.0.1:{DEFAULT_SERVICE_PORT}/health" in probe["coordination"]
    assert f"127.0.0.1:{DEFAULT_BOT_PORT}/health" in probe["bot"]
    assert f"127.0.0.1:{deploy.PORTS['main']}/health" in probe["synapse"]
    for worker in ("persister1", "persister2", "sync1", "client1", "media1"):
        assert f"127.0.0.1:{deploy.PORTS[worker]}/health" in probe[f"synapse-{worker}"]
    assert f"127.0.0.1:{deploy.PORTS['proxy_internal']}/_matrix/client/versions" in probe["proxy"]
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
