"""The domain feature network: a small CNN trained on the prepared train split.

Standard FID uses Inception-v3 features, whose weights cannot be fetched here and which were
never trained on 32x32 grayscale garments anyway. Instead ganops trains this network once per
dataset (DVC caches it) and measures FID/KID in its penultimate layer (``fid_domain``): as a
classifier of the data's labels (``supervised``), or, where there are no usable labels, without
them (``self_supervised``, ganops.metrics.selfsup), in which case it has no class head.
Numbers are only comparable between runs that share the evaluator's sha256.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganops.config import EvaluatorParams
from ganops.data.prepared import PreparedSplit, to_unit_range
from ganops.errors import DataError
from ganops.files import save_torch
from ganops.progress import Progress
from ganops.runtime import Stream, seed_everything, stream
from ganops.training.fast import adam

ADAM_BETAS = (0.9, 0.999)  # torch's defaults

log = logging.getLogger(__name__)


SUPERVISED, SELF_SUPERVISED = "supervised", "self_supervised"


@dataclass(frozen=True)
class EvaluatorSpec:
    channels: int
    num_classes: int  # 0: trained without labels, no class head
    width: int
    feature_dim: int
    objective: str = SUPERVISED  # files written before label-free evaluators existed are supervised


class DomainClassifier(nn.Module):
    def __init__(self, spec: EvaluatorSpec) -> None:
        super().__init__()
        self.spec = spec
        w = spec.width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.body = nn.Sequential(
            *block(spec.channels, w),
            *block(w, w),
            nn.MaxPool2d(2),  # (w) x 16 x 16 for 32x32 input
            *block(w, 2 * w),
            *block(2 * w, 2 * w),
            nn.MaxPool2d(2),  # (2w) x 8 x 8
            *block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (4w)
            nn.Linear(4 * w, spec.feature_dim),
            nn.ReLU(inplace=True),  # feature_dim: the FID space
        )
        self.head = nn.Linear(spec.feature_dim, spec.num_classes) if spec.num_classes else None

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise TypeError("this evaluator was trained without labels and has no class head")
        return self.head(self.body(x))


class DomainFeatures(nn.Module):
    """torchmetrics feature extractor: float images in [-1, 1] -> penultimate-layer features."""

    def __init__(self, classifier: DomainClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.spec.feature_dim

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float())


def total_steps(n_images: int, params: EvaluatorParams) -> tuple[int, int]:
    """(steps per epoch, total steps): ``epochs`` passes, but at least ``min_steps`` on small sets."""
    per_epoch = max(n_images // params.batch_size, 1)
    return per_epoch, max(per_epoch * params.epochs, params.min_steps)


def batch_indices(n_images: int, params: EvaluatorParams, seed: int, device) -> Iterator[torch.Tensor]:
    """Index batches for every training step: a seeded permutation per pass over the data."""
    per_epoch, total = total_steps(n_images, params)
    size = min(params.batch_size, n_images)
    for step in range(total):
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            order = stream(seed, Stream.EVALUATOR_SHUFFLE, epoch)
            perm = torch.randperm(n_images, generator=order).to(device)
        yield perm[i * size : (i + 1) * size]


def train_evaluator(
    params: EvaluatorParams, train: PreparedSplit, test: PreparedSplit, seed: int, device: torch.device
) -> tuple[DomainClassifier, float]:
    """The supervised evaluator and its test accuracy."""
    if train.labels is None or test.labels is None:
        raise DataError(
            "evaluator: the dataset has no labels, so no classifier can be trained; "
            "set evaluator.objective to auto or self_supervised"
        )
    seed_everything(seed)
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    spec = EvaluatorSpec(train.images.shape[1], num_classes, params.width, params.feature_dim)
    model = DomainClassifier(spec).to(device)
    opt = adam(model.parameters(), params.lr, ADAM_BETAS, device)
    images, labels = (
        torch.from_numpy(train.images).to(device),
        torch.from_numpy(train.labels).long().to(device),
    )
    _, total = total_steps(len(images), params)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, params.lr, total_steps=total)
    model.train()
    with Progress(total, "evaluator") as progress:
        for idx in batch_indices(len(images), params, seed, device):
            loss = F.cross_entropy(model(to_unit_range(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            progress.update(loss=loss.item())
    accuracy = accuracy_on(model, test, device)
    return model.eval(), accuracy


@torch.no_grad()
def accuracy_on(
    model: DomainClassifier, split: PreparedSplit, device: torch.device, batch: int = 1000
) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(split.images), batch):
        x = to_unit_range(torch.from_numpy(split.images[start : start + batch]).to(device))
        y = torch.from_numpy(split.labels[start : start + batch]).long().to(device)
        correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(split.images)


def save_evaluator(path: Path, model: DomainClassifier, check: dict) -> None:
    """Weights, the spec that rebuilds them and the training's own check (accuracy or view matching)."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"spec": asdict(model.spec), "state_dict": weights, "check": check}, path)


def load_evaluator(path: str | Path, device: torch.device | str = "cpu") -> DomainClassifier:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run the evaluator stage first (`ganops evaluator`)")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        model = DomainClassifier(EvaluatorSpec(**saved["spec"]))
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a ganops evaluator file ({err}); rerun the evaluator stage") from None
    return model.to(device).eval()
