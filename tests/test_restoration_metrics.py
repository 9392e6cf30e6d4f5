"""Restoration scores (PSNR/SSIM on Y, hole PSNR, coverage bins, chroma histograms) and classical baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganops import baselines
from ganops.cards import card
from ganops.metrics.restoration import (
    PSNR_CAP_DB,
    colour_histogram_distance,
    coverage_bins,
    hole_coverage,
    psnr_ssim,
    summarize,
    to_luma,
)
from ganops.serve.images import to_uint8
from ganops.telea import RADIUS


def bicubic_upscale(low: torch.Tensor, factor: int) -> torch.Tensor:
    """The superres card's baseline (NumPy, as the evaluate stage and the server run it) on tensors."""
    return torch.from_numpy(baselines.bicubic(low.numpy(), low.shape[1], factor))


def telea_inpaint(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The inpaint card's baseline on the image and its N1HW mask, encoded as the card encodes them."""
    model_input = card("inpaint").image_to_image.encode(image, mask)
    return torch.from_numpy(baselines.telea(model_input.numpy(), image.shape[1], 1))


def grey_colorize(luma: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(baselines.grey(luma.numpy(), 3, 1))


def smooth_colour_fields(n: int, size: int, generator: torch.Generator, channels: int = 3) -> torch.Tensor:
    """Random colour fields: coarse uniform noise, upsampled bicubically, so neighbours correlate."""
    coarse = torch.rand(n, channels, 4, 4, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def desaturate(rgb: torch.Tensor, keep: float) -> torch.Tensor:
    """Move each pixel towards its grey (BT.601 luma) by 1 - keep."""
    grey = to_luma(rgb).sub(16 / 255).mul(255 / 219).mul(2).sub(1)  # studio-swing Y back to [-1, 1]
    return (grey + keep * (rgb - grey)).clamp(-1, 1)


def test_luma_of_white_black_and_red_follows_bt601():
    white, black = torch.ones(1, 3, 1, 1), -torch.ones(1, 3, 1, 1)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    assert to_luma(white).item() == pytest.approx(235 / 255, abs=1e-6)
    assert to_luma(black).item() == pytest.approx(16 / 255, abs=1e-6)
    assert to_luma(red).item() == pytest.approx((16 + 65.481) / 255, abs=1e-6)
    assert to_luma(torch.tensor([[[[-1.0, 0.0, 1.0]]]])).flatten().tolist() == [0.0, 0.5, 1.0]


def test_psnr_matches_the_formula_for_a_known_mse():
    target = torch.zeros(2, 1, 16, 16)  # grey: luma is the image mapped to [0, 1]
    output = target.clone()
    output[0] += 0.2  # +0.1 in [0, 1]: MSE 0.01 -> 20 dB
    output[1, :, ::2] -= 0.1  # half the pixels off by 0.05: MSE 0.00125
    psnr = psnr_ssim(output, target)["psnr"]
    assert psnr[0].item() == pytest.approx(20.0, abs=1e-4)
    assert psnr[1].item() == pytest.approx(10 * math.log10(1 / 0.00125), abs=1e-4)


def test_identical_images_have_ssim_one_and_capped_psnr():
    images = smooth_colour_fields(3, 16, torch.Generator().manual_seed(0))
    scores = psnr_ssim(images, images.clone())
    assert torch.allclose(scores["ssim"], torch.ones(3), atol=1e-5)
    assert scores["psnr"].tolist() == [PSNR_CAP_DB] * 3


def basicsr_ssim(img: np.ndarray, img2: np.ndarray) -> float:
    """BasicSR's ``_ssim`` (basicsr/metrics/psnr_ssim.py), line for line: two HxW float64 images in 0..255."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())
    mu1 = cv2.filter2D(img, -1, window)[5:-5, 5:-5]  # valid mode for window size 11
    mu2 = cv2.filter2D(img2, -1, window)[5:-5, 5:-5]
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    sigma1_sq = cv2.filter2D(img**2, -1, window)[5:-5, 5:-5] - mu1_sq
    sigma2_sq = cv2.filter2D(img2**2, -1, window)[5:-5, 5:-5] - mu2_sq
    sigma12 = cv2.filter2D(img * img2, -1, window)[5:-5, 5:-5] - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return float(ssim_map.mean())


def test_ssim_is_basicsrs_ssim_on_y_in_0_to_255():
    target = smooth_colour_fields(3, 40, torch.Generator().manual_seed(2))
    noisy = (target + 0.2 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))).clamp(
        -1, 1
    )
    ours = psnr_ssim(noisy, target, border=2)["ssim"]
    for i in range(3):
        y = [to_luma(x[i : i + 1])[0, 0, 2:-2, 2:-2].double().numpy() * 255 for x in (noisy, target)]
        assert ours[i].item() == pytest.approx(basicsr_ssim(*y), abs=1e-6)
    assert 0.2 < ours.mean() < 0.95  # noise that SSIM sees, not a trivial 0 or 1


def test_border_crop_ignores_errors_in_the_border_only():
    target = smooth_colour_fields(2, 20, torch.Generator().manual_seed(1))
    output = target.clone()
    output[..., :2, :] = -output[..., :2, :]
    output[..., :, -2:] = 1.0
    assert psnr_ssim(output, target)["psnr"].max() < 40
    cropped = psnr_ssim(output, target, border=2)
    assert cropped["psnr"].tolist() == [PSNR_CAP_DB] * 2
    assert torch.allclose(cropped["ssim"], torch.ones(2), atol=1e-5)


def test_hole_psnr_sees_only_the_hole():
    target = torch.zeros(2, 1, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:8, 4:8] = 1
    output = target.clone()
    output[0] = torch.where(mask[0] > 0, 0.2, 0.0)  # error 0.1 in [0, 1], inside the hole only
    output[1] = torch.where(mask[1] > 0, 0.0, 0.6)  # error 0.3, outside the hole only
    scores = psnr_ssim(output, target, mask=mask)
    assert scores["psnr_hole"][0].item() == pytest.approx(20.0, abs=1e-4)
    assert scores["psnr_hole"][1].item() == PSNR_CAP_DB
    assert scores["psnr"][0] > scores["psnr_hole"][0]  # the whole image dilutes the hole's error


def test_coverage_bins_group_by_hole_area():
    mask = torch.zeros(4, 1, 10, 10)
    mask[0, :, :1] = 1  # 10%
    mask[1, :, :3] = 1  # 30%
    mask[2, :, :3, :5] = 1  # 15%
    mask[3] = 1  # 100%: the last bin includes its upper edge
    coverage = hole_coverage(mask)
    assert coverage.tolist() == pytest.approx([0.1, 0.3, 0.15, 1.0])
    bins = coverage_bins(coverage)
    assert [(label, idx.tolist()) for label, idx in bins] == [
        ("10-20pct", [0, 2]),
        ("30-40pct", [1]),
        ("50-100pct", [3]),
    ]
    with pytest.raises(ValueError, match="hole_coverage"):
        coverage_bins(torch.tensor([1.5]))


def test_chroma_histogram_ranks_grey_above_desaturated_above_a_second_real_sample():
    generator = torch.Generator().manual_seed(2)
    real = smooth_colour_fields(64, 32, generator)
    other_real = smooth_colour_fields(64, 32, generator)
    grey = grey_colorize(desaturate(other_real, 0.0)[:, :1])
    slightly_desaturated = desaturate(other_real, 0.7)
    to_grey = colour_histogram_distance(real, grey)
    to_desaturated = colour_histogram_distance(real, slightly_desaturated)
    to_real = colour_histogram_distance(real, other_real)
    assert to_grey > to_desaturated > to_real
    assert to_grey > 0.8 and to_real < 0.1
    assert colour_histogram_distance(real, real) == 0.0


def test_summarize_gives_means_and_95_percent_half_widths():
    psnr = torch.tensor([20.0, 22.0, 24.0, 26.0])
    summary = summarize({"psnr": psnr, "psnr_hole": torch.tensor([1.0, math.nan])})
    assert summary["psnr"] == 23.0
    assert summary["psnr_ci95"] == pytest.approx(1.96 * psnr.std().item() / 2, rel=1e-4)
    # The NaN (an image without a hole) is left out; one value left has no known interval.
    assert summary["psnr_hole"] == 1.0 and summary["psnr_hole_ci95"] == math.inf


def test_bicubic_upscale_has_the_right_shape_and_beats_nearest_on_smooth_images():
    high = smooth_colour_fields(4, 32, torch.Generator().manual_seed(3))
    low = F.avg_pool2d(high, 4)
    upscaled = bicubic_upscale(low, 4)
    assert upscaled.shape == high.shape and upscaled.abs().max() <= 1
    nearest = F.interpolate(low, scale_factor=4, mode="nearest")
    assert psnr_ssim(upscaled, high)["psnr"].mean() > psnr_ssim(nearest, high)["psnr"].mean() + 1


@pytest.mark.parametrize("channels", [1, 3])
def test_telea_keeps_known_pixels_and_fills_a_gradient_hole(channels):
    ramp = torch.linspace(-0.3, 0.3, 32)
    # A smooth gradient, away from 0 so that "left at 0" is a clearly wrong fill.
    image = (0.4 + ramp[None, :] + ramp[:, None] / 4).expand(2, channels, 32, 32).clone()
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 10:18, 12:20] = 1
    mask[1, :, 20:26, 4:12] = 1
    holes = (mask > 0).expand_as(image)
    filled = telea_inpaint(image, mask)
    assert filled.shape == image.shape and filled.dtype == torch.float32
    assert torch.equal(filled[~holes], image[~holes])  # bit-exact outside the hole
    error = (filled - image)[holes].abs().mean()
    left_at_zero = image[holes].abs().mean()
    assert error < left_at_zero / 10  # Telea blurs a ramp by about a pixel's step


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("size", [(7, 5), (1, 6), (4, 1)])
def test_bicubic_upscale_is_torchs_own_bicubic(channels, factor, size):
    """The scored bicubic (ganops.bicubic, NumPy, which the server runs too) against torch's
    F.interpolate (a = -0.75, align_corners=False, edges repeated) called here: float32 rounding apart."""
    generator = torch.Generator().manual_seed(factor * 10 + channels)
    low = torch.rand(2, channels, *size, generator=generator) * 2.2 - 1.1  # a little past [-1, 1]: the clamp
    high = (size[0] * factor, size[1] * factor)
    torchs = F.interpolate(low, size=high, mode="bicubic", align_corners=False).clamp(-1, 1)
    ours = bicubic_upscale(low, factor)
    assert ours.shape == torchs.shape and ours.dtype == torch.float32
    assert (ours - torchs).abs().max().item() < 1e-5
    # As 8-bit pixels, at most one grey level apart (where a value sits on a rounding boundary).
    assert np.abs(to_uint8(ours.numpy()).astype(int) - to_uint8(torchs.numpy())).max() <= 1


def opencv_telea(pixels: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """OpenCV's own Telea on (H, W, C) uint8 RGB or grey pixels, called as its documentation shows:
    a colour image goes in and comes out in OpenCV's BGR order, a grey one as a plain 2-D array."""
    import cv2

    mask = holes.astype(np.uint8) * 255
    if pixels.shape[2] == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        return cv2.cvtColor(cv2.inpaint(bgr, mask, RADIUS, cv2.INPAINT_TELEA), cv2.COLOR_BGR2RGB)
    return cv2.inpaint(np.ascontiguousarray(pixels[..., 0]), mask, RADIUS, cv2.INPAINT_TELEA)[..., None]


@pytest.mark.parametrize("channels", [1, 3])
def test_telea_inpaint_is_opencvs_own_telea_bit_for_bit(channels):
    """The evaluate stage's Telea (the inpaint card's baseline) against cv2.inpaint called here, on
    textured pixels whose channels differ, so that a channel order mixed up on the way shows."""
    rng = np.random.default_rng(channels)
    y, x = np.mgrid[:24, :20]
    ramps = np.stack([x * 11 % 256, y * 9 % 256, 255 - (x + y) * 5 % 256], axis=-1)[..., :channels]
    pixels = (ramps + rng.integers(0, 40, ramps.shape)).clip(0, 255).astype(np.uint8)
    holes = np.zeros((24, 20), bool)
    holes[5:12, 4:11] = True
    holes[15:21, 12:19] = True
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
    filled = telea_inpaint(image, torch.from_numpy(holes)[None, None].float())
    as_pixels = ((filled[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    expected = opencv_telea(pixels, holes)
    assert not np.array_equal(expected, pixels)  # the holes are filled with something new
    assert np.array_equal(as_pixels, expected)


def test_grey_colorize_repeats_the_luma_to_equal_channels():
    luma = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    colour = grey_colorize(luma)
    assert colour.shape == (2, 3, 8, 8)
    assert torch.equal(colour[:, 0], colour[:, 1]) and torch.equal(colour[:, 1], colour[:, 2])
    assert torch.equal(colour[:, :1], luma)


def test_colourfulness_is_zero_for_grey_and_grows_with_saturation():
    from ganops.metrics.restoration import chroma_error, colourfulness

    generator = torch.Generator().manual_seed(3)
    real = torch.rand(8, 3, 16, 16, generator=generator) * 2 - 1
    grey = real.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    half = (real + grey) / 2
    assert torch.allclose(colourfulness(grey), torch.zeros(8), atol=1e-4)
    assert (colourfulness(grey) < colourfulness(half)).all() and (
        colourfulness(half) < colourfulness(real)
    ).all()
    assert (chroma_error(real, real) == 0).all()
    assert (chroma_error(half, real) < chroma_error(grey, real)).all()
