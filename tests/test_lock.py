"""requirements.lock pins every installed distribution, and this environment was installed from it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def locked() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {_name(name): version for name, version in pins}


def test_every_dependency_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    missing = sorted({_name(r) for r in wanted} - set(locked()))
    assert not missing, f"not in requirements.lock: {missing}; run `make lock`"


def test_the_environment_matches_the_lock():
    drift = {
        name: (version, metadata.version(name))
        for name, version in locked().items()
        if _installed(name) and metadata.version(name) != version
    }
    assert not drift, f"installed versions differ from requirements.lock (locked, installed): {drift}"


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
