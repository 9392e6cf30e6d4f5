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

SHAPES, SEGMENTS = 8, 4  # shapes drawn per mask, line segments per stroke at most


def _uniform(rng: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=rng)


def _strokes(n: int, height: int, width: int, rng: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Free-form strokes as LaMa's and DeepFill's masks draw them: random walks of 2 to 4 thick segments.
    Returns each stroke's segment end points (n, SHAPES, SEGMENTS + 1) in y and x, its radius, and
    which of its segments are drawn (n, SHAPES, SEGMENTS)."""
    size = min(height, width)
    radius = _uniform(rng, 0.03, 0.08, n, SHAPES) * size
    start_y, start_x = _uniform(rng, 0, height, n, SHAPES, 1), _uniform(rng, 0, width, n, SHAPES, 1)
    angle = _uniform(rng, 0, 2 * math.pi, n, SHAPES, SEGMENTS)
    length = _uniform(rng, 0.1, 0.4, n, SHAPES, SEGMENTS) * size
    ys = torch.cat([start_y, start_y + torch.cumsum(length * torch.sin(angle), -1)], -1).clamp(0, height - 1)
    xs = torch.cat([start_x, start_x + torch.cumsum(length * torch.cos(angle), -1)], -1).clamp(0, width - 1)
    drawn = torch.arange(SEGMENTS) < torch.randint(2, SEGMENTS + 1, (n, SHAPES, 1), generator=rng)
    return ys, xs, radius, drawn


def _boxes(n: int, height: int, width: int, rng: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Boxes of 10-50% of each side at random places: top, left, bottom, right (n, SHAPES)."""
    bh = (_uniform(rng, 0.1, 0.5, n, SHAPES) * height).round().clamp(min=1)
    bw = (_uniform(rng, 0.1, 0.5, n, SHAPES) * width).round().clamp(min=1)
    top = (_uniform(rng, 0, 1, n, SHAPES) * (height - bh + 1)).floor()
    left = (_uniform(rng, 0, 1, n, SHAPES) * (width - bw + 1)).floor()
    return top, left, top + bh, left + bw


def _inside(low: torch.Tensor, high: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(c, SHAPES, H, W) whether each pixel centre lies in [low, high) along the grid's axis."""
    return (grid >= low.unsqueeze(-1).unsqueeze(-1)) & (grid < high.unsqueeze(-1).unsqueeze(-1))


def masks(
    n: int, height: int, width: int, coverage: tuple[float, float], rng: torch.Generator
) -> torch.Tensor:
    """(n, 1, H, W) float masks, 1 = hole: the union of the first k of SHAPES strokes and boxes (one
    in three a box), k the fewest that cover a share drawn from ``coverage`` (all of them if none
    does; the last shape can overshoot the share a little). Every draw is made up front, so the
    masks are a pure function of the generator's state whatever the coverage turns out to be."""
    target = _uniform(rng, *coverage, n)
    is_box = torch.rand(n, SHAPES, generator=rng) < 1 / 3
    ys, xs, radius, drawn = _strokes(n, height, width, rng)
    top, left, bottom, right = _boxes(n, height, width, rng)
    py = (torch.arange(height, dtype=torch.float32) + 0.5).view(1, 1, 1, -1, 1)  # pixel centres
    px = (torch.arange(width, dtype=torch.float32) + 0.5).view(1, 1, 1, 1, -1)
    out = torch.zeros(n, 1, height, width)
    chunk = max(1, 2**22 // (SHAPES * SEGMENTS * height * width))  # images at a time: ~16 MB per tensor
    for first in range(0, n, chunk):
        i = slice(first, first + chunk)
        c = len(target[i])
        ay, ax, by, bx = (
            v[i].unsqueeze(-1).unsqueeze(-1)
            for v in (ys[:, :, :-1], xs[:, :, :-1], ys[:, :, 1:], xs[:, :, 1:])
        )
        dy, dx = by - ay, bx - ax
        t = (((py - ay) * dy + (px - ax) * dx) / (dy * dy + dx * dx).clamp(min=1e-9)).clamp(0, 1)
        near = ((py - (ay + t * dy)) ** 2 + (px - (ax + t * dx)) ** 2) <= radius[i].view(
            c, SHAPES, 1, 1, 1
        ) ** 2
        stroke = (near & drawn[i].view(c, SHAPES, SEGMENTS, 1, 1)).any(dim=2)
        box = _inside(top[i], bottom[i], py[:, 0]) & _inside(left[i], right[i], px[:, 0])
        union = torch.cummax(torch.where(is_box[i].view(c, SHAPES, 1, 1), box, stroke).float(), dim=1).values
        enough = union.mean(dim=(2, 3)) >= target[i].view(c, 1)
        k = torch.where(enough.any(dim=1), enough.float().argmax(dim=1), SHAPES - 1)
        out[i, 0] = union[torch.arange(c), k]
    return out


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
        sigmas = _uniform(rng, 0, blur, len(images)).clamp(min=1e-3)
        images = torch.stack(
            [_gaussian_blur(im, float(sigma)) for im, sigma in zip(images, sigmas, strict=True)]
        )
    low = F.interpolate(images, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    if noise > 0:
        stds = _uniform(rng, 0, noise, len(low)).view(-1, 1, 1, 1)
        draws = torch.randn(low.shape, generator=rng)
        low = low + (2 * stds * draws).to(low.device, low.dtype)  # std in [0, 1] units is 2x in [-1, 1]
    low = low.clamp(-1, 1)
    if jpeg_quality is not None:
        low = torch.stack([_jpeg(im, int(torch.randint(jpeg_quality, 96, (), generator=rng))) for im in low])
    return low


def edges(
    images: torch.Tensor, rng: torch.Generator, *, blur: float, share: tuple[float, float]
) -> torch.Tensor:
    """An edge map of each image, drawn as pix2pix's edges2* data sets are: dark lines (-1) on white (1),
    in the images' channels. Sobel gradients of the (blurred) luminance; the strongest ``s`` of each
    image's pixels are edges, ``s`` drawn from ``share`` per image. Squared magnitudes are compared
    (no square root: the same bits on every CPU), and a flat image draws no edge at all."""
    n, channels, height, width = images.shape
    luma = colour.luminance(images) if channels == 3 else images[:, :1]
    if blur > 0:
        luma = torch.stack([_gaussian_blur(im, blur) for im in luma])
    p = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    rows = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]  # smoothed across, then differenced along
    cols = p[:, :, :, :-2] + 2 * p[:, :, :, 1:-1] + p[:, :, :, 2:]
    gx = rows[:, :, :, 2:] - rows[:, :, :, :-2]
    gy = cols[:, :, 2:, :] - cols[:, :, :-2, :]
    magnitude = (gx * gx + gy * gy).flatten(1)  # (n, H * W)
    shares = _uniform(rng, *share, n)
    ranked = magnitude.sort(dim=1, descending=True).values
    count = (shares * height * width).long().clamp(1, height * width).to(magnitude.device)
    threshold = ranked.gather(1, (count - 1).unsqueeze(1))
    edge = (magnitude >= threshold) & (magnitude > 0)
    lines = torch.where(edge, -1.0, 1.0).to(images.dtype).view(n, 1, height, width)
    return lines.expand(-1, channels, -1, -1).contiguous()
