"""The worker topology of `azurezo up --workers`, rendered without starting it: Synapse loads every
process's configuration, nginx accepts the proxy's and routes Synapse's documented endpoints, and
a missing prerequisite is refused in French before anything starts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from azurezo_cli import workers
from azurezo_cli.home import HomeError, init_home
from azurezo_cli.synapse_config import render_synapse_config
from tests.support.stack import free_port


def _postgres_home(tmp_path: Path):  # type: ignore[no-untyped-def]
    home, _ = init_home(
        tmp_path / "var",
        server_name="region.test",
        profile="test",
        synapse_port=free_port(),
        synapse_database_url="postgresql://azurezo@127.0.0.1:5432/azurezo_region_synapse",
    )
    return home


def test_every_process_loads_its_configuration(tmp_path: Path) -> None:
    from synapse.config.homeserver import HomeServerConfig

    home = _postgres_home(tmp_path)
    topology = workers.plan_topology(home, event_persisters=2)
    render_synapse_config(home, workers.shared_config(home, topology))
    paths = workers.render_worker_configs(home, topology)
    main = HomeServerConfig.load_config("synapse", ["-c", str(home.synapse_config)])
    assert main.worker.writers.events == ["persister1", "persister2"]
    assert main.worker.instance_map["main"].port == topology.replication_port
    assert main.redis.redis_enabled and main.redis.redis_dbid == workers.redis_dbid("region.test")
    assert not main.media.can_load_media_repo
    assert main.worker.worker_replication_secret == workers.replication_secret(home)
    for name, path in paths.items():
        config = HomeServerConfig.load_config("synapse", ["-c", str(home.synapse_config), "-c", str(path)])
        assert config.worker.worker_name == name
        if name == "media1":  # the media repository and its background jobs run there only
            assert config.media.can_load_media_repo
            assert config.media.media_instance_running_background_jobs == "media1"
        assert yaml.safe_load(path.read_text())["worker_listeners"][0]["bind_addresses"] == ["127.0.0.1"]
    ports = [topology.main_port, topology.replication_port, *(w.port for w in topology.workers)]
    assert len(set(ports)) == len(ports) and home.synapse_port not in ports


def test_nginx_accepts_the_proxy_config_and_routes_each_endpoint(tmp_path: Path) -> None:
    home = _postgres_home(tmp_path)
    topology = workers.plan_topology(home)
    conf = workers.render_nginx_config(home, topology)
    text = conf.read_text()
    checked = subprocess.run(
        [workers.nginx_binary(), "-t", "-c", str(conf), "-p", str(workers.proxy_dir(home))],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert f"listen 127.0.0.1:{home.synapse_port};" in text
    by_name = {w.name: w for w in topology.workers}
    assert f"upstream sync1 {{ server 127.0.0.1:{by_name['sync1'].port};" in text
    for pattern in workers.SYNC_ROUTES:
        assert f"location ~ {pattern} {{\n            proxy_pass http://sync1;" in text
    for pattern in workers.MEDIA_ROUTES:
        assert f"location ~ {pattern} {{\n            proxy_pass http://media1;" in text
    assert "proxy_pass http://$get_worker;" in text and "access_log off;" in text


def test_missing_prerequisites_are_refused_in_french(tmp_path: Path) -> None:
    sqlite_home, _ = init_home(tmp_path / "sqlite", profile="test")
    with pytest.raises(HomeError, match="demande PostgreSQL"):
        workers.require_postgres(sqlite_home)
    with pytest.raises(HomeError, match="Redis ne répond pas"):
        workers.check_redis("127.0.0.1", free_port(), timeout=1)
    with pytest.raises(HomeError, match="de 1 à 4"):
        workers.plan_topology(_postgres_home(tmp_path), event_persisters=5)


def test_missing_nginx_names_a_make_target_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "NGINX", "nginx-absent-here")
    monkeypatch.setattr(workers, "NGINX_SBIN", "/nonexistent/nginx")
    with pytest.raises(HomeError, match="nginx est introuvable") as refused:
        workers.nginx_binary()
    targets = re.findall(r"`make ([\w.-]+)`", str(refused.value))
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert targets and all(re.search(rf"^{re.escape(t)}:", makefile, re.M) for t in targets)
