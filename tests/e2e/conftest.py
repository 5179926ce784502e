"""End-to-end fixtures of the dashboard: `azurezo up` (demo instance) on free ports, and Debian's
Chromium driven by Playwright (no browser download: ``executable_path``).

`make test` installs Chromium (apt) and axe-core (npm, into build/e2e-node); where no browser can be
installed these tests skip, saying so. Screenshots land in ``test-artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_cli_up import Up
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "build" / "e2e-node" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
    "--disable-component-update",
]
LOGIN = re.compile(r"^\s+(@\S+)\s+mot de passe : (\S+)")
# The e2e run logs in more often than a person would: raise Synapse's login rate limit through the
# operator's override directory (conf.d), exactly as an operator would, not through a test-only switch.
RATE_OVERRIDE = """rc_login:
  address: {per_second: 100, burst_count: 1000}
  account: {per_second: 100, burst_count: 1000}
  failed_attempts: {per_second: 100, burst_count: 1000}
"""


def chromium_path() -> str | None:
    for candidate in (os.environ.get("AZUREZO_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@dataclass
class DemoInstance:
    home: Path
    service_url: str
    synapse_url: str
    dashboard_url: str
    server_name: str
    passwords: dict[str, str]  # user_id -> password

    def user(self, localpart: str) -> tuple[str, str]:
        user_id = f"@{localpart}:{self.server_name}"
        return user_id, self.passwords[user_id]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "Chromium introuvable (/usr/bin/chromium) : `make test` l'installe avec apt-get ; sans droit "
            "d'installation, les tests de navigateur du tableau de bord sont sautés."
        )
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("Playwright pour Python absent : lancez `make .stamp-install-test`.")
    return path


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.skip(f"axe-core absent ({AXE}) : `make test` l'installe avec npm.")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[DemoInstance]:
    """A demo instance started by `azurezo up`, as an operator runs it (then stopped with Ctrl-C)."""
    home = tmp_path_factory.mktemp("e2e") / "var"
    synapse_port, service_port, bot_port = free_port(), free_port(), free_port()
    server_name = "e2e.azurezo.test"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "azurezo_cli",
            "--home",
            str(home),
            "init",
            "--synapse-port",
            str(synapse_port),
            "--service-port",
            str(service_port),
            "--server-name",
            server_name,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (home / "synapse" / "conf.d").mkdir(parents=True, exist_ok=True)
    (home / "synapse" / "conf.d" / "e2e-rate-limits.yaml").write_text(RATE_OVERRIDE, encoding="utf-8")
    up = Up(home, "--bot-port", str(bot_port))
    try:
        up.wait_for("Ctrl-C pour tout arrêter.", timeout=300)
        dashboard = f"http://127.0.0.1:{service_port}/app"
        assert f"Tableau de bord : {dashboard}" in up.output, up.output
        passwords = {m.group(1): m.group(2) for line in up.lines if (m := LOGIN.match(line))}
        yield DemoInstance(
            home,
            f"http://127.0.0.1:{service_port}",
            f"http://127.0.0.1:{synapse_port}",
            dashboard,
            server_name,
            passwords,
        )
    finally:
        if up.process.poll() is None:
            up.process.send_signal(2)
            try:
                up.drain(timeout=60)
            except Exception:
                up.kill()
        up.kill()
