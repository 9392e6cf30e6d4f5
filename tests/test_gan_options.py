"""Networks, losses and regularizers beyond the defaults: shapes, directions, determinism."""

import pytest
import torch

from ganops.errors import ConfigError
from ganops.losses import LOSSES, clip_weights, gradient_penalty, zero_centred_penalty
from ganops.models import ArchSpec, build_discriminator, build_generator
from ganops.models.io import load_generator
from ganops.models.layers import labels_for
from ganops.runtime import Draws
from ganops.training.augment import diff_augment, hflip

SIZES = [16, 28, 32, 50, 64, 128, 256]


def spec(arch="dcgan", size=32, channels=1, **extra):
    return ArchSpec(
        arch=arch, latent_dim=8, image_size=size, channels=channels, g_width=4, d_width=4, **extra
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_shapes_for_every_supported_size(size, channels):
    s = spec("resnet", size, channels, spectral_norm=True)
    G, D = build_generator(s), build_discriminator(s)
    images = G(torch.randn(2, 8))
    assert images.shape == (2, channels, size, size) and images.abs().max() <= 1
    assert D(images).shape == (2,)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("size", [16, 28, 64])
def test_conditional_variants_take_labels_and_sample_without_them(arch, size):
    s = spec(arch, size, num_classes=5, spectral_norm=True, d_dropout=0.2)
    G, D = build_generator(s), build_discriminator(s)
    z, y = torch.randn(6, 8), torch.arange(6) % 5
    assert G(z, y).shape == (6, 1, size, size)
    assert D(G(z, y), y).shape == (6,)
    G.eval()
    assert torch.equal(G(z), G(z, labels_for(G, z)))  # G(z) draws its labels from z


def test_conditional_labels_follow_the_class_prior():
    G = build_generator(spec(num_classes=4))
    G.cond.classes.set_prior(torch.tensor([70, 10, 10, 10]))
    labels = labels_for(G, torch.randn(20_000, 8, generator=torch.Generator().manual_seed(0)))
    shares = torch.bincount(labels, minlength=4).double() / len(labels)
    assert torch.allclose(shares, torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64), atol=0.02)


def test_conditional_discriminator_needs_labels():
    D = build_discriminator(spec(num_classes=3))
    with pytest.raises(ValueError, match="needs labels"):
        D(torch.zeros(2, 1, 32, 32))


def test_mlp_has_no_conditional_variant_and_says_which_do():
    with pytest.raises(ConfigError, match="mlp has no class-conditional variant; use one of dcgan, resnet"):
        build_generator(spec("mlp", num_classes=3))


def test_spectral_norm_bounds_every_d_layer():
    torch.manual_seed(0)  # the power iteration's start: not whatever the tests before left behind
    D = build_discriminator(spec(spectral_norm=True))
    D.train()
    for _ in range(30):  # power iterations converge during training forward passes
        D(torch.randn(4, 1, 32, 32))
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert sigma < 1.05


def test_dropout_in_d_is_active_in_training_only():
    D = build_discriminator(spec(d_dropout=0.5))
    x = torch.randn(4, 1, 32, 32)
    D.eval()
    assert torch.equal(D(x), D(x))
    D.train()
    assert not torch.equal(D(x), D(x))


def test_generator_file_without_new_fields_still_loads(tmp_path):
    old = spec()
    G = build_generator(old)
    arch = {k: v for k, v in old.to_dict().items() if k not in ("num_classes", "spectral_norm", "d_dropout")}
    torch.save({"arch": arch, "state_dict": G.state_dict(), "step": 1, "fingerprint": "x"}, tmp_path / "g.pt")
    loaded, loaded_spec = load_generator(tmp_path / "g.pt")
    assert loaded_spec == old
    z = torch.randn(3, 8)
    assert torch.equal(loaded(z), G.eval()(z))


def test_label_smoothing_lowers_the_real_target():
    loss = LOSSES.get("non_saturating")
    real = torch.full((8,), 5.0, requires_grad=True)  # D is very sure the reals are real
    loss.d(real, torch.zeros(8), 0.2).backward()
    assert (real.grad > 0).all()  # smoothed target 0.8 < sigmoid(5): pushed back down
    assert loss.smoothable and not LOSSES.get("hinge").smoothable


def test_wasserstein_losses_declare_their_lipschitz_device():
    assert LOSSES.get("wgan").weight_clip and not LOSSES.get("wgan").gradient_penalty
    assert LOSSES.get("wgan_gp").gradient_penalty and not LOSSES.get("wgan_gp").weight_clip


def test_weight_clipping_bounds_every_parameter():
    D = build_discriminator(spec())
    clip_weights(D, 0.01)
    assert max(p.abs().max().item() for p in D.parameters()) <= 0.01


class Linear(torch.nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((1, 4), scale))

    def forward(self, x, y=None):
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_pulls_others_to_one():
    real, fake = torch.randn(8, 1, 2, 2), torch.randn(8, 1, 2, 2)
    rng = Draws(torch.Generator().manual_seed(0))
    assert gradient_penalty(Linear(0.5), real, fake, None, rng).item() < 1e-10  # ||w|| = 1
    steep = Linear(2.0)  # ||w|| = 4
    penalty = gradient_penalty(steep, real, fake, None, rng)
    assert abs(penalty.item() - 9.0) < 1e-4
    penalty.backward()
    assert (steep.w.grad > 0).all()  # descending shrinks the weights towards unit gradient


def test_zero_centred_penalty_is_the_squared_gradient_norm_at_its_images():
    images = torch.randn(5, 1, 2, 2, requires_grad=True)
    D = Linear(3.0)
    assert abs(zero_centred_penalty(D(images), images).item() - 36.0) < 1e-4  # ||w||^2 = 4 * 9


def test_relativistic_loss_compares_each_fake_with_its_paired_real():
    loss = LOSSES.get("relativistic")
    real, fake = torch.tensor([2.0, 1.0]), torch.tensor([0.0, 0.0])
    softplus = torch.nn.functional.softplus
    # D: softplus(fake - real) per pair, G: softplus(real - fake) per pair, each averaged
    assert torch.isclose(
        loss.d(real, fake, 0.0), (softplus(torch.tensor(-2.0)) + softplus(torch.tensor(-1.0))) / 2
    )
    assert torch.isclose(loss.g(fake, real), (softplus(torch.tensor(2.0)) + softplus(torch.tensor(1.0))) / 2)
    assert torch.isclose(loss.d(real + 5, fake + 5, 0.0), loss.d(real, fake, 0.0))  # only differences count
    paired = torch.tensor([0.0, 1.0])  # the same fakes in another order: same means, other pairs
    assert not torch.isclose(loss.d(real, paired, 0.0), loss.d(real, paired.flip(0), 0.0))
    assert loss.relativistic and not LOSSES.get("non_saturating").relativistic


def test_augmentations_are_replayable_from_their_generator():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    policy = ["color", "translation", "cutout"]
    first = diff_augment(x, policy, Draws(torch.Generator().manual_seed(3)))
    again = diff_augment(x, policy, Draws(torch.Generator().manual_seed(3)))
    other = diff_augment(x, policy, Draws(torch.Generator().manual_seed(4)))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == x.shape
    assert torch.equal(diff_augment(x, [], Draws(torch.Generator())), x)


def test_diff_augment_lets_gradients_through_to_g():
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    diff_augment(
        x, ["color", "translation", "cutout"], Draws(torch.Generator().manual_seed(0))
    ).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_hflip_flips_about_half():
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).repeat(200, 1, 1, 1)
    flipped = hflip(x, Draws(torch.Generator().manual_seed(0)))
    n = sum(torch.equal(f, x[0].flip(2)) for f in flipped)
    assert 70 < n < 130


def config_error(raw):
    from ganops.config import parse_params

    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    return str(err.value)


def test_params_reject_a_conditional_mlp_and_smoothing_with_hinge():
    assert (
        "model.conditional: mlp has no class-conditional variant; use one of dcgan, resnet"
        in config_error({"model": {"arch": "mlp", "conditional": True}})
    )
    message = config_error({"train": {"loss": "hinge", "label_smoothing": 0.1}})
    assert (
        "train.label_smoothing: applies to the cross-entropy losses (minimax, non_saturating), not hinge"
        in message
    )
    assert "train.augment.0" in config_error({"train": {"augment": ["mixup"]}})


def test_unknown_arch_and_loss_list_every_valid_name():
    assert "dcgan, mlp, resnet" in config_error({"model": {"arch": "stylegan9"}})
    assert "hinge, least_squares, minimax, non_saturating, relativistic, wgan, wgan_gp" in config_error(
        {"train": {"loss": "x"}}
    )
