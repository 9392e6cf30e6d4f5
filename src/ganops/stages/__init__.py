"""One module per pipeline stage: read params, call the library, write outputs.

The CLI, dvc.yaml and the Prefect flow all call these functions; no stage logic lives
anywhere else. Paths are relative to a project root, so tests can run stages in a temp dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = ("prepare", "evaluator", "train", "evaluate", "export", "register")


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
        return self.root / "reports" / "registry.json"


def run_stage(name: str, params_path: Path, root: Path = Path(".")) -> dict:
    """Validate params, then run one stage; returns its summary."""
    import importlib

    from ganops.config import load_params

    params = load_params(params_path)  # validation happens before any output is touched
    module = importlib.import_module(f"ganops.stages.{name}")
    return module.run(params, Layout(root), params_path=params_path)
