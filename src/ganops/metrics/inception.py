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

from ganops.files import sha256_file

log = logging.getLogger(__name__)

HUB_FILE = "pt_inception-2015-12-05-6726825d.pth"


# torch hub names a file by the first hex digits of its sha256; this is the published file's.
SHA256_PREFIX = HUB_FILE.rsplit("-", 1)[1].split(".")[0]


def find_weights(configured: str | None) -> tuple[Path | None, str]:
    """The weights file to use, or None and the one-line reason fid_inception is omitted."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            return None, f"fid_inception omitted: evaluate.inception_weights={path} does not exist"
    else:
        path = Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILE
        if not path.is_file():
            return None, (
                f"fid_inception omitted: no local Inception-v3 weights file at {path} "
                "(set evaluate.inception_weights)"
            )
    return verified(path)


def verified(path: Path) -> tuple[Path | None, str]:
    """The file only if it is the published one: torch-fidelity's loader unpickles it, so a file
    that is anything else could run code. Its sha256 must match, and it must hold only tensors."""
    digest = sha256_file(path)
    if not digest.startswith(SHA256_PREFIX):
        return None, (
            f"fid_inception omitted: {path} has sha256 {digest[:12]}..., not the published {HUB_FILE} "
            f"({SHA256_PREFIX}...); point evaluate.inception_weights at an unmodified copy"
        )
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means: not a plain weights file
        return None, f"fid_inception omitted: {path} is not a plain weights file ({type(err).__name__})"
    return path, ""


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
