"""Metric sanity: coverage, precision/recall, bootstrap, the feature cache, and fid_inception's branch."""

import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from ganops.config import parse_params
from ganops.data.prepared import PreparedSplit, fit_to_size, to_unit_range
from ganops.files import sha256_file
from ganops.metrics import METRICS, inception
from ganops.metrics.cache import cache_key, cached_features
from ganops.metrics.classes import class_stats
from ganops.metrics.evaluator import train_evaluator
from ganops.metrics.features import DomainFeaturesAndLogits, Features, extract
from ganops.metrics.fid import fid, fid_bootstrap
from ganops.metrics.prdc import prdc
from ganops.stages import Layout
from ganops.stages.evaluate import run as evaluate
from ganops.stages.evaluator import run as evaluator_stage
from ganops.stages.prepare import run as prepare
from ganops.training.loop import TrainPaths, train

from conftest import fabricate_images, tiny_params


def split(n, seed):
    images, labels = fabricate_images(n, np.random.default_rng(seed))
    return PreparedSplit(fit_to_size(images[:, None], 16), labels.astype(np.int64))


@pytest.fixture(scope="module")
def domain():
    params = parse_params(tiny_params("unused")).evaluator
    model, _ = train_evaluator(params, split(1024, 1), split(256, 2), seed=0, device=torch.device("cpu"))
    return DomainFeaturesAndLogits(model)


def feats(net, data):
    return extract(net, to_unit_range(torch.from_numpy(data.images)).split(128), "cpu")


def test_a_generator_of_one_class_has_low_coverage_and_high_kl(domain):
    real = split(512, 3)
    one_class = PreparedSplit(real.images[real.labels == 4], None)
    collapsed = class_stats(feats(domain, one_class).logits, torch.from_numpy(real.labels), 10)
    healthy = class_stats(feats(domain, split(512, 4)).logits, torch.from_numpy(real.labels), 10)
    assert collapsed["class_coverage"] <= 0.2 and healthy["class_coverage"] == 1.0
    assert collapsed["class_kl"] > 1.0 > 10 * healthy["class_kl"]


def test_precision_recall_density_coverage(domain):
    reference, other = feats(domain, split(512, 3)).features, feats(domain, split(512, 4)).features
    real_vs_real = prdc(reference, other, k=5)
    assert min(real_vs_real.values()) > 0.6
    one_class = feats(domain, PreparedSplit(split(512, 4).images[split(512, 4).labels == 2], None)).features
    collapsed = prdc(reference, one_class, k=5)
    assert collapsed["recall"] < 0.5 * real_vs_real["recall"]
    assert collapsed["coverage"] < 0.5 * real_vs_real["coverage"]


def test_bootstrap_interval_brackets_fid(domain):
    reference, candidate = feats(domain, split(512, 3)).features, feats(domain, split(256, 5)).features
    low, high = fid_bootstrap(reference, candidate, resamples=30, seed=0)
    assert low < high and low <= fid(reference, candidate) <= high  # features near the floor


VARIANCES = 1 / torch.arange(1.0, 9.0, dtype=torch.float64)  # 8 features, variances 1, 1/2, ..., 1/8


def gaussian_features(n: int, shift: float, scale: float, generator: torch.Generator) -> torch.Tensor:
    """n draws of N(shift * e1, scale^2 * diag(VARIANCES)); shift 0, scale 1: the real distribution."""
    x = torch.randn(n, len(VARIANCES), generator=generator, dtype=torch.float64) * scale * VARIANCES.sqrt()
    x[:, 0] += shift
    return x


@pytest.fixture
def one_thread():
    """Tiny matrices, hundreds of times: two threads on a busy 2-core machine are 100x slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def binomial_range(trials: int, p: float, tail: float = 1e-3) -> tuple[int, int]:
    """The counts k in [lo, hi] that Binomial(trials, p) stays within but for ``tail`` (half each side)."""
    pmf = [math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(trials + 1)]
    cdf = np.cumsum(pmf)
    lo = int(np.searchsorted(cdf, tail / 2, side="right"))  # P(X < lo) <= tail / 2
    hi = int(np.searchsorted(cdf, 1 - tail / 2))  # P(X > hi) <= tail / 2
    return lo, hi


@pytest.mark.parametrize(
    ("shift", "scale", "over_covers"),
    [(0.0, 1.0, True), (1.0, 1.2, False)],
    ids=["generator-at-the-floor", "clearly-worse-generator"],
)
def test_bootstrap_interval_covers_the_population_fid_at_its_level(shift, scale, over_covers, one_thread):
    # Independent real (256) and generated (128) sets from known Gaussians, 50 resamples as in params.yaml;
    # the population FID is exact: shift^2 + (1 - scale)^2 * sum(VARIANCES).
    population = shift**2 + (1 - scale) ** 2 * float(VARIANCES.sum())
    generator = torch.Generator().manual_seed(7)
    trials, covered, bracketed = 200, 0, 0
    for trial in range(trials):
        real = gaussian_features(256, 0.0, 1.0, generator)
        fake = gaussian_features(128, shift, scale, generator)
        low, high = fid_bootstrap(real, fake, resamples=50, seed=trial)
        covered += low <= population <= high
        bracketed += low <= fid(real, fake) <= high
    lo, hi = binomial_range(trials, 0.95)
    assert bracketed == trials, f"{trials - bracketed} of {trials} intervals miss their own point FID"
    # At the floor the population FID (0) lies below every point FID by their bias, which there exceeds
    # the spread: an interval that holds the point FID holds 0 more often than 95%.
    assert lo <= covered <= (trials if over_covers else hi), (
        f"{covered} of {trials} intervals hold the population FID {population:.4g}; 95% gives {lo}..{hi}"
    )


def test_cached_real_features_are_keyed_by_content(tiny_idx, tmp_path):
    layout = Layout(tmp_path)
    prepare(parse_params(tiny_params(tiny_idx)), layout)
    key = cache_key(layout.prepared, "test", 100, "evaluator-a")
    assert key != cache_key(layout.prepared, "test", 101, "evaluator-a")
    assert key != cache_key(layout.prepared, "test", 100, "evaluator-b")
    assert key != cache_key(layout.prepared, "train", 100, "evaluator-a")
    calls = []

    def compute():
        calls.append(1)
        return Features(torch.randn(4, 3), torch.randn(4, 2))

    first = cached_features(tmp_path / "cache", key, compute)
    second = cached_features(tmp_path / "cache", key, compute)
    assert len(calls) == 1 and torch.equal(first.features, second.features)
    # Other data (a different size, so other bytes) gets another key.
    prepare(parse_params(tiny_params(tiny_idx, **{"data.image_size": 32})), layout)
    assert cache_key(layout.prepared, "test", 100, "evaluator-a") != key


class TinyInception(nn.Module):
    """Stands in for Inception-v3: uint8 RGB (N, 3, H, W) -> (N, 6) features, loaded from a file."""

    def __init__(self, weights):
        super().__init__()
        self.proj = nn.Linear(3, 6)
        self.load_state_dict(torch.load(weights, weights_only=True))

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        return (self.proj(x.float().mean(dim=(2, 3)) / 255),)


@pytest.fixture(scope="module")
def trained(tiny_idx, tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    params = parse_params(tiny_params(tiny_idx, **{"train.max_steps": 4}))
    layout = Layout(root)
    prepare(params, layout)
    evaluator_stage(params, layout)
    paths = TrainPaths(
        prepared=layout.prepared,
        generator=layout.generator,
        checkpoints=layout.checkpoints,
        samples=layout.samples,
        history=layout.train_history,
    )
    train(params, paths)
    return tiny_idx, root


def test_fid_inception_uses_local_weights_through_the_builder(trained, tmp_path, monkeypatch):
    tiny_idx, root = trained
    weights = tmp_path / "inception.pth"
    torch.manual_seed(0)
    torch.save({f"proj.{k}": v for k, v in nn.Linear(3, 6).state_dict().items()}, weights)
    monkeypatch.setattr(inception, "SHA256_PREFIX", sha256_file(weights)[:8])  # as if it were published
    built = []

    def builder(path):
        built.append(path)
        return TinyInception(path)

    params = parse_params(tiny_params(tiny_idx, **{"evaluate.inception_weights": str(weights)}))
    report = evaluate(params, Layout(root), inception_builder=builder)
    assert built == [weights]
    assert report["fid_inception"] > 0 and report["counts"]["fid_inception"] == 256
    assert report["notes"] == []
    for name in (
        "kid_domain",
        "is_domain",
        "precision_domain",
        "coverage_domain",
        "class_coverage",
        "class_kl",
    ):
        assert name in report and name in report["floor"]
    assert report["fid_domain_ci95_low"] < report["fid_domain_ci95_high"]


def test_fid_inception_is_omitted_with_a_notice_without_weights(trained, tmp_path, monkeypatch):
    tiny_idx, root = trained
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    params = parse_params(tiny_params(tiny_idx))
    report = evaluate(params, Layout(root), inception_builder=lambda path: pytest.fail("must not be built"))
    assert "fid_inception" not in report
    assert len(report["notes"]) == 1 and "fid_inception omitted" in report["notes"][0]


def test_a_test_split_too_small_for_the_floor_is_noted_with_its_fix(trained, tmp_path, caplog, monkeypatch):
    tiny_idx, root = trained
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))  # no fid_inception
    project = tmp_path / "small-test"
    shutil.copytree(root, project)  # the trained generator and evaluator (feature_dim 16: 32 images needed)
    for max_test, noted in ((24, True), (32, False)):
        params = parse_params(tiny_params(tiny_idx, **{"data.max_test": max_test}))
        prepare(params, Layout(project))
        caplog.clear()
        report = evaluate(params, Layout(project))
        assert report["counts"]["reference"] == max_test
        floor_notes = [n for n in report["notes"] if n.startswith("floor unreliable")]
        warned = [
            r.message for r in caplog.records if r.levelname == "WARNING" and "floor unreliable" in r.message
        ]
        assert bool(floor_notes) == bool(warned) == noted, report["notes"]
        if noted:
            assert "has 24 images, fewer than the 32" in floor_notes[0]
            assert "more images" in floor_notes[0] and "data.test_fraction" in floor_notes[0]


class Payload:
    def __reduce__(self):  # what unpickling would run
        return (print, ("unpickled code ran",))


def test_inception_weights_that_are_not_the_published_file_are_never_loaded(tmp_path, monkeypatch):
    other = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(2)}, other)
    path, reason = inception.find_weights(str(other))
    assert path is None and "not the published" in reason and "sha256" in reason

    rigged = tmp_path / "rigged.pth"
    torch.save({"w": Payload()}, rigged)
    monkeypatch.setattr(inception, "SHA256_PREFIX", sha256_file(rigged)[:8])  # even with a matching hash
    path, reason = inception.find_weights(str(rigged))
    assert path is None and "not a plain weights file" in reason


def test_every_metric_name_is_valid_in_params_and_unknown_ones_list_them():
    assert {"fid", "kid", "is", "prdc", "classes", "fid_bootstrap", "fid_inception"} == set(METRICS.names())
    with pytest.raises(Exception, match="evaluate.metrics.*must be one of"):
        parse_params({"evaluate": {"metrics": ["fid", "sharpness"]}})
