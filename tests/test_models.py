import pytest
import torch

from ganops.errors import ConfigError
from ganops.losses import LOSSES
from ganops.models import ArchSpec, build_discriminator, build_generator
from ganops.models.layers import size_ladder


@pytest.mark.parametrize("size", [16, 28, 32, 33, 48, 50, 64, 100, 128, 255, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_for_every_supported_size(size, channels):
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=size, channels=channels, g_width=4, d_width=4)
    G, D = build_generator(spec), build_discriminator(spec)
    images = G(torch.randn(3, 8))
    assert images.shape == (3, channels, size, size)
    assert images.abs().max() <= 1
    assert D(images).shape == (3,)


def test_mlp_shapes():
    spec = ArchSpec(arch="mlp", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    G, D = build_generator(spec), build_discriminator(spec)
    assert G(torch.randn(3, 8)).shape == (3, 1, 16, 16)
    assert D(torch.zeros(3, 1, 16, 16)).shape == (3,)


@pytest.mark.parametrize("size", [12, 300])
def test_unsupported_size_names_the_sizes_that_work(size):
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=size, channels=1, g_width=4, d_width=4)
    with pytest.raises(ConfigError, match=f"cannot build {size}x{size} images; it supports 16 to 256"):
        build_generator(spec)


@pytest.mark.parametrize(
    ("size", "ladder"),
    [
        (16, [4, 8, 16]),
        (28, [7, 14, 28]),
        (32, [4, 8, 16, 32]),
        (48, [6, 12, 24, 48]),
        (50, [7, 13, 25, 50]),
    ],
)
def test_size_ladder_starts_at_4_to_7_and_doubles_or_doubles_less_one(size, ladder):
    assert size_ladder(size) == ladder


def test_fashion_mnist_at_its_own_size_starts_from_a_7x7_block():
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=28, channels=1, g_width=4, d_width=4)
    G, D = build_generator(spec), build_discriminator(spec)
    assert G.net[0].kernel_size == (7, 7) and D.out.kernel_size == (7, 7)
    assert G.net[0].out_channels == 8  # two doublings: (2w) x 7 x 7 -> (w) x 14 x 14 -> 1 x 28 x 28


def test_dcgan_init_follows_the_paper():
    spec = ArchSpec(arch="dcgan", latent_dim=64, image_size=32, channels=1, g_width=32, d_width=32)
    conv = build_generator(spec).net[0].weight
    assert abs(conv.mean().item()) < 0.002 and abs(conv.std().item() - 0.02) < 0.002


@pytest.mark.parametrize("name", LOSSES.names())
def test_each_loss_moves_d_and_g_the_right_way(name):
    """One gradient step on the logits: D's loss pushes real up and fake down, G's pushes fake up.

    Logits start at 0.5, strictly between every loss's real and fake targets."""
    loss = LOSSES.get(name)
    real = torch.full((16,), 0.5, requires_grad=True)
    fake = torch.full((16,), 0.5, requires_grad=True)
    loss.d(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake_for_g = torch.full((16,), 0.5, requires_grad=True)
    paired_real = torch.full((16,), 0.5) if loss.relativistic else None
    loss.g(fake_for_g, paired_real).backward()
    assert (fake_for_g.grad < 0).all()
