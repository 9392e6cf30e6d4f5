"""Cache keys for stages, derived from dvc.yaml exactly as DVC decides what to rerun.

A stage's key hashes its command, the content of every dep it lists (files and folders: the
code it runs and the data it reads) and the values of the params keys it lists. So the Prefect
flow reuses a stage's result exactly when ``dvc repro`` would skip it, and both read one
declaration of what a stage depends on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ganops.stages import declared_stages


@dataclass(frozen=True)
class StageSpec:
    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]


def _names(entries: list) -> tuple[str, ...]:
    """dvc.yaml lists entries as 'path' or {'path': {options}}."""
    return tuple(next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or [])


def read_stages(root: Path) -> dict[str, StageSpec]:
    """Every stage the project's DVC files declare (their paths are relative to the project root)."""
    stages = {name: entry for declared in declared_stages(root).values() for name, entry in declared.items()}
    return {
        name: StageSpec(
            name,
            stage["cmd"],
            _names(stage.get("deps")),
            _names(stage.get("params")),
            _names(stage.get("outs")) + _names(stage.get("metrics")) + _names(stage.get("plots")),
        )
        for name, stage in stages.items()
    }


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted (relative path, file hash) list; 'missing' if absent."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        entries = [
            (str(p.relative_to(path)), hash_path(p))
            for p in sorted(path.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
        return hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return "missing"


def _lookup(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def stage_key(root: Path, spec: StageSpec, params_file: Path) -> str:
    params = yaml.safe_load(params_file.read_text()) or {}
    material = {
        "cmd": spec.cmd,
        "deps": {dep: hash_path(root / dep) for dep in spec.deps},
        "params": {key: _lookup(params, key) for key in spec.params},
    }
    return f"{spec.name}-{hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()}"
