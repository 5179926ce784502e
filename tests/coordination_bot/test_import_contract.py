"""The bot is an adapter: it imports nothing of ``coordination`` (no model, no database, no schema);
everything goes through the service's HTTP API."""

from __future__ import annotations

import ast
from pathlib import Path

import coordination_bot

PACKAGE = Path(coordination_bot.__file__).parent


def test_bot_imports_nothing_of_the_service() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n == "coordination" or n.startswith("coordination.")
            ]
    assert offenders == []
