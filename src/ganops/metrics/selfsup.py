"""Label-free training of the domain feature network, for data without (usable) labels.

Same network as the supervised evaluator (ganops.metrics.evaluator), same feature layer, same
steps; only the objective differs:

- ``contrastive`` (SimCLR, Chen et al. 2020): two random views of each image are pulled together
  and pushed away from the other images of the batch (NT-Xent loss) through a small projection
  head that is dropped afterwards;
- ``rotation`` (RotNet, Gidaris et al. 2018): a 4-way classifier of which multiple of 90 degrees an
  image was turned by, which needs the network to see the object's shape and pose.

The views differ only by crop, flip and brightness/contrast (and saturation for colour). Never by
noise or blur: a network trained to ignore them would not see them in generated images either,
and FID would stop rising with them. ``evaluator.self_supervised`` picks the objective; the
default (rotation) was chosen by measurement (benchmarks/evaluator_validation.py, docs/evaluator.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganops.config import EvaluatorParams
from ganops.data.prepared import PreparedSplit, to_unit_range
from ganops.metrics.evaluator import (
    ADAM_BETAS,
    SELF_SUPERVISED,
    DomainClassifier,
    EvaluatorSpec,
    batch_indices,
    total_steps,
)
from ganops.progress import Progress
from ganops.runtime import Stream, seed_everything, stream
from ganops.training.fast import adam

METHODS = ("rotation", "contrastive")
TEMPERATURE = 0.5  # SimCLR's value for small batches (their CIFAR-10 setting)
PROJECTION_DIM = 64


def _uniform(n: int, low: float, high: float, rng: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=rng) * (high - low) + low


def augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A random view of each image in [-1, 1]: crop to 60-100% of the side, flip, jitter intensity."""
    n, c = x.shape[:2]
    scale = _uniform(n, 0.6, 1.0, rng)
    flip = torch.where(torch.rand(n, generator=rng) < 0.5, -1.0, 1.0)
    shift = (1 - scale)[:, None] * _uniform(2 * n, -1, 1, rng).view(n, 2)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    view = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = _uniform(n, 0.6, 1.4, rng).view(n, 1, 1, 1).to(x.device)
    brightness = _uniform(n, -0.3, 0.3, rng).view(n, 1, 1, 1).to(x.device)
    mean = view.mean(dim=(1, 2, 3), keepdim=True)
    view = (view - mean) * contrast + mean + brightness
    if c == 3:  # saturation: blend with the gray image, so colour histograms alone cannot match views
        gray = view.mean(dim=1, keepdim=True)
        saturation = _uniform(n, 0.0, 1.5, rng).view(n, 1, 1, 1).to(x.device)
        view = gray + (view - gray) * saturation
    return view.clamp(-1, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner out of the other 2N - 2 views of the batch."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def rotate(x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image turned by k x 90 degrees, with k as its label."""
    k = torch.randint(0, 4, (len(x),), generator=rng).to(x.device)
    turned = x.clone()
    for r in (1, 2, 3):  # prepared images are square, so a turned image keeps its shape
        turned[k == r] = torch.rot90(x[k == r], r, dims=(2, 3))
    return turned, k


def _head(method: str, feature_dim: int) -> nn.Module:
    if method == "contrastive":
        return nn.Sequential(
            nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, PROJECTION_DIM)
        )
    return nn.Linear(feature_dim, 4)


def _loss(model: DomainClassifier, head: nn.Module, method: str, x: torch.Tensor, rng) -> torch.Tensor:
    if method == "contrastive":
        views = torch.cat([augment(x, rng), augment(x, rng)])
        z = head(model.features(views))
        return nt_xent(*z.chunk(2))
    turned, k = rotate(x, rng)
    return F.cross_entropy(head(model.features(turned)), k)


def train_self_supervised(
    params: EvaluatorParams,
    train: PreparedSplit,
    test: PreparedSplit,
    seed: int,
    device: torch.device,
    method: str | None = None,
) -> tuple[DomainClassifier, dict]:
    """The label-free evaluator (``method``, default ``evaluator.self_supervised``) and its own check
    on the test split (see ``self_check``)."""
    method = method or params.self_supervised
    if method not in METHODS:
        raise ValueError(f"unknown self-supervised method {method!r}; one of {', '.join(METHODS)}")
    seed_everything(seed)
    spec = EvaluatorSpec(train.images.shape[1], 0, params.width, params.feature_dim, SELF_SUPERVISED)
    model = DomainClassifier(spec).to(device)
    head = _head(method, params.feature_dim).to(device)
    opt = adam([*model.parameters(), *head.parameters()], params.lr, ADAM_BETAS, device)
    images = torch.from_numpy(train.images).to(device)
    _, total = total_steps(len(images), params)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, params.lr, total_steps=total)
    rng = stream(seed, Stream.SELF_SUPERVISED)
    model.train(), head.train()
    with Progress(total, f"evaluator ({method})") as progress:
        for idx in batch_indices(len(images), params, seed, device):
            loss = _loss(model, head, method, to_unit_range(images[idx]), rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            progress.update(loss=loss.item())
    model.eval(), head.eval()
    return model, {"method": method, **self_check(model, head, method, test, seed, device)}


@torch.no_grad()
def self_check(
    model: DomainClassifier,
    head: nn.Module,
    method: str,
    test: PreparedSplit,
    seed: int,
    device,
    batch: int = 256,
) -> dict:
    """How well the trained objective holds on unseen images, next to its chance level.

    contrastive: the share of test views whose nearest other view (within a batch of ``batch``) is
    their partner; rotation: test accuracy of the rotation classifier.
    """
    rng = stream(seed, Stream.SELF_CHECK)
    hits = total = 0
    chance = []
    for start in range(0, len(test.images), batch):
        x = to_unit_range(torch.from_numpy(test.images[start : start + batch]).to(device))
        if method == "contrastive":
            if len(x) < 2:
                continue
            z1, z2 = (F.normalize(model.features(augment(x, rng)), dim=1) for _ in range(2))
            hits += (torch.argmax(z1 @ z2.T, dim=1) == torch.arange(len(x), device=device)).sum().item()
            chance.append((len(x), 1 / len(x)))
        else:
            turned, k = rotate(x, rng)
            hits += (head(model.features(turned)).argmax(1) == k).sum().item()
            chance.append((len(x), 0.25))
        total += len(x)
    name = "view_match" if method == "contrastive" else "rotation_accuracy"
    return {
        f"test_{name}": hits / max(total, 1),
        f"test_{name}_chance": sum(n * c for n, c in chance) / max(total, 1),
    }
