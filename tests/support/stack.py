"""The integration-test stack: a fresh home (test profile), the real coordination service and the
real Synapse (with our module) as subprocesses on free loopback ports.

Built through the same code as ``azurezo up`` (``azurezo_cli``), so the tests exercise what operators
run. Use it through the session-scoped ``stack`` fixture of ``tests/integration/conftest.py``::

    @pytest.mark.synapse
    async def test_something(stack: Stack) -> None:
        user_id, password = await stack.create_account(stack.people[0].national_id, "jeanne")
        async with stack.client(user_id, password) as nio_client:
            ...
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from nio import AsyncClient, AsyncClientConfig, LoginResponse
from sqlalchemy import update

from azurezo_cli import accounts, bootstrap
from azurezo_cli.home import Home, create_postgres_database, init_home, new_password, save_home
from azurezo_cli.supervisor import ChildSpec, Supervisor
from azurezo_cli.synapse_config import render_synapse_config, synapse_command
from azurezo_cli.workers import start_workers
from coordination.db import make_engine, make_sessionmaker, utcnow
from coordination.directory.models import Person
from coordination.directory.rules import luhn_key, person_search_name
from tests.support.service import PG_ENV

SERVER_NAME = "azurezo.test"
READY_TIMEOUT = 120.0
# AZUREZO_TEST_WORKERS=1 (with AZUREZO_TEST_POSTGRES_URL): every stack runs Synapse as in
# `azurezo up --workers`: main process, workers, Redis replication, nginx in front.
WORKERS_ENV = "AZUREZO_TEST_WORKERS"


def workers_mode() -> bool:
    """True when the integration stacks run Synapse with workers (CI's third pass)."""
    return os.environ.get(WORKERS_ENV, "") not in ("", "0")


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fictitious_national_id() -> str:
    """A random well-formed (Luhn-valid) RPPS idNatPS in the 8 98... range the tests use."""
    body = f"98{uuid.uuid4().int % 10**8:08d}"
    return "8" + body + luhn_key(body)


@dataclass(frozen=True)
class DirectoryPerson:
    national_id: str
    family_name: str
    given_name: str
    profession_code: str = "10"
    profession: str = "Médecin"
    active: bool = True


# The small directory every stack starts with (FICTITIOUS people). Tests that change a person's
# state should add their own person with ``add_person`` rather than mutate these.
SEED_PEOPLE = (
    DirectoryPerson("899700000013", "MARTIN", "Jeanne"),
    DirectoryPerson("899700000021", "DURAND", "Paul", "60", "Infirmier"),
    DirectoryPerson("899700000039", "BERNARD", "Claire", "70", "Masseur-Kinésithérapeute"),
    DirectoryPerson("899700000047", "PETIT", "Louis", active=False),
)


class Stack:
    """A running Synapse + coordination service, and helpers to arrange accounts and directory."""

    def __init__(
        self, home: Home, supervisor: Supervisor, workdir: Path, databases: PostgresDatabases | None
    ) -> None:
        self.home = home
        self.supervisor = supervisor
        self.workdir = workdir
        self.databases = databases
        self.people = SEED_PEOPLE
        self._localparts = itertools.count(1)

    @property
    def synapse_url(self) -> str:
        return self.home.synapse_url

    @property
    def service_url(self) -> str:
        return self.home.service_url

    @property
    def server_name(self) -> str:
        return self.home.server_name

    @property
    def bot_user_id(self) -> str:
        return self.home.bot_user_id

    @property
    def bot_password(self) -> str:
        return self.home.bot_password

    def unique_localpart(self, prefix: str = "user") -> str:
        """A localpart not used yet on this stack (tests share one Synapse for the session)."""
        return f"{prefix}{next(self._localparts)}-{uuid.uuid4().hex[:6]}"

    # --- directory ----------------------------------------------------------------------------
    async def add_person(
        self,
        national_id: str | None = None,
        *,
        family_name: str = "TEST",
        given_name: str = "Camille",
        profession_code: str = "10",
        profession: str = "Médecin",
        active: bool = True,
    ) -> DirectoryPerson:
        """Insert a directory person in the service database (as an import would)."""
        person = DirectoryPerson(
            national_id or fictitious_national_id(),
            family_name,
            given_name,
            profession_code,
            profession,
            active,
        )
        await _insert_people(self.home.database_url, [person])
        return person

    async def set_active(self, national_id: str, active: bool) -> None:
        """Flip a directory person's ``active`` flag in the service database, as a re-import would."""
        engine = make_engine(self.home.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await session.execute(
                    update(Person)
                    .where(Person.national_id == national_id)
                    .values(
                        active=active,
                        deactivated_at=None if active else utcnow(),
                        updated_at=utcnow(),
                    )
                )
                await session.commit()
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise LookupError(f"no directory person {national_id}")
        finally:
            await engine.dispose()

    # --- accounts -----------------------------------------------------------------------------
    async def create_account(
        self,
        national_id: str,
        localpart: str | None = None,
        password: str | None = None,
        admin: bool = False,
    ) -> tuple[str, str]:
        """Bind a Matrix account to a directory person and register it (the `account create` path).

        Returns ``(user_id, password)``. Raises ``azurezo_cli.accounts.AccountError`` on a refusal.
        """
        password = password or new_password()
        user_id = await accounts.create_account(
            home=self.home,
            national_id=national_id,
            localpart=localpart or self.unique_localpart(),
            password=password,
            admin=admin,
        )
        return user_id, password

    async def register_raw(
        self, localpart: str, password: str | None = None, *, admin: bool = False
    ) -> httpx.Response:
        """Shared-secret registration with no binding first: Synapse's (and our module's) raw answer."""
        async with httpx.AsyncClient() as client:
            return await accounts.register_with_shared_secret(
                client,
                synapse_url=self.synapse_url,
                shared_secret=self.home.secrets.registration_shared_secret,
                localpart=localpart,
                password=password or new_password(),
                admin=admin,
            )

    async def login(self, user_id: str, password: str) -> str:
        """Password login over the client API; returns an access token."""
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{self.synapse_url}/_matrix/client/v3/login",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user_id},
                    "password": password,
                },
                timeout=30.0,
            )
        if resp.status_code != 200:
            raise AssertionError(f"login of {user_id} failed: {resp.status_code} {resp.text}")
        return str(resp.json()["access_token"])

    @asynccontextmanager
    async def client(
        self, user_id: str, password: str, *, encryption: bool = True
    ) -> AsyncIterator[AsyncClient]:
        """A matrix-nio client logged in as ``user_id``, with its own store (E2EE keys uploaded)."""
        store = self.workdir / "nio" / f"{user_id.lstrip('@').replace(':', '_')}-{uuid.uuid4().hex[:8]}"
        store.mkdir(parents=True)
        client = AsyncClient(
            self.synapse_url,
            user_id,
            store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=encryption, store_sync_tokens=True),
        )
        try:
            resp = await client.login(password, device_name="azurezo-tests")
            if not isinstance(resp, LoginResponse):
                raise AssertionError(f"nio login of {user_id} failed: {resp}")
            if encryption and client.should_upload_keys:
                await client.keys_upload()
            yield client
        finally:
            await client.close()

    def restart_synapse(self, home: Home | None = None) -> None:
        """Stop Synapse (every process of it, with workers), render its configuration again (for
        ``home`` if given), start it and wait until it answers. Call it from the test's own thread:
        children die with the thread that started them (PR_SET_PDEATHSIG)."""
        if home is not None:
            self.home = home
        for child in [c for c in self.supervisor.children if c.name not in ("service", "bot")][::-1]:
            self.supervisor.stop(child)
        if workers_mode():
            start_workers(self.home, self.supervisor, sys.executable, timeout=READY_TIMEOUT)
            return
        render_synapse_config(self.home)
        started = self.supervisor.start(
            ChildSpec(
                name="synapse",
                argv=synapse_command(self.home, sys.executable),
                log_path=self.home.logs_dir / "synapse.log",
                ready_url=f"{self.home.synapse_url}/_matrix/client/versions",
            )
        )
        self.supervisor.wait_ready(started, timeout=READY_TIMEOUT)

    # --- diagnostics --------------------------------------------------------------------------
    def log_tail(self, name: str, lines: int = 60) -> str:
        """The last lines of a child's log ("synapse" or "service")."""
        for child in self.supervisor.children:
            if child.name == name:
                return child.tail(lines)
        path = self.home.logs_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def diagnostics(self, lines: int = 60) -> str:
        parts = []
        for name in [child.name for child in self.supervisor.children] or ["synapse", "service"]:
            parts.append(f"----- {name} log (last {lines} lines) -----\n{self.log_tail(name, lines)}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop Synapse and the service, then drop this stack's PostgreSQL databases (if any)."""
        try:
            self.supervisor.stop_all()
        finally:
            if self.databases is not None:
                asyncio.run(self.databases.drop())


@dataclass(frozen=True)
class PostgresDatabases:
    """A stack's own fresh PostgreSQL databases (Synapse's and the service's), dropped at its end."""

    server_url: str  # libpq URL of the server, no database
    synapse: str
    service: str

    @classmethod
    async def create(cls, pg_url: str) -> PostgresDatabases:
        server_url = pg_url.replace("postgresql+asyncpg://", "postgresql://", 1).rstrip("/")
        run = uuid.uuid4().hex[:12]
        databases = cls(server_url, f"azt_{run}_synapse", f"azt_{run}_coordination")
        await create_postgres_database(server_url, databases.synapse)
        try:
            await create_postgres_database(server_url, databases.service)
        except BaseException:
            await databases.drop()
            raise
        return databases

    @property
    def synapse_url(self) -> str:
        return f"{self.server_url}/{self.synapse}"

    @property
    def service_url(self) -> str:
        return f"{self.server_url.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{self.service}"

    async def drop(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(f"{self.server_url}/postgres")
        try:
            for name in (self.synapse, self.service):
                # FORCE: a child killed on a timeout may leave a connection behind.
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _insert_people(database_url: str, people: list[DirectoryPerson]) -> None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            for p in people:
                session.add(
                    Person(
                        national_id=p.national_id,
                        id_type="8",
                        family_name=p.family_name,
                        given_name=p.given_name,
                        search_name=person_search_name(p.family_name, p.given_name),
                        profession_code=p.profession_code,
                        profession=p.profession,
                        active=p.active,
                        deactivated_at=None if p.active else utcnow(),
                        source="rpps",
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()


def start_stack(
    workdir: Path,
    *,
    server_name: str = SERVER_NAME,
    configure: Callable[[Home], Home] | None = None,
) -> Stack:
    """Build a fresh home under ``workdir`` and start the service and Synapse; ready when it returns.

    With ``AZUREZO_TEST_POSTGRES_URL`` set, Synapse and the service run on fresh PostgreSQL
    databases of their own (the production setup), dropped by ``Stack.stop``; otherwise on SQLite
    inside the home. With ``AZUREZO_TEST_WORKERS=1`` too, Synapse runs with workers behind nginx;
    each such stack gets its own server name (``w<hex>.azurezo.test``), since Synapse names its
    Redis replication channels after it. ``configure`` changes the fresh home before Synapse's
    configuration is rendered (a stack of its own for single sign-on, terms of use…). On any failure
    everything started so far is stopped (and dropped) before the error propagates.
    """
    pg_url = os.environ.get(PG_ENV)
    workers = workers_mode()
    if workers and not pg_url:
        raise RuntimeError(f"{WORKERS_ENV}=1 needs {PG_ENV} (Synapse workers share a PostgreSQL database)")
    if workers:
        server_name = f"w{uuid.uuid4().hex[:8]}.{server_name}"
    databases = asyncio.run(PostgresDatabases.create(pg_url)) if pg_url else None
    supervisor = Supervisor(stop_timeout=10.0, poll_interval=0.05)
    try:
        home, _ = init_home(
            workdir / "home",
            server_name=server_name,
            synapse_port=free_port(),
            service_port=free_port(),
            profile="test",
            database_url=databases.service_url if databases else None,
            synapse_database_url=databases.synapse_url if databases else None,
        )
        # coturn (tests/integration/test_turn.py) on a port of its own, announced by Synapse.
        home = replace(home, turn_port=free_port())
        save_home(home)
        if configure is not None:
            home = configure(home)
        render_synapse_config(home)
        bootstrap.migrate(home.database_url)
        asyncio.run(_insert_people(home.database_url, list(SEED_PEOPLE)))
        _start_processes(home, supervisor, workers=workers)
    except BaseException:
        try:
            supervisor.stop_all()
        finally:
            if databases is not None:
                asyncio.run(databases.drop())
        raise
    return Stack(home, supervisor, workdir, databases)


def _start_processes(home: Home, supervisor: Supervisor, *, workers: bool) -> None:
    """The service and Synapse (one process, or main + workers + nginx) of ``home``; then the bot's
    account (idempotent)."""
    service = supervisor.start(
        ChildSpec(
            name="service",
            argv=[sys.executable, "-m", "azurezo_cli", "--home", str(home.path), "service", "run"],
            log_path=home.logs_dir / "service.log",
            ready_url=f"{home.service_url}/health",
        )
    )
    if workers:
        supervisor.wait_ready(service, timeout=READY_TIMEOUT)
        start_workers(home, supervisor, sys.executable, timeout=READY_TIMEOUT)
    else:
        render_synapse_config(home)
        synapse = supervisor.start(
            ChildSpec(
                name="synapse",
                argv=synapse_command(home, sys.executable),
                log_path=home.logs_dir / "synapse.log",
                ready_url=f"{home.synapse_url}/_matrix/client/versions",
            )
        )
        # Both start at once (the module only calls the service on registration, invite, join).
        supervisor.wait_ready(service, timeout=READY_TIMEOUT)
        supervisor.wait_ready(synapse, timeout=READY_TIMEOUT)
    asyncio.run(
        accounts.ensure_service_account(home=home, localpart=home.bot_localpart, password=home.bot_password)
    )


def resume_stack(home: Home, workdir: Path, databases: PostgresDatabases | None) -> Stack:
    """Start the service and Synapse of an existing home (e.g. one ``azurezo restore`` wrote), in
    the same mode as ``start_stack``; ``databases`` are dropped by ``Stack.stop``."""
    supervisor = Supervisor(stop_timeout=10.0, poll_interval=0.05)
    try:
        bootstrap.migrate(home.database_url)
        _start_processes(home, supervisor, workers=workers_mode())
    except BaseException:
        supervisor.stop_all()
        raise
    return Stack(home, supervisor, workdir, databases)
