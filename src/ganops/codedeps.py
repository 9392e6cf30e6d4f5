"""Which source files a piece of ganops really runs: the static import closure of a module.

One answer serves three readers that must agree: the code deps that ``dvc.yaml`` lists for each
stage (a test fails when they drift), the training fingerprint (a code change must not resume old
weights) and the key of cached real-data features. Imports are read from the syntax tree, lazy
ones inside functions included, and importing ``a.b.c`` also runs ``a/__init__.py`` and
``a/b/__init__.py``, so those count too. ``ganops.catalog`` (the valid plugin names, which the
params schema checks) is left out: a new model must not rerun ``prepare``.

    python -m ganops.codedeps            print each stage's code deps as dvc.yaml should list them
    python -m ganops.codedeps --check    exit 1 when dvc.yaml's code deps differ from that
    python -m ganops.codedeps --write    rewrite them in dvc.yaml (other deps and comments kept)
"""

from __future__ import annotations

import ast
import hashlib
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "ganops"
PACKAGE_DIR = Path(__file__).resolve().parent

# The command line only dispatches to a stage (argument parsing, logging set-up): it cannot change
# a stage's result, so a new CLI command must not rerun the pipeline.
DISPATCH_ONLY = {"ganops.cli", "ganops.clitools", "ganops.entry", "ganops.__main__"}
# The catalog lists the valid plugin names and nothing else: a name added there cannot change a
# stage's result (the implementation that registers it is a dep).
NAMES_ONLY_MODULES = {"ganops.catalog"}


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file that defines ``module`` (a ``ganops.*`` name), or None if there is none."""
    parts = module.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, module: str) -> set[str]:
    """Every ``ganops.*`` name imported anywhere in ``path`` (modules, or names inside modules)."""
    source = path.read_text()
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from ganops.data import folders` imports a module; `from ganops.x import f` a name:
            # keep both spellings, module_file() keeps only the ones that are files.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def closure(entry: str, package_dir: Path = PACKAGE_DIR) -> tuple[Path, ...]:
    """Files of ``entry`` and of everything it imports from ganops, transitively; sorted."""
    seen: dict[str, Path] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        for module in _with_parents(name):
            if module in seen or module in DISPATCH_ONLY | NAMES_ONLY_MODULES:
                continue
            path = module_file(module, package_dir)
            if path is None:  # a name defined inside a module, not a module itself
                continue
            seen[module] = path
            pending.extend(_imported_names(path, module))
    return tuple(sorted(seen.values()))


def stage_closure(stage: str, package_dir: Path = PACKAGE_DIR) -> tuple[Path, ...]:
    """What ``ganops <stage>`` runs: the stage's module and its imports (and the stages package)."""
    return closure(f"{PACKAGE}.stages.{stage}", package_dir)


def as_deps(files: Iterable[Path], package_dir: Path = PACKAGE_DIR, project: Path | None = None) -> list[str]:
    """Project-relative paths, a whole sub-package written as its folder when every file of it is used."""
    files = set(files)
    project = project or package_dir.parents[1]
    deps: list[Path] = []
    for sub in sorted(p for p in package_dir.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        members = {p for p in sub.rglob("*.py")}
        if members and members <= files:
            deps.append(sub)
            files -= members
    deps.extend(files)
    return sorted(str(p.relative_to(project)) for p in deps)


def code_hash(files: Iterable[Path], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over (relative path, content) of ``files``: changes exactly when that code changes."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


CODE_PREFIX = "src/"


def _declarations(root: Path) -> list[tuple[str, str, dict]]:
    """(dvc file, stage name, entry) for every stage the project's DVC files declare."""
    from ganops.stages import declared_stages

    return [
        (file, name, entry)
        for file, stages in declared_stages(root).items()
        for name, entry in stages.items()
    ]


def drift(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per stage, the code deps its DVC file lacks and the ones it lists but the stage does not run.

    ``validate`` is skipped: it runs on every repro (``always_changed``), so it needs no code deps.
    """
    found = {}
    for _, name, stage in _declarations(root):
        if stage.get("always_changed"):
            continue
        declared = {d for d in _entries(stage.get("deps")) if d.startswith(CODE_PREFIX)}
        expected = set(as_deps(stage_closure(name)))
        if declared != expected:
            found[name] = (sorted(expected - declared), sorted(declared - expected))
    return found


def table_drift(root: Path) -> list[str]:
    """How the DVC files' stages, data deps, outputs and params differ from the stage table
    (``ganops.stages.PIPELINE`` with ``Layout``'s paths): one line per difference."""
    from ganops.stages import PIPELINE, Layout

    layout, problems, declarations = Layout(Path(".")), [], _declarations(root)
    declared = {name: (file, entry) for file, name, entry in declarations}
    where = [(name, file) for file, name, _ in declarations]
    if where != [(stage.name, stage.dvcfile) for stage in PIPELINE]:
        problems.append(
            f"stages: the DVC files declare {where}, the stage table {[(s.name, s.dvcfile) for s in PIPELINE]}"
        )
    for stage in PIPELINE:
        file, entry = declared.get(stage.name, (stage.dvcfile, {}))
        workdir = (root / file).parent / entry.get("wdir", ".")
        if workdir.resolve() != root.resolve():  # paths below are relative to the project root
            problems.append(f"{stage.name} wdir: {file} runs it in {workdir}, not the project root")
        sides = {
            "deps": (
                {d for d in _entries(entry.get("deps")) if not d.startswith(CODE_PREFIX)},
                {str(getattr(layout, attr)) for attr in stage.reads},
            ),
            "outs, metrics and plots": (
                {o for key in ("outs", "metrics", "plots") for o in _entries(entry.get(key))},
                {str(getattr(layout, attr)) for attr in stage.writes},
            ),
            "params": (set(_entries(entry.get("params"))), set(stage.params)),
        }
        for what, (in_yaml, in_table) in sides.items():
            if in_yaml != in_table:
                problems.append(
                    f"{stage.name} {what}: {file} lacks {sorted(in_table - in_yaml) or 'nothing'}, "
                    f"lists {sorted(in_yaml - in_table) or 'nothing'} that the stage table does not"
                )
    return problems


def _entries(items: list | None) -> list[str]:
    """The paths (or params keys) of a dvc.yaml list, whose entries are strings or one-key mappings."""
    return [next(iter(item)) if isinstance(item, dict) else str(item) for item in items or []]


def write(root: Path) -> None:
    """Rewrite each stage's code deps in place (round trip: other deps and comments are kept)."""
    from ruamel.yaml import YAML

    from ganops.stages import DVC_FILES

    ruamel = YAML()
    ruamel.indent(mapping=2, sequence=4, offset=2)
    ruamel.width = 4096
    for file in DVC_FILES:
        tree = ruamel.load((root / file).read_text())
        changing = {name: stage for name, stage in tree["stages"].items() if not stage.get("always_changed")}
        for name, stage in changing.items():
            deps = stage["deps"]
            for i in reversed(range(len(deps))):
                if isinstance(deps[i], str) and deps[i].startswith(CODE_PREFIX):
                    del deps[i]
            deps.extend(as_deps(stage_closure(name)))
        if changing:
            with open(root / file, "w") as f:
                ruamel.dump(tree, f)


def main(argv: list[str]) -> int:
    root = Path(".")
    if argv == ["--write"]:
        write(root)
        return 0
    if argv == ["--check"]:
        problems = drift(root)
        for name, (missing, extra) in problems.items():
            print(f"{name}: add {missing or 'nothing'}; remove {extra or 'nothing'}")
        if problems:
            print(
                "dvc.yaml's code deps differ from what the stages import: run `python -m ganops.codedeps --write`"
            )
        paths = table_drift(root)
        for line in paths:
            print(line)
        if paths:
            print(
                "the DVC files differ from the stage table in src/ganops/stages/__init__.py: make them agree"
            )
        return 1 if problems or paths else 0
    if argv:
        print("usage: python -m ganops.codedeps [--check | --write]")
        return 2
    from ganops.stages import STAGES

    for stage in STAGES:
        print(f"{stage}:")
        for dep in as_deps(stage_closure(stage)):
            print(f"  - {dep}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
