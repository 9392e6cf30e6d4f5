"""Standard Inception-v3 features for ``fid_inception``, only when the weights file is here.

Nothing is downloaded: the file is taken from ``evaluate.inception_weights`` or the torch hub
cache (torch-fidelity's ``pt_inception-2015-12-05-6726825d.pth``, the network of the original
TF FID code). Without it ``fid_inception`` is left out with a one-line notice, never faked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

HUB_FILE = "pt_inception-2015-12-05-6726825d.pth"


def find_weights(configured: str | None) -> Path | None:
    if configured is not None:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        log.warning("fid_inception omitted: evaluate.inception_weights=%s does not exist", path)
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILE
    if path.is_file():
        return path
    log.info("fid_inception omitted: no Inception-v3 weights at %s (set evaluate.inception_weights)", path)
    return None


def torch_fidelity_inception(weights: Path) -> nn.Module:
    """torch-fidelity's FID Inception-v3, loaded from the local file: uint8 (N, 3, H, W) -> (N, 2048)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
    )


class InceptionFeatures(nn.Module):
    """Images in [-1, 1] (gray or RGB) -> the network's uint8 RGB input -> (N, D) features."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out = self.net(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).flatten(1)


# Tests inject a tiny stand-in that loads its own weights file, to cover this branch offline.
InceptionBuilder = Callable[[Path], nn.Module]
