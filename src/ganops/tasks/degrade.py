"""The degradations a restoration model learns to undo, as pure functions of (images, torch.Generator).

Every random choice is drawn from the generator passed in, which the callers seed per batch from
(seed, stream, index): a resumed run, and the evaluation set on any machine, get the same masks,
blurs, noise and JPEG qualities. Images are float tensors in [-1, 1] (NCHW), on any device; the
draws are made on the CPU.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganops import colour


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def _stroke(mask: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, rng: torch.Generator) -> None:
    """A free-form stroke: a random walk of thick line segments, as LaMa's and DeepFill's masks."""
    h, w = mask.shape
    size = min(h, w)
    radius = _uniform(rng, 0.03, 0.08) * size
    y, x = _uniform(rng, 0, h), _uniform(rng, 0, w)
    for _ in range(int(torch.randint(2, 6, (), generator=rng))):
        angle = _uniform(rng, 0, 2 * math.pi)
        length = _uniform(rng, 0.1, 0.4) * size
        y2 = min(max(y + length * math.sin(angle), 0.0), h - 1.0)
        x2 = min(max(x + length * math.cos(angle), 0.0), w - 1.0)
        # distance of every pixel centre to the segment (y, x)-(y2, x2)
        dy, dx = y2 - y, x2 - x
        t = ((ys - y) * dy + (xs - x) * dx) / max(dy * dy + dx * dx, 1e-9)
        t = t.clamp(0, 1)
        mask[((ys - (y + t * dy)) ** 2 + (xs - (x + t * dx)) ** 2) <= radius * radius] = 1
        y, x = y2, x2


def _box(mask: torch.Tensor, rng: torch.Generator) -> None:
    h, w = mask.shape
    bh = max(1, round(_uniform(rng, 0.1, 0.5) * h))
    bw = max(1, round(_uniform(rng, 0.1, 0.5) * w))
    top = int(torch.randint(0, h - bh + 1, (), generator=rng))
    left = int(torch.randint(0, w - bw + 1, (), generator=rng))
    mask[top : top + bh, left : left + bw] = 1


def masks(
    n: int, height: int, width: int, coverage: tuple[float, float], rng: torch.Generator
) -> torch.Tensor:
    """(n, 1, H, W) float masks, 1 = hole: strokes and boxes (one in three) added until each mask
    covers a share drawn from ``coverage``; the last shape can overshoot it a little."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5,
        torch.arange(width, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    out = torch.zeros(n, 1, height, width)
    for mask in out[:, 0]:
        target = _uniform(rng, *coverage)
        for _ in range(100):  # a bound, never reached in practice: each shape adds area
            if float(mask.mean()) >= target:
                break
            if float(torch.rand((), generator=rng)) < 1 / 3:
                _box(mask, rng)
            else:
                _stroke(mask, ys, xs, rng)
    return out


def hide(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The inpainting model's input: the image with the hole zeroed (mid-grey), and the mask as a channel."""
    mask = mask.to(images.device, images.dtype)
    return torch.cat([images * (1 - mask), mask], dim=1)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """One CHW image blurred with a separable Gaussian (reflect padding); sigma in pixels."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(image.dtype)
    c = image.shape[0]
    x = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0]


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """One CHW image in [-1, 1] through a JPEG encode and decode at ``quality`` (Pillow, 4:2:0)."""
    array = ((image.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(pil.mode), dtype=np.uint8)
    decoded = decoded[:, :, None] if decoded.ndim == 2 else decoded
    return (torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 127.5 - 1).to(
        image.device, image.dtype
    )


def downscale(
    images: torch.Tensor,
    factor: int,
    rng: torch.Generator,
    *,
    blur: float = 0.0,
    noise: float = 0.0,
    jpeg_quality: int | None = None,
) -> torch.Tensor:
    """The low-resolution input: optional blur, an antialiased bicubic downscale by ``factor``, then
    optional Gaussian noise and JPEG (Real-ESRGAN's first-order degradation, each strength drawn per image)."""
    if blur > 0:
        images = torch.stack([_gaussian_blur(im, max(_uniform(rng, 0, blur), 1e-3)) for im in images])
    low = F.interpolate(images, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    if noise > 0:
        stds = torch.tensor([_uniform(rng, 0, noise) for _ in range(len(low))]).view(-1, 1, 1, 1)
        draws = torch.randn(low.shape, generator=rng)
        low = low + (2 * stds * draws).to(low.device, low.dtype)  # std in [0, 1] units is 2x in [-1, 1]
    low = low.clamp(-1, 1)
    if jpeg_quality is not None:
        low = torch.stack([_jpeg(im, int(torch.randint(jpeg_quality, 96, (), generator=rng))) for im in low])
    return low


def grey(images: torch.Tensor) -> torch.Tensor:
    """The colorization model's input: the luminance (one channel)."""
    return colour.luminance(images)
