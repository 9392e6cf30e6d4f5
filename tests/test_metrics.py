import numpy as np
import pytest
import torch

from ganops.config import parse_params
from ganops.data.prepared import PreparedSplit, fit_to_size, to_unit_range
from ganops.metrics.evaluator import DomainFeatures, accuracy_on, train_evaluator
from ganops.metrics.fid import DomainMetrics

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


def test_fid_real_vs_real_is_near_floor_and_noise_is_far_above(evaluator):
    metrics = DomainMetrics(DomainFeatures(evaluator[0]), kid_subsets=5, kid_subset_size=100, device="cpu")
    metrics.add_reference(batches(split(512, 3).images))
    floor = metrics.score(batches(split(512, 4).images))
    again = metrics.score(batches(split(512, 5).images))
    noise = metrics.score(torch.rand(512, 1, 16, 16).mul(2).sub(1).split(128))
    assert again["fid"] < 2 * floor["fid"] + 1e-3
    assert noise["fid"] > 10 * floor["fid"]
    assert noise["kid"] > 10 * abs(floor["kid"])


def test_reference_features_survive_between_scores(evaluator):
    metrics = DomainMetrics(DomainFeatures(evaluator[0]), kid_subsets=5, kid_subset_size=100, device="cpu")
    metrics.add_reference(batches(split(256, 3).images))
    candidate = split(256, 4).images
    torch.manual_seed(0)
    first = metrics.score(batches(candidate))
    torch.manual_seed(0)
    second = metrics.score(batches(candidate))
    assert first == second
