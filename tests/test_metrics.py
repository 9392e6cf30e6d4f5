import numpy as np
import pytest
import torch

from ganops.config import parse_params
from ganops.data.prepared import PreparedSplit, fit_to_size, to_unit_range
from ganops.metrics.evaluator import accuracy_on, train_evaluator
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.metrics.fid import fid, kid

from conftest import fabricate_images, tiny_params


def split(n: int, seed: int) -> PreparedSplit:
    images, labels = fabricate_images(n, np.random.default_rng(seed))
    return PreparedSplit(fit_to_size(images[:, None], 16), labels.astype(np.int64))


def batches(images: np.ndarray, size: int = 128):
    for start in range(0, len(images), size):
        yield to_unit_range(torch.from_numpy(images[start : start + size]))


@pytest.fixture(scope="module")
def evaluator():
    params = parse_params(tiny_params("unused")).evaluator
    model, accuracy = train_evaluator(
        params, split(1024, 1), split(256, 2), seed=0, device=torch.device("cpu")
    )
    return model, accuracy


def test_evaluator_learns_the_classes(evaluator):
    model, accuracy = evaluator
    assert accuracy > 0.9
    assert accuracy == accuracy_on(model, split(256, 2), torch.device("cpu"))


def features(model, images):
    return extract(DomainFeaturesAndLogits(model), batches(images), "cpu").features


def test_fid_real_vs_real_is_near_floor_and_noise_is_far_above(evaluator):
    model = evaluator[0]
    reference = features(model, split(512, 3).images)
    floor = fid(reference, features(model, split(512, 4).images))
    again = fid(reference, features(model, split(512, 5).images))
    noise_images = torch.rand(512, 1, 16, 16).mul(2).sub(1)
    noise = extract(DomainFeaturesAndLogits(model), noise_images.split(128), "cpu").features
    assert again < 2 * floor + 1e-3
    assert fid(reference, noise) > 10 * floor
    floor_kid, _ = kid(reference, features(model, split(512, 4).images), 5, 100, seed=0)
    noise_kid, _ = kid(reference, noise, 5, 100, seed=0)
    assert noise_kid > 10 * abs(floor_kid)


def test_kid_is_reproducible_from_its_seed(evaluator):
    model = evaluator[0]
    reference, candidate = features(model, split(256, 3).images), features(model, split(256, 4).images)
    assert kid(reference, candidate, 5, 100, seed=0) == kid(reference, candidate, 5, 100, seed=0)
