"""Every option reaches a served model: architectures x conditioning x channels x sizes through the
real stages (train -> evaluate -> export fp32 + fp16 -> register in MLflow -> one /v1/generate), and
every loss and regularizer through a few training steps.

The six cases are a pairwise cover of arch {mlp, dcgan, resnet} x conditional {off, on} x channels
{1, 3} x size {28, 64} (mlp has no conditional variant): every pair of values of any two factors
appears in some case, so an option that breaks only next to another one still shows up.
"""

from __future__ import annotations

import json
import logging
import shutil

import httpx
import numpy as np
import onnx
import pytest
import torch

from ganops.config import parse_params
from ganops.export.fp16 import MAX_GREY_DIFF, MEAN_GREY_DIFF
from ganops.losses import LOSSES
from ganops.models.io import load_generator, save_generator
from ganops.serve.app import ServeSettings, create_app
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from ganops.stages import Layout
from ganops.stages import evaluate as evaluate_stage
from ganops.stages import evaluator as evaluator_stage
from ganops.stages import export as export_stage
from ganops.stages import prepare as prepare_stage
from ganops.stages import register as register_stage
from ganops.stages import train as train_stage
from ganops.stages.train import train_paths
from ganops.training.loop import train
from serve_helpers import uvicorn_thread

from conftest import tiny_params

pytestmark = pytest.mark.slow

# (arch, conditional, channels, image size): a pairwise cover, checked by test_the_cases_cover_every_pair.
CASES = [
    ("mlp", False, 1, 28),
    ("mlp", False, 3, 64),
    ("dcgan", True, 1, 64),
    ("dcgan", False, 3, 28),
    ("resnet", True, 3, 28),
    ("resnet", False, 1, 64),
]
FACTORS = {
    "arch": ("mlp", "dcgan", "resnet"),
    "conditional": (False, True),
    "channels": (1, 3),
    "size": (28, 64),  # 28: an odd step of the size ladder (7 -> 14 -> 28)
}
G_LATENT = 8  # tiny_params' model.latent_dim
FAST_EVALUATE = {"metrics": ["fid", "kid", "classes"], "kid_subsets": 4}
# Only that the evaluate stage runs on every shape matters here, not how good its feature net is.
FAST_EVALUATOR = {"epochs": 1, "min_steps": 0}


def case_params(data_root, arch, conditional, channels, size, **overrides) -> dict:
    params = tiny_params(
        data_root,
        **{"data.image_size": size, "data.channels": channels, "train.max_steps": 4, "train.batch_size": 16},
    )
    params["data"].update(max_train=128, max_test=128)
    params["model"].update(arch=arch, conditional=conditional)
    params["evaluator"].update(FAST_EVALUATOR)
    params["evaluate"].update(FAST_EVALUATE)
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        params[section][key] = value
    return params


@pytest.fixture(scope="module")
def datasets(tiny_idx, tmp_path_factory):
    """Prepared data and a trained evaluator per (channels, size), made on first use and shared."""
    made = {}

    def get(channels: int, size: int) -> Layout:
        if (channels, size) not in made:
            layout = Layout(tmp_path_factory.mktemp(f"data-{channels}x{size}"))
            params = parse_params(case_params(tiny_idx, "dcgan", False, channels, size))
            prepare_stage.run(params, layout)
            evaluator_stage.run(params, layout)
            made[channels, size] = layout
        return made[channels, size]

    return get


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """One real MLflow store (SQLite + local artifacts) for the module's registrations."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.chdir(root)  # the default artifact location (./mlruns) lands in tmp
        yield root


def workspace(shared: Layout, root) -> Layout:
    """A project root that reuses the shared prepared data and evaluator, as DVC would."""
    layout = Layout(root)
    layout.prepared.parent.mkdir(parents=True)
    layout.prepared.symlink_to(shared.prepared.resolve(), target_is_directory=True)
    layout.evaluator.parent.mkdir(parents=True)
    shutil.copy(shared.evaluator, layout.evaluator)
    return layout


def test_the_cases_cover_every_pair():
    names = list(FACTORS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for va in FACTORS[a]:
                for vb in FACTORS[b]:
                    if {a, b} == {"arch", "conditional"} and (va, vb) in (("mlp", True), (True, "mlp")):
                        continue  # mlp has no conditional variant (test_gan_options checks it says so)
                    seen = [c for c in CASES if c[names.index(a)] == va and c[names.index(b)] == vb]
                    assert seen, f"no case has {a}={va} with {b}={vb}"


@pytest.mark.parametrize(
    "arch,conditional,channels,size",
    CASES,
    ids=[f"{a}-{'cond' if c else 'uncond'}-{ch}x{s}" for a, c, ch, s in CASES],
)
def test_every_architecture_reaches_a_served_model(
    arch, conditional, channels, size, datasets, tracking, tiny_idx, tmp_path
):
    layout = workspace(datasets(channels, size), tmp_path)
    name = f"matrix-{arch}-{int(conditional)}-{channels}-{size}"
    params = parse_params(
        case_params(tiny_idx, arch, conditional, channels, size, **{"register.model_name": name})
    )

    trained = train_stage.run(params, layout)
    assert trained["steps"] == 4
    metrics = evaluate_stage.run(params, layout)
    assert np.isfinite(metrics["fid_domain"])

    info = export_stage.run(params, layout)
    measured = json.loads(layout.timings("export").read_text())  # this machine's ONNX Runtime numbers
    assert info["parity"]["passed"] and measured["parity_max_abs_diff"] <= params.export.parity_tolerance
    assert info["image_shape"] == [channels, size, size] and info["arch"]["arch"] == arch
    fp16 = info["fp16"]
    assert fp16["written"], (
        fp16
    )  # every architecture converts; trained-a-little models are well within bounds
    half = onnx.load(str(layout.fp16_onnx))
    onnx.checker.check_model(half, full_check=True)
    assert measured["fp16_parity"]["max_grey_diff"] <= MAX_GREY_DIFF
    assert measured["fp16_parity"]["mean_grey_diff"] <= MEAN_GREY_DIFF
    assert json.loads(layout.onnx_sidecar.read_text()) == info

    record = register_stage.run(params, layout)
    model = resolve(f"models:/{name}/{record['version']}")
    assert model.sha256 == info["sha256"]
    session = GeneratorSession(model, "cpu")
    assert session.info.image_shape == (channels, size, size)
    assert bool(session.info.class_cdf) == conditional
    with uvicorn_thread(create_app(session, ServeSettings(max_n=4, max_steps=4))) as url:
        body = {"n": 2, "seed": 3, "format": "npy", **({"class": 1} if conditional else {})}
        served = httpx.post(f"{url}/v1/generate", json=body, timeout=60)
    assert served.status_code == 200, served.text
    import io

    images = np.load(io.BytesIO(served.content))
    assert images.shape == (2, channels, size, size) and np.isfinite(images).all()
    assert np.abs(images).max() <= 1 and images.std() > 0


def pre_tanh_std(G: torch.nn.Module, z: torch.Tensor) -> float:
    seen = []
    tanh = next(m for m in G.modules() if isinstance(m, torch.nn.Tanh))
    hook = tanh.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        G(z)
    hook.remove()
    return float(seen[0].std())


def amplify(G: torch.nn.Module, std: float) -> None:
    """Scale the layer that feeds tanh (weights and bias) until the pre-tanh activations have this
    spread: a few training steps leave them near 1e-3, long training makes them larger."""
    z = torch.randn(64, G_LATENT, generator=torch.Generator().manual_seed(0))
    factor = std / pre_tanh_std(G, z)
    last = [
        m for m in G.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ][-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        if last.bias is not None:
            last.bias.mul_(factor)


def test_large_activations_no_longer_stop_the_dag(datasets, tracking, tiny_idx, tmp_path, caplog):
    """Issue 15: a longer-trained generator (larger pre-tanh activations) made the fp16 graph differ
    from fp32 by 0.0107 > 0.01 on the [-1, 1] output, and export stopped the DAG. That is 1-2 grey
    levels: fp16 is now judged in 8-bit grey levels and written. An fp16 graph that really differs
    (activations far beyond fp16's range) is skipped with its reason, and register still runs."""
    shared = datasets(1, 32)
    params = parse_params(
        case_params(
            tiny_idx,
            "dcgan",
            False,
            1,
            32,
            **{"register.model_name": "matrix-large-activations", "export.parity_samples": 64},
        )
    )
    base = workspace(shared, tmp_path / "trained")
    train_stage.run(params, base)
    evaluate_stage.run(params, base)

    def variant(label: str, std: float) -> tuple[Layout, dict]:
        layout = workspace(shared, tmp_path / label)
        G, spec = load_generator(base.generator)
        amplify(G, std)
        save_generator(layout.generator, G, spec, step=4)
        for name in ("train_report", "metrics", "train_history"):
            target = getattr(layout, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(getattr(base, name), target)
        shutil.copytree(base.samples, layout.samples)
        return layout, export_stage.run(params, layout)

    # Larger pre-tanh activations: the old absolute check (1e-2 on [-1, 1]) fails, the images do not.
    layout, info = variant("large", 32.0)
    parity = json.loads(layout.timings("export").read_text())["fp16_parity"]
    assert info["fp16"]["written"] and parity["max_abs_diff"] > 1e-2, parity
    assert parity["max_grey_diff"] <= MAX_GREY_DIFF
    assert register_stage.run(params, layout)["version"]

    # Pre-tanh activations in the thousands: fp16 overflows and whole pixels flip. Skipped, not an error.
    with caplog.at_level(logging.WARNING, logger="ganops.stages.export"):
        layout, info = variant("overflow", 1000.0)
    assert info["fp16"] == {"written": False, "reason": info["fp16"]["reason"]}
    assert "grey levels" in info["fp16"]["reason"]
    assert f"fp16 variant skipped ({info['fp16']['reason']})" in caplog.text
    assert not any(layout.fp16.iterdir())  # nothing stale left beside the fp32 file
    fp32_parity = json.loads(layout.timings("export").read_text())["parity_max_abs_diff"]
    assert fp32_parity <= params.export.parity_tolerance  # fp32 keeps its tight check
    assert register_stage.run(params, layout)["version"]


def run_steps(shared: Layout, root, tiny_idx, **overrides):
    params = parse_params(case_params(tiny_idx, "dcgan", False, 1, 32, **{"train.max_steps": 3, **overrides}))
    layout = Layout(root)
    result = train(params, train_paths(layout, shared, feature_cache=root / "cache"))
    lines = layout.train_history.read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    losses = [float(r[header.index(col)]) for r in rows for col in ("loss_d", "loss_g")]
    weights = torch.load(layout.generator, weights_only=True)["state_dict"]
    return result, losses, weights


@pytest.fixture(scope="module")
def baseline(datasets, tiny_idx, tmp_path_factory):
    return run_steps(datasets(1, 32), tmp_path_factory.mktemp("baseline"), tiny_idx)


def _differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("loss", LOSSES.names())
def test_every_loss_trains_a_few_steps(loss, datasets, baseline, tiny_idx, tmp_path):
    result, losses, weights = run_steps(datasets(1, 32), tmp_path, tiny_idx, **{"train.loss": loss})
    assert result.steps == 3 and len(losses) == 6 and all(np.isfinite(losses)), losses
    if loss != "non_saturating":  # the baseline's loss: any other must change what G learns
        assert _differs(weights, baseline[2])


@pytest.mark.parametrize(
    "option",
    [
        {"train.r1_gamma": 1.0},
        {"train.r2_gamma": 1.0},
        {"model.spectral_norm": True},
        {"train.augment": ["hflip", "color", "translation", "cutout"]},
        {"train.ema_decay": 0.0},
    ],
    ids=["r1_gamma", "r2_gamma", "spectral_norm", "augment", "ema"],
)
def test_every_regularizer_trains_a_few_steps_and_changes_the_result(
    option, datasets, baseline, tiny_idx, tmp_path
):
    result, losses, weights = run_steps(datasets(1, 32), tmp_path, tiny_idx, **option)
    assert result.steps == 3 and all(np.isfinite(losses)), losses
    assert _differs(weights, baseline[2]), f"{option} did not change the trained generator"
