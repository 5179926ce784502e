"""Integration fixtures: ONE real stack (Synapse + coordination service) shared by the session.

Every test that uses ``stack`` is marked ``synapse`` automatically (``-m "not synapse"`` skips them);
mark them explicitly too, for the reader. When such a test fails, the tail of the Synapse and service
logs is attached to its report.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator

import pytest

from tests.support.stack import Stack, start_stack

_running: list[Stack] = []


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh home (test profile, server ``azurezo.test``), the real service and the real Synapse."""
    started = start_stack(tmp_path_factory.mktemp("stack"))
    _running.append(started)
    try:
        yield started
    finally:
        _running.remove(started)
        try:
            started.stop()
        except BaseException:
            sys.stderr.write(started.diagnostics())
            raise


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()) and item.get_closest_marker("synapse") is None:
            item.add_marker(pytest.mark.synapse)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _running and "stack" in getattr(item, "fixturenames", ()):
        for name in ("synapse", "service"):
            report.sections.append((f"{name} log (tail)", _running[0].log_tail(name, 80)))
    return report
