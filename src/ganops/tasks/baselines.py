"""Classical baselines: what a user has without a GAN, scored beside it on the same evaluation set.

Inputs and outputs follow the project's convention: float32 NCHW in [-1, 1], 1 or 3 channels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ganops import bicubic
from ganops.telea import RADIUS, telea_fill


def bicubic_upscale(low: Tensor, factor: int) -> Tensor:
    """Bicubic interpolation by an integer ``factor`` (superres), clamped to [-1, 1]: ganops.bicubic,
    the NumPy bicubic the server's baseline view runs too, so what is scored is what it shows.

    It is torch's ``F.interpolate(mode="bicubic", align_corners=False)`` (a = -0.75) to float32
    rounding. Bicubic overshoots near edges; the clamp keeps the result a valid image, as saving it would.
    """
    high = bicubic.upscale(low.detach().float().cpu().numpy(), factor)
    return torch.from_numpy(high).to(low.device)


def telea_inpaint(image: Tensor, mask: Tensor, radius: int = RADIUS) -> Tensor:
    """OpenCV's Telea inpainting (ganops.telea) per image; ``mask`` is N1HW with 1 = hole.

    OpenCV works on 8-bit images, so the filled pixels carry 8-bit rounding; the known pixels
    are copied back from ``image`` unchanged, bit for bit.
    """
    if image.ndim != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"telea_inpaint: expected NCHW with 1 or 3 channels, got {tuple(image.shape)}")
    if tuple(mask.shape) != (image.shape[0], 1, *image.shape[-2:]):
        raise ValueError(
            f"telea_inpaint: mask {tuple(mask.shape)} does not match images {tuple(image.shape)}; "
            "pass one N1HW mask per image (1 = hole)"
        )
    hole = mask > 0.5
    filled = [
        _from_uint8_hwc(telea_fill(_to_uint8_hwc(picture), holes[0].cpu().numpy(), radius))
        for picture, holes in zip(image, hole, strict=True)
    ]
    inpainted = torch.stack(filled).to(image.device)
    return torch.where(hole, inpainted, image.float())


def _to_uint8_hwc(picture: Tensor) -> np.ndarray:
    scaled = ((picture.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255)
    return np.ascontiguousarray(scaled.to(torch.uint8).permute(1, 2, 0).numpy())


def _from_uint8_hwc(pixels: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 127.5 - 1


def grey_colorize(luma_input: Tensor, channels: int = 3) -> Tensor:
    """The grey image itself, repeated to ``channels``: what a user has without a colorizer.

    Equal R, G and B carry zero chroma (Cb = Cr = 128/255 in BT.601), the floor any colorizer must beat.
    """
    if luma_input.ndim != 4 or luma_input.shape[1] != 1:
        raise ValueError(
            f"grey_colorize: expected the 1-channel luma input N1HW, got {tuple(luma_input.shape)}"
        )
    return luma_input.float().repeat(1, channels, 1, 1)
