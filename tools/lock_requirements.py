"""Print requirements.lock: every runtime dependency of the installed ``azurezo`` package (with the
extras it asks for), pinned to the version installed in this virtualenv (the one CI tested).

    make requirements.lock
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution

from packaging.markers import default_environment
from packaging.requirements import Requirement


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str) -> dict[str, str]:
    pinned: dict[str, str] = {}
    extras_seen: dict[str, set[str]] = {}

    def walk(name: str, extras: set[str]) -> None:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            return
        key = _norm(dist.metadata["Name"])
        if key in pinned and extras <= extras_seen[key]:
            return
        pinned[key] = dist.version
        extras_seen[key] = extras_seen.get(key, set()) | extras
        for text in dist.requires or []:
            req = Requirement(text)
            wanted = req.marker is None or any(
                req.marker.evaluate({**default_environment(), "extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                walk(req.name, set(req.extras))

    walk(root, set())
    pinned.pop(_norm(root), None)
    return pinned


if __name__ == "__main__":
    print("# Pinned runtime dependencies of the image (Dockerfile): the versions tested in CI.")
    print("# Regenerate after a pyproject.toml change: make requirements.lock")
    for name, version in sorted(closure("azurezo").items()):
        print(f"{name}=={version}")
