"""One module per pipeline stage: read params, call the library, write outputs.

The CLI, dvc.yaml and the Prefect flow all call these functions; no stage logic lives
anywhere else. Paths are relative to a project root, so tests can run stages in a temp dir.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    """One box of the DAG: what it reads and writes (``Layout`` attribute names) and which params.

    This table is the one place that lists stages and their files: the CLI, the Prefect flow and
    the MLflow run tree read it, and ``python -m ganops.codedeps --check`` fails when dvc.yaml's
    deps, outs or params drift from it (as it does for the code each stage imports)."""

    name: str
    summary: str  # the CLI's help line
    reads: tuple[str, ...] = ()  # dvc.yaml deps besides code
    writes: tuple[str, ...] = ()  # dvc.yaml outs, metrics and plots
    params: tuple[
        str, ...
    ] = ()  # params.yaml sections or keys; the cpu section where torch shapes the outputs
    report: str = ""  # the JSON file that summarizes its result (what run() returns)
    dvcfile: str = "dvc.yaml"  # the DVC file that declares it, relative to the project root

    @property
    def target(self) -> str:
        """How DVC's commands and API address it (``dvc status TARGET``)."""
        return self.name if self.dvcfile == "dvc.yaml" else f"{self.dvcfile}:{self.name}"

    @property
    def pins_cpu(self) -> bool:
        """Torch's CPU kernels shape its outputs: it runs pinned (ganops.cpu)."""
        return "cpu" in self.params


PIPELINE = (
    Stage(
        "validate",
        "Check params.yaml and record library versions and the raw data's fingerprint (runs first).",
        writes=("libraries", "source"),
        report="libraries",
        # Its own DVC file, so the lock file DVC rewrites on every repro is a small one (that file
        # says why it matters).
        dvcfile="reports/inputs/dvc.yaml",
    ),
    Stage(
        "prepare",
        "Read the raw dataset, fit it to data.image_size, write data/prepared/.",
        reads=("source", "libraries"),
        writes=("prepared",),
        params=("data", "cpu"),
        report="manifest",
    ),
    Stage(
        "evaluator",
        "Train the domain feature network used for FID/KID (models/evaluator.pt).",
        reads=("prepared", "libraries"),
        writes=("evaluator", "evaluator_report"),
        params=("seed", "evaluator", "train.device", "cpu"),
        report="evaluator_report",
    ),
    Stage(
        "evalset",
        "Degrade the first test images once: the task's fixed evaluation set (data/evalset/).",
        reads=("prepared", "libraries"),
        writes=("evalset",),
        params=("seed", "task", "restore", "cpu"),
        report="evalset_manifest",
    ),
    Stage(
        "train",
        "Train the GAN (resumes from models/checkpoints/ when the settings match).",
        reads=("prepared", "evaluator", "libraries"),
        writes=("generator", "samples", "train_report", "train_history", "train_live"),
        params=("seed", "task", "model", "train", "restore", "cpu"),
        report="train_report",
    ),
    Stage(
        "evaluate",
        "Measure fid_domain / kid_domain and the real-data floor (reports/metrics.json).",
        reads=("prepared", "evalset", "generator", "evaluator", "libraries"),
        writes=("metrics",),
        params=("seed", "evaluate", "train.device", "cpu"),
        report="metrics",
    ),
    Stage(
        "export",
        "Export the generator to ONNX and check parity with ONNX Runtime.",
        reads=("manifest", "generator", "libraries"),  # the manifest: what an image model was trained on
        writes=("onnx", "onnx_sidecar", "fp16", "triton"),
        params=("seed", "task", "export", "register.model_name"),  # the last two name the Triton model
        report="onnx_sidecar",
    ),
    Stage(
        "register",
        "Register the ONNX generator in MLflow; move the champion alias only if it is better.",
        reads=(
            "manifest",
            "generator",
            "onnx",
            "onnx_sidecar",
            "evaluator_report",
            "train_report",
            "train_history",
            "train_live",
            "metrics",
            "samples",
        ),
        writes=("registered",),
        params=("seed", "task", "register"),
        report="registry",
    ),
)
STAGES = tuple(stage.name for stage in PIPELINE)
BY_NAME = {stage.name: stage for stage in PIPELINE}
DVC_FILES = tuple(dict.fromkeys(stage.dvcfile for stage in PIPELINE))


def declared_stages(root: Path) -> dict[str, dict]:
    """What the DVC files declare, per file (``DVC_FILES``): {dvcfile: {stage name: its entry}}."""
    import yaml

    from ganops.errors import ConfigError

    declared = {}
    for name in DVC_FILES:
        path = Path(root) / name
        if not path.is_file():
            raise ConfigError(f"{path}: not found; run from the project root (the folder holding dvc.yaml)")
        declared[name] = yaml.safe_load(path.read_text()).get("stages", {})
    return declared


@dataclass(frozen=True)
class Layout:
    """Where each stage reads and writes (the stage table above names these attributes)."""

    root: Path = Path(".")

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def manifest(self) -> Path:
        """prepare's summary: counts, shapes and sha256 of the prepared arrays."""
        return self.prepared / "manifest.json"

    @property
    def evalset(self) -> Path:
        """The task's fixed evaluation set (a folder: its arrays and manifest)."""
        return self.root / "data" / "evalset"

    @property
    def evalset_manifest(self) -> Path:
        return self.evalset / "manifest.json"

    @property
    def evaluator(self) -> Path:
        return self.root / "models" / "evaluator.pt"

    @property
    def evaluator_report(self) -> Path:
        return self.root / "reports" / "evaluator.json"

    @property
    def generator(self) -> Path:
        return self.root / "models" / "generator.pt"

    @property
    def checkpoints(self) -> Path:
        """The training runs' resumable state: not a DVC output (the train stage prunes it)."""
        return self.root / "models" / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "reports" / "samples"

    @property
    def train_history(self) -> Path:
        return self.root / "reports" / "train" / "losses.csv"

    @property
    def train_live(self) -> Path:
        return self.root / "reports" / "train" / "live.csv"

    @property
    def train_report(self) -> Path:
        return self.root / "reports" / "train.json"

    @property
    def metrics(self) -> Path:
        return self.root / "reports" / "metrics.json"

    @property
    def onnx(self) -> Path:
        return self.root / "models" / "generator.onnx"

    @property
    def onnx_sidecar(self) -> Path:
        return self.root / "models" / "generator.onnx.json"

    @property
    def fp16(self) -> Path:
        """A folder, so DVC can track it whether or not export wrote the optional fp16 variant."""
        return self.root / "models" / "fp16"

    @property
    def fp16_onnx(self) -> Path:
        return self.fp16 / "generator.fp16.onnx"

    @property
    def triton(self) -> Path:
        """The Triton model repository export derives from the fp32 file."""
        return self.root / "models" / "triton"

    @property
    def registry(self) -> Path:
        """The registration's details (run id, version, aliases): not reproducible, so not in git."""
        return self.root / "reports" / "registry.json"

    @property
    def registered(self) -> Path:
        """register's DVC output: what was registered, in bytes that the same inputs reproduce."""
        return self.root / "reports" / "registered.json"

    @property
    def libraries(self) -> Path:
        """validate's record of the library versions that shape numbers (every stage depends on it)."""
        return self.root / "reports" / "inputs" / "libraries.json"

    @property
    def source(self) -> Path:
        """validate's fingerprint of the raw data files (prepare depends on it)."""
        return self.root / "reports" / "inputs" / "source.json"

    def timings(self, stage: str) -> Path:
        """Wall times and other facts of one run on this machine: kept out of git and DVC."""
        return self.root / "logs" / f"{stage}.json"

    @property
    def verdict(self) -> Path:
        """validate's memory of the last params check that passed (stages/validate.py): untracked."""
        return self.root / ".ganops" / "validated.json"

    def lock(self, stage: str) -> Path:
        return self.root / ".ganops" / "locks" / f"{stage}.lock"

    def report(self, stage: str) -> Path:
        """The JSON file that summarizes a stage's result (what its run() returns)."""
        return getattr(self, BY_NAME[stage].report)


def run_stage(name: str, params_path: Path, root: Path = Path(".")) -> dict:
    """Validate params, then run one stage under its workspace lock; returns its summary."""
    import importlib

    from ganops import cpu
    from ganops.config import load_params

    params = load_params(params_path)  # validation happens before any output is touched
    pins_cpu = BY_NAME[name].pins_cpu
    if pins_cpu:
        cpu.pin(params.cpu)  # before the stage's module imports torch
    module = importlib.import_module(f"ganops.stages.{name}")
    layout = Layout(root)
    with timed_stage(name, layout) as facts:
        if pins_cpu:
            facts.update(cpu.check(params.cpu))
        return module.run(params, layout, params_path=params_path)


@contextlib.contextmanager
def timed_stage(name: str, layout: Layout) -> Iterator[dict]:
    """Hold the stage's workspace lock while the block runs; if it succeeds, write its timing log.

    The lock keeps two runners (DVC and Prefect, or two shells) from interleaving writes to the
    same outputs; the second one waits and says so. When and how long the stage ran goes to its
    untracked timing log (logs/<stage>.json), never into a DVC-tracked output, with the facts the
    block put in the yielded dict.
    """
    import os
    import time
    from datetime import UTC, datetime

    from ganops.files import read_json, write_json
    from ganops.locks import stage_lock

    with stage_lock(layout.lock(name), name):
        started, began = datetime.now(UTC), time.perf_counter()
        facts: dict = {}
        yield facts
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 keeps the log
            log_path = layout.timings(name)
            fresh = log_path.exists() and log_path.stat().st_mtime >= started.timestamp()
            own = read_json(log_path) if fresh else {}  # what the stage itself recorded this run
            write_json(
                log_path,
                {
                    **facts,
                    **own,  # a launched train stage's rank 0 recorded its own kernels and threads
                    "stage": name,
                    "started": started.isoformat(timespec="seconds"),
                    "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                    "seconds": round(time.perf_counter() - began, 3),
                },
            )
