"""evaluate: fid_domain / kid_domain of the generator and of real data (the floor) -> reports/metrics.json."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import torch

from ganops.config import Params
from ganops.data.prepared import load_split, to_unit_range
from ganops.files import sha256_file, write_json
from ganops.metrics.evaluator import DomainFeatures, load_evaluator
from ganops.metrics.fid import DomainMetrics
from ganops.progress import Progress
from ganops.runtime import pick_device, seeded_generator
from ganops.stages import Layout
from ganops.training.loop import load_generator

log = logging.getLogger(__name__)


def _real_batches(images, count: int, batch: int, desc: str) -> Iterator[torch.Tensor]:
    count = min(count, len(images))
    with Progress(count, desc, unit="img") as progress:
        for start in range(0, count, batch):
            chunk = torch.from_numpy(images[start : min(start + batch, count)])
            progress.update(len(chunk))
            yield to_unit_range(chunk)


@torch.no_grad()
def _generated_batches(
    G, latent_dim: int, count: int, batch: int, seed: int, device
) -> Iterator[torch.Tensor]:
    noise = seeded_generator(seed, 5)
    with Progress(count, "generate", unit="img") as progress:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            progress.update(n)
            yield G(torch.randn(n, latent_dim, generator=noise).to(device)).float()


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.evaluate
    device = pick_device(params.train.device)
    began = time.perf_counter()
    G, spec = load_generator(layout.generator, device)
    metrics = DomainMetrics(
        DomainFeatures(load_evaluator(layout.evaluator, device)), p.kid_subsets, p.kid_subset_size, device
    )
    test = load_split(layout.prepared, "test")
    train = load_split(layout.prepared, "train")
    metrics.add_reference(_real_batches(test.images, len(test.images), p.batch_size, "reference (test)"))
    torch.manual_seed(params.seed)  # KID draws its subsets from the global generator
    floor = metrics.score(_real_batches(train.images, p.num_real, p.batch_size, "floor (train)"))
    torch.manual_seed(params.seed)
    model = metrics.score(
        _generated_batches(G, spec.latent_dim, p.num_samples, p.batch_size, params.seed, device)
    )
    report = {
        "fid_domain": model["fid"],
        "kid_domain": model["kid"],
        "kid_domain_std": model["kid_std"],
        "floor": {"fid_domain": floor["fid"], "kid_domain": floor["kid"]},
        "fid_domain_floor_ratio": model["fid"] / max(floor["fid"], 1e-12),
        "counts": {
            "generated": p.num_samples,
            "floor_real": min(p.num_real, len(train.images)),
            "reference": len(test.images),
            "reference_split": "test",
        },
        "evaluator_sha256": sha256_file(layout.evaluator),
        "generator_sha256": sha256_file(layout.generator),
        "seconds": round(time.perf_counter() - began, 2),
    }
    write_json(layout.metrics, report)
    log.info(
        "fid_domain %.3f (floor %.3f, ratio %.2f), kid_domain %.4f",
        report["fid_domain"],
        floor["fid"],
        report["fid_domain_floor_ratio"],
        report["kid_domain"],
    )
    return report
