"""Class coverage for labelled data: which classes the generator produces, by the domain classifier."""

from __future__ import annotations

import torch

MIN_SHARE = 0.01  # a class counts as covered when it has at least 1% of the samples


def class_histogram(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels.long(), minlength=num_classes).double()


def class_stats(fake_logits: torch.Tensor, real_labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Coverage (share of classes with >= 1% of the samples) and KL(real histogram || generated).

    The generated histogram is smoothed by half a count per class (Jeffreys), so a missing class
    gives a large but finite KL.
    """
    counts = class_histogram(fake_logits.argmax(1), num_classes)
    shares = counts / counts.sum()
    p_real = class_histogram(real_labels, num_classes)
    p_real = p_real / p_real.sum()
    p_fake = (counts + 0.5) / (counts.sum() + 0.5 * num_classes)
    present = p_real > 0
    kl = (p_real[present] * (p_real[present] / p_fake[present]).log()).sum()
    return {
        "class_coverage": float((shares >= MIN_SHARE).double().mean()),
        "class_kl": float(kl),
    }
