"""Full-reference scores for restoration tasks (inpaint, superres, colorize), and how to summarize them.

Inputs follow the project's convention: float32 NCHW in [-1, 1], 1 (grey) or 3 (RGB) channels.
PSNR and SSIM are measured on the luma (Y) channel with BT.601 weights, as BasicSR and Real-ESRGAN
report them, so numbers can be set beside published ones. Colour, which Y cannot see, is scored by
``colour_histogram_distance`` on the chroma (Cb, Cr) plane.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio

from ganops.errors import DataError

# BT.601 "studio swing" YCbCr from RGB in [0, 1] (ITU-R BT.601; MATLAB's rgb2ycbcr; BasicSR's rgb2ycbcr):
# Y in [16, 235] / 255, Cb and Cr in [16, 240] / 255, 128 / 255 meaning "no colour".
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_CB_WEIGHTS = (-37.797, -74.203, 112.0)
_CR_WEIGHTS = (112.0, -93.786, -18.214)
_CHROMA_RANGE = (16 / 255, 240 / 255)
_NEUTRAL = 128 / 255

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; a finite cap keeps means and JSON usable
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # BasicSR's (and Wang et al.'s) Gaussian window


def _check_images(x: Tensor, name: str) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"{name}: expected NCHW with 1 or 3 channels, got shape {tuple(x.shape)}; "
            "add the batch dimension (x[None]) or drop an alpha channel"
        )


def _weighted(rgb01: Tensor, weights: tuple[float, float, float], offset: float) -> Tensor:
    r, g, b = rgb01[:, 0:1], rgb01[:, 1:2], rgb01[:, 2:3]
    return offset / 255 + (weights[0] * r + weights[1] * g + weights[2] * b) / 255


def to_luma(x: Tensor) -> Tensor:
    """Luma Y in [0, 1], shape N1HW, from images in [-1, 1].

    RGB uses BT.601 studio swing, the BasicSR / Real-ESRGAN convention for "PSNR on Y":
    ``Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in [0, 1], so Y spans
    [16/255, 235/255] (white is 235/255, not 1). A 1-channel image is already luma and is only
    mapped to [0, 1]; its errors are therefore not scaled by 219/255 as RGB errors are, and PSNRs
    of grey and RGB data differ by that convention (about 1.3 dB), not by quality.
    """
    _check_images(x, "to_luma")
    x01 = (x.float() + 1) / 2
    if x.shape[1] == 1:
        return x01
    return _weighted(x01, _Y_WEIGHTS, 16.0)


def _chroma(x: Tensor) -> tuple[Tensor, Tensor]:
    """BT.601 Cb and Cr in [16/255, 240/255] from RGB in [-1, 1]."""
    x01 = (x.float() + 1) / 2
    return _weighted(x01, _CB_WEIGHTS, 128.0), _weighted(x01, _CR_WEIGHTS, 128.0)


def _crop(x: Tensor, border: int) -> Tensor:
    return x[..., border : x.shape[-2] - border, border : x.shape[-1] - border] if border else x


def psnr_ssim(
    output: Tensor, target: Tensor, *, border: int = 0, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-image PSNR (dB) and SSIM on the Y channel (see ``to_luma``), data range 1.

    ``border`` pixels are cropped from every side first (superres convention: border = scale
    factor, since no method can know what lies beyond the image edge). SSIM is computed as BasicSR
    computes it (``ssim_basicsr``). A score needs at least 11x11 pixels left.
    PSNR is capped at 100 dB (``PSNR_CAP_DB``): identical images would otherwise score infinity.
    No quantization to 8 bits happens here: the output is scored as the float it is.

    ``mask`` (N1HW, 1 = hole) adds ``psnr_hole``: PSNR from the mean squared error over the hole
    pixels only, since that is where inpainting does its work (known pixels are usually pasted
    back and would flatter the whole-image score). An image without hole pixels gets NaN there,
    which ``summarize`` leaves out.

    Returns ``{"psnr": [N], "ssim": [N]}`` (plus ``"psnr_hole": [N]``), float32 tensors.
    """
    _check_images(output, "psnr_ssim output")
    _check_images(target, "psnr_ssim target")
    if output.shape != target.shape:
        raise ValueError(
            f"psnr_ssim: output {tuple(output.shape)} and target {tuple(target.shape)} differ; "
            "score each output against the target it restores, at the same size and channels"
        )
    height, width = output.shape[-2] - 2 * border, output.shape[-1] - 2 * border
    if border < 0 or min(height, width) < SSIM_WINDOW:  # SSIM's valid region needs one whole window
        raise DataError(
            f"psnr_ssim: images of {output.shape[-2]}x{output.shape[-1]} with border {border} leave "
            f"{height}x{width} pixels to score; SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW}: lower the "
            "border (superres: the scale factor) or evaluate at a larger image size"
        )
    out_y, tgt_y = _crop(to_luma(output), border), _crop(to_luma(target), border)
    psnr = peak_signal_noise_ratio(out_y, tgt_y, data_range=1.0, reduction="none", dim=(1, 2, 3))
    scores = {"psnr": psnr.clamp(max=PSNR_CAP_DB), "ssim": ssim_basicsr(out_y, tgt_y)}
    if mask is not None:
        scores["psnr_hole"] = _psnr_hole(out_y, tgt_y, _crop(_hole(mask, output), border))
    return scores


def ssim_basicsr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image SSIM of N1HW luma in [0, 1], as BasicSR's ``calculate_ssim`` computes it: Y in 0..255
    (float64), an 11x11 Gaussian window of sigma 1.5, C1 = (0.01 x 255)^2 and C2 = (0.03 x 255)^2,
    averaged over the valid region only (no padding: windows that lie wholly inside the image)."""
    x, y = x.double() * 255, y.double() * 255
    taps = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=x.device) - SSIM_WINDOW // 2
    gauss = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    gauss = gauss / gauss.sum()
    window = (gauss[:, None] * gauss[None, :]).view(1, 1, SSIM_WINDOW, SSIM_WINDOW)
    mean_x, mean_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mean_x**2
    var_y = F.conv2d(y * y, window) - mean_y**2
    covariance = F.conv2d(x * y, window) - mean_x * mean_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim.mean(dim=(1, 2, 3)).float()


def _hole(mask: Tensor, images: Tensor) -> Tensor:
    expected = (images.shape[0], 1, *images.shape[-2:])
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"mask: expected shape {expected} (N1HW, 1 = hole), got {tuple(mask.shape)}; "
            "pass the mask that degraded these images, one channel"
        )
    return (mask > 0.5).to(images.device)


def _psnr_hole(out_y: Tensor, tgt_y: Tensor, hole: Tensor) -> Tensor:
    squared = (out_y - tgt_y).pow(2) * hole
    pixels = hole.sum(dim=(1, 2, 3))
    mse = squared.sum(dim=(1, 2, 3)) / pixels  # 0 / 0 = NaN where an image has no hole
    psnr = -10 * torch.log10(mse)  # data range 1: 10 log10(1 / mse)
    return psnr.clamp(max=PSNR_CAP_DB)


def hole_coverage(mask: Tensor) -> Tensor:
    """Fraction of hole pixels per image, [N], from a N1HW mask (1 = hole)."""
    return (mask > 0.5).float().mean(dim=(1, 2, 3))


def coverage_bins(
    coverage: Tensor, edges: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0)
) -> list[tuple[str, Tensor]]:
    """Image indices grouped by hole coverage (see ``hole_coverage``), labelled like ``"10-20pct"`` (MLflow metric names admit no %).

    LaMa reports inpainting scores by mask area this way: a model can win on small holes and lose
    on large ones. Bins are [low, high), the last one includes its upper edge; empty bins are left out.
    """
    coverage = coverage.flatten().cpu()
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"coverage_bins: edges must be at least two increasing numbers, got {edges}")
    outside = (coverage < edges[0]) | (coverage > edges[-1])
    if outside.any():
        raise ValueError(
            f"coverage_bins: {int(outside.sum())} coverages lie outside [{edges[0]}, {edges[-1]}] "
            f"(e.g. {float(coverage[outside][0]):.3f}); coverage is a fraction of pixels: pass "
            "hole_coverage(mask), or widen the edges"
        )
    bins = []
    for i, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
        last = i == len(edges) - 2
        inside = (coverage >= low) & ((coverage <= high) if last else (coverage < high))
        if inside.any():
            bins.append((f"{_percent(low)}-{_percent(high)}pct", inside.nonzero().flatten()))
    return bins


def _percent(fraction: float) -> str:
    return f"{round(fraction * 100, 6):g}"  # 0.3 * 100 is 30.000000000000004


def colour_histogram_distance(a: Tensor, b: Tensor, *, bins: int = 32) -> float:
    """Jensen-Shannon divergence (bits, 0 = same, 1 = disjoint) between two sets' (Cb, Cr) histograms.

    Needs no labels and no pairing, and sees what Y-channel scores cannot: how much colour a set
    has and which. Each set (RGB, [-1, 1]) goes to BT.601 Cb, Cr; a ``bins`` x ``bins`` histogram
    with bins of width (224/255) / ``bins``, one centred on neutral grey, counts all pixels
    (extremes go to the outer bins) and is normalized to sum 1.

    Why Jensen-Shannon: it is symmetric, bounded, and finite where one histogram has empty bins
    (KL is not). Its log weighting notices rare saturated colours, the ones a cautious colorizer
    drops first, which total-variation distance counts only by their small mass. Grey images
    put all their mass in the one bin at (128, 128) / 255 and score near 1 against colourful ones.
    Finite samples give a small positive floor: compare sets of similar size.
    """
    p, q = _chroma_histogram(a, bins), _chroma_histogram(b, bins)
    m = (p + q) / 2
    return float((_kl_bits(p, m) + _kl_bits(q, m)) / 2)


def _chroma_histogram(x: Tensor, bins: int) -> Tensor:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"colour_histogram_distance: expected RGB NCHW, got shape {tuple(x.shape)}; grey images have "
            "no chroma: repeat them to 3 channels (ganops.baselines.grey) to score them as colour"
        )
    width = (_CHROMA_RANGE[1] - _CHROMA_RANGE[0]) / bins
    counts = torch.zeros(bins * bins, dtype=torch.float64)
    for chunk in x.split(256):  # bounds the per-pixel temporaries on large evaluation sets
        cb_bin, cr_bin = (_chroma_bin(c, width, bins) for c in _chroma(chunk))
        counts += torch.bincount((cb_bin * bins + cr_bin).flatten().cpu(), minlength=bins * bins).double()
    return counts / counts.sum()


def _chroma_bin(chroma: Tensor, width: float, bins: int) -> Tensor:
    # Neutral (128/255) is a bin's centre, not an edge: rounding noise in grey pixels stays in one bin.
    return (torch.round((chroma - _NEUTRAL) / width) + bins // 2).long().clamp(0, bins - 1)


def _kl_bits(p: Tensor, m: Tensor) -> Tensor:
    used = p > 0  # 0 log 0 = 0; m > 0 wherever p > 0
    return (p[used] * torch.log2(p[used] / m[used])).sum()


def colourfulness(x: Tensor) -> Tensor:
    """Hasler and Suesstrunk's colourfulness per image (2003), RGB in [-1, 1] read as 0..255: 0 for a
    grey image, about 15 for a dull photo and over 100 for a vivid one. It ranks colorizations by how
    much colour they dare, whatever the scene: grey (0) < a timid model < the real photos."""
    rgb = (x.float() + 1) * 127.5
    rg = (rgb[:, 0] - rgb[:, 1]).flatten(1)
    yb = (0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]).flatten(1)
    spread = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    return spread + 0.3 * (rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2).sqrt()


def chroma_error(output: Tensor, target: Tensor) -> Tensor:
    """Per image, the mean absolute difference of (Cb, Cr) from the target, in 0..255 units: whether
    the colours are the right ones where they are (grey scores the target's own chroma)."""
    from ganops.colour import chroma

    return (chroma(output.float()) - chroma(target.float())).abs().mean(dim=(1, 2, 3)) * 127.5


def summarize(values: dict[str, Tensor]) -> dict[str, float]:
    """Mean of each per-image score, and ``<name>_ci95``: the 95% interval half-width, 1.96 std / sqrt(n).

    The register stage gates promotion on a primary metric with its interval, so both are kept.
    NaN entries (``psnr_hole`` of an image without a hole) are left out. With fewer than two values
    the width is unknown and reported as infinity, so no gate can pass on it. Values are rounded
    to 5 significant digits: more would be noise at evaluation-set sizes.
    """
    summary: dict[str, float] = {}
    for name, tensor in values.items():
        v = tensor.detach().double().flatten()
        v = v[~v.isnan()]
        mean = float(v.mean()) if len(v) else math.nan
        half_width = 1.96 * float(v.std()) / math.sqrt(len(v)) if len(v) >= 2 else math.inf
        summary[name] = _round(mean)
        summary[f"{name}_ci95"] = _round(half_width)
    return summary


def _round(x: float) -> float:
    return float(f"{x:.5g}") if math.isfinite(x) else x
