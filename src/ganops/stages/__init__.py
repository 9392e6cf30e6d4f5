"""One module per pipeline stage: read params, call the library, write outputs.

The CLI, dvc.yaml and the Prefect flow all call these functions; no stage logic lives
anywhere else. Paths are relative to a project root, so tests can run stages in a temp dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = ("validate", "prepare", "evaluator", "train", "evaluate", "export", "register")


@dataclass(frozen=True)
class Layout:
    """Where each stage reads and writes; mirrored by the deps/outs in dvc.yaml."""

    root: Path = Path(".")

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

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

    def lock(self, stage: str) -> Path:
        return self.root / ".ganops" / "locks" / f"{stage}.lock"

    def report(self, stage: str) -> Path:
        """The JSON file that summarizes a stage's result (what its run() returns)."""
        return {
            "validate": self.libraries,
            "prepare": self.prepared / "manifest.json",
            "evaluator": self.evaluator_report,
            "train": self.train_report,
            "evaluate": self.metrics,
            "export": self.onnx_sidecar,
            "register": self.registry,
        }[stage]


def run_stage(name: str, params_path: Path, root: Path = Path(".")) -> dict:
    """Validate params, then run one stage under its workspace lock; returns its summary.

    The lock keeps two runners (DVC and Prefect, or two shells) from interleaving writes to the
    same outputs; the second one waits and says so. When and how long the stage ran goes to its
    untracked timing log (logs/<stage>.json), never into a DVC-tracked output.
    """
    import importlib
    import os
    import time
    from datetime import UTC, datetime

    from ganops.config import load_params
    from ganops.files import read_json, write_json
    from ganops.locks import stage_lock

    params = load_params(params_path)  # validation happens before any output is touched
    module = importlib.import_module(f"ganops.stages.{name}")
    layout = Layout(root)
    with stage_lock(layout.lock(name), name):
        started, began = datetime.now(UTC), time.perf_counter()
        result = module.run(params, layout, params_path=params_path)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 keeps the log
            log_path = layout.timings(name)
            fresh = log_path.exists() and log_path.stat().st_mtime >= started.timestamp()
            facts = read_json(log_path) if fresh else {}  # what the stage itself recorded this run
            write_json(
                log_path,
                {
                    **facts,
                    "stage": name,
                    "started": started.isoformat(timespec="seconds"),
                    "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                    "seconds": round(time.perf_counter() - began, 3),
                },
            )
    return result
