"""U-Net generator and PatchGAN discriminator: the restoration tasks' networks (pix2pix, Isola et al., 2017).

Both are fully convolutional: the U-Net takes any height and width that are a multiple of
2**depth (servers pad to it), the PatchGAN returns a map of logits, one per overlapping patch. A
small head turns the U-Net into a task's generator (the task's card names it: ganops.cards), so
that the ONNX graph holds the whole contract (what goes in, what comes out) and a server needs
nothing else:

- fill (inpaint): in = image x (1 - mask) and the mask (1 = hole); the U-Net's output fills the hole
  and the known pixels pass through unchanged;
- upscale (superres): in = the low-resolution image; the U-Net works at its size and a sub-pixel convolution
  (pixel shuffle, Shi et al., 2016) turns its features into the detail added to the bicubic upscale
  by ``scale`` (a residual, so an untrained network starts near the bicubic baseline). At the
  input's size the U-Net costs 1/scale**2 of what it would at the output's;
- direct (translate): in = the input domain's image, out = tanh of the U-Net: pix2pix itself;
- chroma (colorize): in = the luminance (colour.luminance); the U-Net predicts the chroma and the output
  keeps the input's luminance exactly.

D sees the output beside the input (the task's ``Pair.shown``), so its input has the image's
channels plus the model input's (the card's ``input_channels``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganops import colour
from ganops.cards import card, image_tasks
from ganops.errors import ConfigError
from ganops.models import ARCHITECTURES, ArchSpec
from ganops.models.layers import d_activation, sn


class DilatedBlock(nn.Module):
    """A residual 3x3 convolution of ``dilation``: context from further away at the cost of one layer."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UNet(nn.Module):
    """Encoder of ``depth`` stride-2 convolutions, ``dilated`` residual blocks of dilation 1, 2, 4, ...
    at the bottleneck, decoder of transposed convolutions, skips between.

    The dilated blocks widen what each output pixel sees where it is cheap, at 1/2**depth of the
    input's size: a hole wider than the plain U-Net's view has no context to be filled from
    (``receptive_field`` measures it; docs/restoration.md)."""

    def __init__(self, cin: int, cout: int, width: int, depth: int, dilated: int = 0) -> None:
        super().__init__()
        widths = [width * 2 ** min(level, 3) for level in range(depth + 1)]  # capped at 8 x width
        self.stem = nn.Sequential(nn.Conv2d(cin, widths[0], 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.LeakyReLU(0.2, inplace=True),
            )
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.Sequential(
                # the deepest level has no skip to concatenate yet
                nn.ConvTranspose2d(
                    widths[i + 1] * (1 if i == depth - 1 else 2), widths[i], 4, 2, 1, bias=False
                ),
                nn.BatchNorm2d(widths[i]),
                nn.ReLU(inplace=True),
            )
            for i in reversed(range(depth))
        )
        self.bottleneck = nn.Sequential(*(DilatedBlock(widths[-1], 2**k) for k in range(dilated)))
        self.head = nn.Conv2d(2 * widths[0], cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = self.bottleneck(skips.pop())
        for block in self.up:
            h = torch.cat([block(h), skips.pop()], dim=1)
        return self.head(h)


HEADS: dict[str, type[nn.Module]] = {}  # by the name a card gives its head


def head(name: str):
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        HEADS[name] = cls
        return cls

    return add


def model_input_channels(spec: ArchSpec) -> int:
    return card(spec.task).image_to_image.input_channels(spec.channels)


@head("fill")
class Inpainter(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.unet = UNet(model_input_channels(spec), spec.channels, spec.g_width, spec.depth, spec.dilated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image, mask = x[:, :-1], x[:, -1:]
        fill = torch.tanh(self.unet(x))
        return image * (1 - mask) + fill * mask


@head("upscale")
class Upscaler(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.scale = spec.scale
        self.unet = UNet(
            model_input_channels(spec), spec.channels * spec.scale**2, spec.g_width, spec.depth, spec.dilated
        )
        self.to_output_size = nn.PixelShuffle(spec.scale)  # (C x scale**2, H, W) -> (C, scale x H, scale x W)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return (up + self.to_output_size(self.unet(low))).clamp(-1, 1)


@head("chroma")
class Colorizer(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.unet = UNet(model_input_channels(spec), 2, spec.g_width, spec.depth, spec.dilated)

    def forward(self, luma: torch.Tensor) -> torch.Tensor:
        return colour.to_rgb(luma, torch.tanh(self.unet(luma))).clamp(-1, 1)


@head("direct")
class Translator(nn.Module):
    """pix2pix's generator: the U-Net maps the input domain's image to the output domain's."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.unet = UNet(model_input_channels(spec), spec.channels, spec.g_width, spec.depth, spec.dilated)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.unet(x))


def receptive_field(G: nn.Module, spec: ArchSpec, size: int = 256) -> int:
    """How far (px, at G's input) the centre output pixel sees: the side of the square of input
    pixels whose gradient reaches it, measured on a random ``size`` x ``size`` input (a mask of
    values in (0, 1) lets an inpainter's fill through) in eval mode."""
    channels = model_input_channels(spec)
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0)).requires_grad_()
    was_training = G.training
    G.eval()
    try:
        G(x)[0, :, size * spec.scale // 2, size * spec.scale // 2].sum().backward()
    finally:
        G.train(was_training)
    reached = x.grad.abs().sum(dim=(0, 1)) > 0
    rows, columns = reached.any(dim=1).nonzero(), reached.any(dim=0).nonzero()
    return int(max(rows.max() - rows.min(), columns.max() - columns.min())) + 1


class PatchGAN(nn.Module):
    """pix2pix's N-layer discriminator: ``patch_depth`` stride-2 convolutions, then two stride-1 ones."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        cin = spec.channels + model_input_channels(spec)  # the output beside the input, at the output's size
        norm = not spec.spectral_norm  # spectral norm replaces batch norm, as in the sampling Ds
        width = spec.d_width
        layers: list[nn.Module] = [
            sn(nn.Conv2d(cin, width, 4, 2, 1), spec.spectral_norm),
            *d_activation(spec.d_dropout),
        ]
        for level in range(1, spec.patch_depth + 1):
            wider = spec.d_width * 2 ** min(level, 3)
            stride = 2 if level < spec.patch_depth else 1
            layers += [sn(nn.Conv2d(width, wider, 4, stride, 1, bias=not norm), spec.spectral_norm)]
            layers += [nn.BatchNorm2d(wider)] if norm else []
            layers += d_activation(spec.d_dropout)
            width = wider
        layers.append(sn(nn.Conv2d(width, 1, 4, 1, 1), spec.spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


@ARCHITECTURES.register("unet")
class UNetArchitecture:
    """Image to image: a task's U-Net generator and the PatchGAN. Selected by ``task``, not ``model.arch``."""

    conditional = False

    def supports(self, image_size: int) -> bool:
        return image_size >= 16

    def sizes(self) -> str:
        return "16 and up, a multiple of 2**restore.depth"

    def generator(self, spec: ArchSpec) -> nn.Module:
        facts = card(spec.task).image_to_image
        if facts is None:
            raise ConfigError(
                f"model.arch: unet is the network of the image-to-image tasks ({', '.join(image_tasks())}); "
                f"set task to one of them, or model.arch to a sampling network for task {spec.task}"
            )
        return HEADS[facts.head](spec)

    def discriminator(self, spec: ArchSpec) -> nn.Module:
        return PatchGAN(spec)
