"""The curl session of README.md, run as written against a fresh `azurezo up` (issue 6, item 16).

The block between ``<!-- readme-session:start -->`` and ``<!-- readme-session:end -->`` is run by
bash with ``set -euo pipefail``: every ``curl --fail-with-body`` must succeed, so a README that no
longer matches the API fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_cli_up import READY_LINE, Up
from tests.support.stack import free_port

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SESSION = re.compile(
    r"<!-- readme-session:start -->\s*```sh\n(?P<script>.*?)```\s*<!-- readme-session:end -->", re.S
)


def readme_session() -> str:
    found = SESSION.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 1, "README.md must hold exactly one marked shell session"
    return str(found[0])


def test_the_readme_finds_its_session() -> None:
    script = readme_session()
    assert "login jmartin" in script and "login lgarnier" in script
    assert "/take" in script and "/answer" in script


def test_the_readme_curl_session_runs_as_written(tmp_path: Path) -> None:
    home = tmp_path / "var"
    synapse_port, service_port = free_port(), free_port()
    up = Up(home, "--synapse-port", str(synapse_port), "--service-port", str(service_port))
    try:
        up.wait_for(READY_LINE)
        session = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + readme_session()],
            cwd=ROOT,  # the session runs from the repository's root, as the README says
            env={
                **os.environ,
                "S": f"http://127.0.0.1:{synapse_port}",
                "API": f"http://127.0.0.1:{service_port}/api/v1",
                "HOME_DIR": str(home),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        report = f"stdout:\n{session.stdout}\nstderr:\n{session.stderr}"
        assert session.returncode == 0, report
        assert session.stderr == "", report
        # Every answer printed is JSON; the last one is the answered request.
        answers = [json.loads(line) for line in session.stdout.splitlines() if line.strip()]
        assert len(answers) >= 10, report
        assert answers[-1]["version"] > 1, report
    finally:
        up.kill()
