"""Synapse with workers (``azurezo up --workers``): the topology, its configuration, its proxy.

One Synapse main process, generic workers (client reads and event creation; ``/sync``), one or
more event persisters (``stream_writers.events``), a media-repository worker, replication through
Redis, on PostgreSQL, behind nginx, which routes each endpoint to its worker with the routing table
of Synapse's worker documentation (docs/workers.md, "synapse.app.generic_worker" and
"synapse.app.media_repository") and serves ``/.well-known/matrix/client`` and ``/server``.

Clients (and the service, the bot, ``azurezo account create``) connect to nginx on the home's
Synapse port; every Synapse process listens on its own free loopback port, chosen at each start.
Our module is configured in the shared homeserver.yaml, so every process loads it: its callbacks
run where the request is handled (invites and joins on the event creator, uploads on the media
worker), each process with its own directory cache.

Generated under the home::

    synapse/workers/<name>.yaml      one file per worker (worker_app, name, listeners)
    proxy/nginx.conf                 the reverse proxy (pid and temporary files under proxy/)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from azurezo_cli.home import LOOPBACK, Home, HomeError, write_private
from azurezo_cli.supervisor import ChildSpec, Supervisor
from azurezo_cli.synapse_config import render_synapse_config, synapse_command

GENERIC_WORKER = "synapse.app.generic_worker"
MEDIA_WORKER = "synapse.app.media_repository"
REDIS_HOST = os.environ.get("AZUREZO_REDIS_HOST", LOOPBACK)
REDIS_PORT = int(os.environ.get("AZUREZO_REDIS_PORT", "6379"))
# Redis has 16 databases by default; each home takes one, derived from its server name. Replication
# channels are named after the server name too (Synapse's choice), so two homes sharing a Redis
# must have different server names.
REDIS_DATABASES = 16
NGINX = "nginx"
NGINX_SBIN = "/usr/sbin/nginx"  # Debian's nginx, outside a non-root PATH

# --- the routing table (Synapse docs/workers.md) -------------------------------------------------
SYNC_ROUTES = (
    r"^/_matrix/client/(r0|v3)/sync$",
    r"^/_matrix/client/(api/v1|r0|v3)/events$",
    r"^/_matrix/client/(api/v1|r0|v3)/initialSync$",
    r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
)
CLIENT_ROUTES = (
    # Client API requests
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/createRoom$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/publicRooms$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/joined_members$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/context/.*$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/members$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state$",
    r"^/_matrix/client/v1/rooms/.*/hierarchy$",
    r"^/_matrix/client/(v1|unstable)/rooms/.*/relations/",
    r"^/_matrix/client/v1/rooms/.*/threads$",
    r"^/_matrix/client/v1/room_summary/.*$",
    r"^/_matrix/client/(r0|v3|unstable)/account/3pid$",
    r"^/_matrix/client/(r0|v3|unstable)/account/whoami$",
    r"^/_matrix/client/(r0|v3|unstable)/account/deactivate$",
    r"^/_matrix/client/(r0|v3)/delete_devices$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/devices(/|$)",
    r"^/_matrix/client/versions$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/voip/turnServer$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/event/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/joined_rooms$",
    r"^/_matrix/client/v1/rooms/.*/timestamp_to_event$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/search$",
    r"^/_matrix/client/(r0|v3|unstable)/user/.*/filter(/|$)",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/directory/room/.*$",
    r"^/_matrix/client/(r0|v3|unstable)/capabilities$",
    r"^/_matrix/client/(r0|v3|unstable)/notifications$",
    # Pagination: every request of a room on one instance (there is one client worker).
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/messages$",
    # Encryption requests
    r"^/_matrix/client/(r0|v3|unstable)/keys/query$",
    r"^/_matrix/client/(r0|v3|unstable)/keys/changes$",
    r"^/_matrix/client/(r0|v3|unstable)/keys/claim$",
    r"^/_matrix/client/(r0|v3|unstable)/room_keys/",
    r"^/_matrix/client/(r0|v3|unstable)/keys/upload",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/keys/device_signing/upload$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/keys/signatures/upload$",
    # Registration/login requests (our module's registration and login checks run here)
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/login$",
    r"^/_matrix/client/(r0|v3|unstable)/register$",
    r"^/_matrix/client/(r0|v3|unstable)/register/available$",
    r"^/_matrix/client/(r0|v3|unstable)/password_policy$",
    # Event sending requests: this worker is the event creator (invite and join checks run here)
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/redact",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/send",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/state/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/.*/(join|invite|leave|ban|unban|kick)$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/join/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/knock/",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/profile/",
    # User directory search requests
    r"^/_matrix/client/(r0|v3|unstable)/user_directory/search$",
    # MSC4140 delayed events (MatrixRTC: a dropped call ends by itself)
    r"^/_matrix/client/unstable/org.matrix.msc4140/delayed_events(/.*/restart)?$",
)
# Handled by a generic worker for GET only (other methods: the main process).
CLIENT_GET_ROUTES = (
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/pushrules/",
    r"^/_matrix/client/(r0|v3|unstable)/.*/tags",
    r"^/_matrix/client/(r0|v3|unstable)/.*/account_data",
    r"^/_matrix/client/(api/v1|r0|v3|unstable)/presence/",
)
MEDIA_ROUTES = (
    r"^/_matrix/media/",
    r"^/_matrix/client/v1/media/",
    r"^/_matrix/federation/v1/media/",
    r"^/_synapse/admin/v1/purge_media_cache$",
    r"^/_synapse/admin/v1/room/.*/media.*$",
    r"^/_synapse/admin/v1/user/.*/media.*$",
    r"^/_synapse/admin/v1/media/.*$",
    r"^/_synapse/admin/v1/quarantine_media/.*$",
    r"^/_synapse/admin/v1/users/.*/media$",
)


@dataclass(frozen=True)
class Worker:
    """One Synapse worker process: its name (``worker_name``), app, listener resources, port."""

    name: str
    app: str
    resources: tuple[str, ...]
    port: int
    routes: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass(frozen=True)
class Topology:
    """Where every process of a worker deployment listens (loopback; chosen at each start)."""

    proxy_port: int  # the home's Synapse port: where clients connect
    main_port: int  # the main process's client listener (everything not routed elsewhere)
    replication_port: int  # the main process's replication listener
    workers: tuple[Worker, ...]
    redis_host: str = REDIS_HOST
    redis_port: int = REDIS_PORT
    redis_dbid: int = 0
    public_baseurl: str = ""
    extra_well_known: dict[str, Any] = field(default_factory=dict)

    @property
    def persisters(self) -> tuple[Worker, ...]:
        return tuple(w for w in self.workers if "replication" in w.resources)

    @property
    def media(self) -> Worker:
        return next(w for w in self.workers if w.app == MEDIA_WORKER)

    @property
    def main_url(self) -> str:
        return f"http://{LOOPBACK}:{self.main_port}"


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def redis_dbid(server_name: str) -> int:
    """The Redis database of a home: stable, derived from its server name."""
    return int(hashlib.sha256(server_name.encode()).hexdigest(), 16) % REDIS_DATABASES


def plan_topology(home: Home, *, event_persisters: int = 1) -> Topology:
    """Free loopback ports for every process; the proxy takes the home's Synapse port."""
    if not 1 <= event_persisters <= 4:
        raise HomeError("Le nombre de « persisteurs » d'événements va de 1 à 4 (--event-persisters).")
    workers = [
        Worker(f"persister{n}", GENERIC_WORKER, ("replication",), free_port())
        for n in range(1, event_persisters + 1)
    ]
    workers += [
        Worker("sync1", GENERIC_WORKER, ("client",), free_port(), SYNC_ROUTES),
        Worker("client1", GENERIC_WORKER, ("client",), free_port(), CLIENT_ROUTES),
        Worker("media1", MEDIA_WORKER, ("media",), free_port(), MEDIA_ROUTES),
    ]
    return Topology(
        proxy_port=home.synapse_port,
        main_port=free_port(),
        replication_port=free_port(),
        workers=tuple(workers),
        redis_dbid=redis_dbid(home.server_name),
        public_baseurl=home.synapse_url + "/",
    )


def replication_secret(home: Home) -> str:
    """``worker_replication_secret``: derived from the home's secrets (nothing more to store)."""
    key = home.secrets.macaroon_secret_key.encode()
    return hmac.new(key, b"azurezo worker replication", hashlib.sha256).hexdigest()


def shared_config(home: Home, topology: Topology) -> dict[str, Any]:
    """The worker part of homeserver.yaml (template variable ``workers``)."""
    instance_map: dict[str, dict[str, Any]] = {"main": {"host": LOOPBACK, "port": topology.replication_port}}
    for worker in topology.persisters:
        instance_map[worker.name] = {"host": LOOPBACK, "port": worker.port}
    return {
        "replication_port": topology.replication_port,
        "main_port": topology.main_port,
        "instance_map": instance_map,
        "stream_writers": {"events": [w.name for w in topology.persisters]},
        "media_worker": topology.media.name,
        "redis": {
            "enabled": True,
            "host": topology.redis_host,
            "port": topology.redis_port,
            "dbid": topology.redis_dbid,
        },
        "replication_secret": replication_secret(home),
        # Prometheus: each worker's listener (and the main replication listener) serves
        # /_synapse/metrics when a worker lists the `metrics` resource (Compose deployment).
        "metrics": any("metrics" in w.resources for w in topology.workers),
    }


def workers_dir(home: Home) -> Path:
    return home.synapse_dir / "workers"


def proxy_dir(home: Home) -> Path:
    return home.path / "proxy"


def worker_config(home: Home, worker: Worker) -> dict[str, Any]:
    return {
        "worker_app": worker.app,
        "worker_name": worker.name,
        "worker_listeners": [
            {
                "type": "http",
                "port": worker.port,
                "bind_addresses": [LOOPBACK],
                "x_forwarded": True,
                "resources": [{"names": list(worker.resources), "compress": False}],
            }
        ],
        "worker_log_config": str(home.synapse_log_config),
    }


def render_worker_configs(home: Home, topology: Topology) -> dict[str, Path]:
    """Write one YAML file per worker (0600, beside homeserver.yaml); returns them by name."""
    directory = workers_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):  # a previous start may have had more persisters
        stale.unlink()
    paths = {}
    for worker in topology.workers:
        path = directory / f"{worker.name}.yaml"
        write_private(
            path, "# GENERATED by `azurezo up --workers`.\n" + yaml.safe_dump(worker_config(home, worker))
        )
        paths[worker.name] = path
    return paths


def worker_command(home: Home, python: str, worker: Worker) -> list[str]:
    """The command line of one worker: the shared config, the operator's overrides, its own file."""
    argv = [python, "-m", worker.app, "-c", str(home.synapse_config)]
    if any(home.synapse_overrides_dir.glob("*.yaml")):
        argv += ["-c", str(home.synapse_overrides_dir)]
    return [*argv, "-c", str(workers_dir(home) / f"{worker.name}.yaml")]


# --- nginx ----------------------------------------------------------------------------------------


def well_known(topology: Topology, server_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``/.well-known/matrix/client`` and ``/server`` documents."""
    base = topology.public_baseurl.rstrip("/")
    client: dict[str, Any] = {"m.homeserver": {"base_url": base}, **topology.extra_well_known}
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or server_name
    return client, {"m.server": f"{host}:{port}"}


def _nginx_user() -> str | None:
    """nginx started as root drops its workers to ``nobody`` by default, which cannot write the
    temporary files under the home (0700, owned by root then): they stay root, like every other
    process ``azurezo up`` started. Run as an ordinary user, nginx ignores ``user``: none is set."""
    if os.geteuid() != 0:
        return None
    return "root"


def _location(pattern: str, upstream: str) -> str:
    return f"        location ~ {pattern} {{\n            proxy_pass http://{upstream};\n        }}\n"


def _json_location(path: str, document: dict[str, Any]) -> str:
    body = json.dumps(document, separators=(",", ":")).replace("'", "\\'")
    return (
        f"        location = {path} {{\n"
        "            default_type application/json;\n"
        "            add_header Access-Control-Allow-Origin * always;\n"
        f"            return 200 '{body}';\n"
        "        }\n"
    )


def nginx_http_head(base: Path, topology: Topology, *, upstream_host: str = LOOPBACK) -> str:
    """The top of nginx.conf up to the ``http`` block's upstreams and maps (shared by the local
    proxy of ``azurezo up --workers`` and the Compose deployment's)."""
    upstreams = [("synapse_main", topology.main_port)] + [
        (w.name, w.port) for w in topology.workers if w.routes
    ]
    lines = []
    user = _nginx_user()
    if user:
        lines.append(f"user {user};\n")
    lines.append(
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {base / 'nginx.pid'};\n"
        "error_log stderr warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        # Query strings may hold a searched name: no access log (Synapse logs requests itself).
        "    access_log off;\n"
        f"    client_body_temp_path {base / 'tmp' / 'client_body'};\n"
        f"    proxy_temp_path {base / 'tmp' / 'proxy'};\n"
        f"    fastcgi_temp_path {base / 'tmp' / 'fastcgi'};\n"
        f"    uwsgi_temp_path {base / 'tmp' / 'uwsgi'};\n"
        f"    scgi_temp_path {base / 'tmp' / 'scgi'};\n"
        # Synapse's max_upload_size (12800K) plus headroom: Synapse, not nginx, refuses (in French).
        "    client_max_body_size 13M;\n"
        "    client_body_buffer_size 1m;\n"
        "    proxy_http_version 1.1;\n"
        "    proxy_read_timeout 600s;\n"  # long-polling /sync
        '    proxy_set_header Connection "";\n'
        # $http_host keeps the port: Synapse compares it with public_baseurl and, on a mismatch,
        # redirects SSO requests to public_baseurl again (an endless loop behind a non-default port).
        "    proxy_set_header Host $http_host;\n"
        "    proxy_set_header X-Forwarded-For $remote_addr;\n"
        "    proxy_set_header X-Forwarded-Proto $scheme;\n"
    )
    for name, port in upstreams:
        lines.append(f"    upstream {name} {{ server {upstream_host}:{port}; keepalive 32; }}\n")
    client_worker = next(w.name for w in topology.workers if w.routes is CLIENT_ROUTES)
    lines.append(
        "    map $request_method $get_worker {\n"
        f"        GET {client_worker};\n        HEAD {client_worker};\n"
        "        default synapse_main;\n    }\n"
    )
    return "".join(lines)


def matrix_locations(topology: Topology, server_name: str) -> str:
    """The ``location`` blocks of the Matrix server: well-known documents, then each worker's routes
    (Synapse's routing table), then the main process for everything else."""
    client_doc, server_doc = well_known(topology, server_name)
    lines = [
        _json_location("/.well-known/matrix/client", client_doc),
        _json_location("/.well-known/matrix/server", server_doc),
    ]
    for worker in topology.workers:
        lines += [_location(pattern, worker.name) for pattern in worker.routes]
    lines += [_location(pattern, "$get_worker") for pattern in CLIENT_GET_ROUTES]
    lines.append("        location / {\n            proxy_pass http://synapse_main;\n        }\n")
    return "".join(lines)


def make_proxy_dirs(base: Path) -> None:
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / "tmp" / sub).mkdir(parents=True, exist_ok=True)


def render_nginx_config(home: Home, topology: Topology) -> Path:
    """Write proxy/nginx.conf: nginx in the foreground, its pid and temporary files under proxy/."""
    base = proxy_dir(home)
    make_proxy_dirs(base)
    text = (
        "# GENERATED by `azurezo up --workers` at every start: do not edit it here.\n"
        + nginx_http_head(base, topology)
        + f"    server {{\n        listen {LOOPBACK}:{topology.proxy_port};\n"
        + matrix_locations(topology, home.server_name)
        + "    }\n}\n"
    )
    path = base / "nginx.conf"
    write_private(path, text)
    return path


def nginx_binary() -> str:
    """nginx's path; a French ``HomeError`` when it is not installed."""
    for candidate in (shutil.which(NGINX), NGINX_SBIN):
        if candidate and Path(candidate).exists():
            return candidate
    raise HomeError(
        "nginx est introuvable : installez-le (`apt-get install nginx`, ou `make system-deps`) "
        "pour lancer Synapse avec ses workers."
    )


def nginx_command(home: Home) -> list[str]:
    conf = proxy_dir(home) / "nginx.conf"
    return [nginx_binary(), "-p", str(proxy_dir(home)), "-e", "stderr", "-c", str(conf)]


def check_redis(host: str = REDIS_HOST, port: int = REDIS_PORT, *, timeout: float = 3.0) -> None:
    """PING Redis; a French ``HomeError`` when it does not answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        raise HomeError(
            f"Redis ne répond pas sur {host}:{port} ({exc.strerror or exc}) : les workers de Synapse "
            "s'échangent leurs flux par Redis. Démarrez Redis (`apt-get install redis-server`)."
        ) from exc
    if not answer.startswith(b"+PONG"):
        raise HomeError(f"{host}:{port} ne répond pas comme un serveur Redis (PING → {answer[:20]!r}).")


def require_postgres(home: Home) -> None:
    if home.synapse_database_url is None:
        raise HomeError(
            "Synapse avec workers demande PostgreSQL (SQLite ne se partage pas entre processus) : "
            "créez l'instance avec --postgres postgresql://utilisateur@hôte:5432/."
        )


def describe(topology: Topology) -> Sequence[str]:
    """One line per process, for the ready summary."""
    lines = [f"    main : {topology.main_url} (réplication :{topology.replication_port})"]
    lines += [f"    {w.name} : {w.url} ({', '.join(w.resources)})" for w in topology.workers]
    return lines


# --- starting the whole topology ------------------------------------------------------------------


def start_workers(
    home: Home,
    supervisor: Supervisor,
    python: str,
    *,
    timeout: float,
    event_persisters: int = 1,
    extra_well_known: dict[str, Any] | None = None,
) -> Topology:
    """Render every configuration, start Synapse's main process, its workers, then nginx.

    Ready when it returns: each process answers on ``/health`` and nginx routes
    ``/_matrix/client/versions`` to the client worker. The main process starts first, alone: on
    a fresh database it creates the schema, which the workers must not race.
    """
    require_postgres(home)
    check_redis()
    nginx_binary()
    topology = plan_topology(home, event_persisters=event_persisters)
    if extra_well_known:
        topology = replace(topology, extra_well_known=dict(extra_well_known))
    render_synapse_config(home, shared_config(home, topology))
    render_worker_configs(home, topology)
    render_nginx_config(home, topology)
    main = supervisor.start(
        ChildSpec(
            name="synapse",
            argv=synapse_command(home, python),
            log_path=home.logs_dir / "synapse.log",
            ready_url=f"{topology.main_url}/health",
        )
    )
    supervisor.wait_ready(main, timeout=timeout)
    started = [
        supervisor.start(
            ChildSpec(
                name=f"synapse-{worker.name}",
                argv=worker_command(home, python, worker),
                log_path=home.logs_dir / f"synapse-{worker.name}.log",
                ready_url=f"{worker.url}/health",
            )
        )
        for worker in topology.workers
    ]
    for child in started:
        supervisor.wait_ready(child, timeout=timeout)
    proxy = supervisor.start(
        ChildSpec(
            name="proxy",
            argv=nginx_command(home),
            log_path=home.logs_dir / "proxy.log",
            ready_url=f"{home.synapse_url}/_matrix/client/versions",
        )
    )
    supervisor.wait_ready(proxy, timeout=timeout)
    return topology
