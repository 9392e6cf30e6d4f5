"""Loading a model to serve: verification against the sidecar and the registry, providers, latents."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganops.errors import ServeError
from ganops.export.fp16 import MAX_GREY_DIFF
from ganops.serve.images import to_uint8
from ganops.serve.latents import interpolation_latents, seed_latents
from ganops.serve.session import GeneratorSession, gpu_present
from ganops.serve.source import resolve
from serve_helpers import SPEC, export_tiny


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("serve-model"))


def test_seed_latents_are_a_prefix_stream_and_bounded():
    many = seed_latents(5, 16, 8)
    assert many.dtype == np.float32 and many.shape == (16, 8)
    assert np.array_equal(seed_latents(5, 4, 8), many[:4])
    assert not np.array_equal(seed_latents(6, 4, 8), many[:4])
    with pytest.raises(ValueError, match="seed must be in"):
        seed_latents(2**32, 1, 8)


def test_interpolation_starts_and_ends_at_the_seeds_first_latents():
    path = interpolation_latents(3, 9, 5, 8)
    assert path.shape == (5, 8)
    np.testing.assert_allclose(path[0], seed_latents(3, 1, 8)[0], atol=1e-6)
    np.testing.assert_allclose(path[-1], seed_latents(9, 1, 8)[0], atol=1e-6)


def test_verified_path_model_runs_like_pytorch(layout):
    session = GeneratorSession(resolve(str(layout.onnx)), provider="auto")
    assert (
        session.provider == "CPUExecutionProvider"
    )  # no GPU on the test machines; on a GPU box this is CUDA/TensorRT
    assert session.sha256 == json.loads(layout.onnx_sidecar.read_text())["sha256"]
    assert session.info.latent_dim == SPEC.latent_dim and session.info.image_shape == (1, 16, 16)
    z = seed_latents(1, 5, SPEC.latent_dim)
    from ganops.models.io import load_generator

    G, _ = load_generator(layout.generator, "cpu")
    with torch.inference_mode():
        expected = G(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(session.run(z), expected, atol=1e-4)


def test_io_binding_gives_the_same_images_as_a_plain_run(layout):
    model = resolve(str(layout.onnx))
    z = seed_latents(2, 7, SPEC.latent_dim)
    plain = GeneratorSession(model, "cpu", io_binding=False).run(z)
    bound = GeneratorSession(model, "cpu", io_binding=True).run(z)
    assert np.array_equal(plain, bound)


def test_fp16_variant_is_verified_and_close_to_fp32(layout):
    session = GeneratorSession(resolve(str(layout.fp16_onnx)), "cpu")
    z = seed_latents(3, 4, SPEC.latent_dim)
    full = GeneratorSession(resolve(str(layout.onnx)), "cpu").run(z)
    half = session.run(z)
    grey = np.abs(to_uint8(half).astype(int) - to_uint8(full).astype(int))
    assert half.dtype == np.float32 and grey.max() <= MAX_GREY_DIFF


def test_explicit_gpu_provider_never_falls_back_silently(layout):
    model = resolve(str(layout.onnx))
    try:
        session = GeneratorSession(model, "cuda")
    except ServeError as err:
        assert "--provider cuda" in str(err)
    else:  # a machine with a working GPU: then CUDA must really be in use
        assert session.provider == "CUDAExecutionProvider"


def test_missing_model_and_missing_sidecar_are_refused(layout, tmp_path):
    with pytest.raises(ServeError, match="model file not found"):
        resolve(str(tmp_path / "nope.onnx"))
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(layout.onnx.read_bytes())
    with pytest.raises(ServeError, match="lone.onnx.json: not found, so lone.onnx cannot be verified"):
        resolve(str(lone))


def _copy(layout, folder):
    folder.mkdir()
    onnx, sidecar = folder / "generator.onnx", folder / "generator.onnx.json"
    onnx.write_bytes(layout.onnx.read_bytes())
    sidecar.write_bytes(layout.onnx_sidecar.read_bytes())
    return onnx, sidecar


def test_changed_file_is_refused_for_its_sha256(layout, tmp_path):
    onnx, _ = _copy(layout, tmp_path / "changed")
    data = bytearray(onnx.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside the weights: still parses, different model
    onnx.write_bytes(bytes(data))
    with pytest.raises(ServeError, match=r"sha256 .* does not match .* recorded in .*generator.onnx.json"):
        resolve(str(onnx))


def test_cpu_machine_asks_onnxruntime_for_no_gpu_provider(layout, tmp_path):
    """onnxruntime-gpu asked for TensorRT/CUDA without a GPU prints [E:onnxruntime ...] lines while
    it falls back; on a machine without a GPU, `ganops sample` must not ask, so stderr stays clean."""
    if gpu_present():
        pytest.skip("a GPU is visible: the GPU providers are rightly tried here")
    result = subprocess.run(
        [sys.executable, "-m", "ganops", "sample", str(layout.onnx), "-o", str(tmp_path / "s.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "[E:onnxruntime" not in result.stderr and "EP Error" not in result.stderr, result.stderr
    assert "(CPUExecutionProvider)" in result.stdout
    import onnxruntime

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(onnxruntime.get_available_providers()):
        assert "GPU providers of this build were not tried" in result.stderr  # the log says why CPU
    with pytest.raises(ServeError, match="no CUDA GPU is visible"):
        GeneratorSession(resolve(str(layout.onnx)), "cuda")


def test_corrupt_file_with_a_matching_sidecar_is_refused_by_the_runtime(layout, tmp_path):
    onnx, sidecar = _copy(layout, tmp_path / "corrupt")
    onnx.write_bytes(onnx.read_bytes()[:500])  # truncated, and the sidecar re-pointed at it
    from ganops.files import sha256_file

    info = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**info, "sha256": sha256_file(onnx)}))
    with pytest.raises(ServeError, match="ONNX Runtime cannot load the model"):
        GeneratorSession(resolve(str(onnx)), "cpu")


def test_serve_command_stops_at_start_up_with_one_clear_line(layout, tmp_path):
    onnx, _ = _copy(layout, tmp_path / "cli")
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    result = subprocess.run(
        [sys.executable, "-m", "ganops", "serve", str(onnx), "--port", "9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        "error: " in result.stderr
        and "does not match" in result.stderr
        and "Uvicorn running" not in result.stderr
    )


def _registered(layout, tmp_path, monkeypatch):
    """Register the tiny export with the real register stage into a SQLite MLflow in tmp_path."""
    from ganops.config import parse_params
    from ganops.files import write_json
    from ganops.stages.register import run as register

    sha = "a" * 64
    write_json(layout.prepared / "manifest.json", {"splits": {"train": {"images_sha256": sha}}})
    layout.samples.mkdir(parents=True, exist_ok=True)
    from torchvision.utils import save_image

    save_image(torch.rand(4, 1, 16, 16), layout.samples / "epoch_001.png")
    layout.train_history.parent.mkdir(parents=True, exist_ok=True)
    layout.train_history.write_text("step,epoch,loss_d,loss_g,d_real,d_fake\n1,0,1,1,0.5,0.5\n")
    metrics = {"fid_domain": 20.0, "kid_domain": 0.01, "floor": {"fid_domain": 0.1}, "evaluator_sha256": sha}
    write_json(layout.metrics, metrics)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return register(parse_params({"register": {"experiment": "serve-test"}}), layout)


def test_champion_from_the_registry_is_resolved_and_verified(tmp_path, monkeypatch):
    layout = export_tiny(tmp_path / "project")
    record = _registered(layout, tmp_path, monkeypatch)
    model = resolve("models:/ganops-generator@champion")
    assert model.sha256 == json.loads(layout.onnx_sidecar.read_text())["sha256"]
    assert f"v{record['version']}" in model.detail
    z = seed_latents(4, 3, SPEC.latent_dim)
    from_registry = GeneratorSession(model, "cpu").run(z)
    from_file = GeneratorSession(resolve(str(layout.onnx)), "cpu").run(z)
    assert np.array_equal(from_registry, from_file)

    from mlflow import MlflowClient

    MlflowClient().set_model_version_tag("ganops-generator", record["version"], "onnx_sha256", "b" * 64)
    with pytest.raises(
        ServeError, match=r"does not match bbbbbbbbbbbbbbbb\.\.\. recorded in ganops-generator v"
    ):
        resolve(f"models:/ganops-generator/{record['version']}")
    with pytest.raises(ServeError, match="alias @nobody not found"):
        resolve("models:/ganops-generator@nobody")
    with pytest.raises(ServeError, match="expected models:/NAME@ALIAS"):
        resolve("models:/ganops-generator")


def test_class_requests_on_a_conditional_generator(tmp_path):
    """A class-conditional export keeps the single input z; `class` steers z[:, 0] into that class."""
    import dataclasses

    import httpx

    from ganops.models import build_generator
    from ganops.models.io import save_generator
    from ganops.models.layers import LatentClasses
    from ganops.serve.app import ServeSettings, create_app
    from ganops.serve.latents import with_class
    from ganops.stages import Layout
    from ganops.stages.export import run as export
    from serve_helpers import uvicorn_thread

    spec = dataclasses.replace(SPEC, num_classes=3)
    torch.manual_seed(0)
    G = build_generator(spec)
    classes = next(m for m in G.modules() if isinstance(m, LatentClasses))
    classes.set_prior(torch.tensor([50, 30, 20]))  # an uneven prior, as from real label counts
    G.train()
    with torch.no_grad():
        G(torch.randn(32, spec.latent_dim))
    layout = Layout(tmp_path)
    save_generator(layout.generator, G.eval(), spec, step=1, note="conditional")
    from ganops.config import parse_params

    export(parse_params({"export": {"parity_samples": 8}}), layout)

    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    assert [i.name for i in session.session.get_inputs()] == ["z"]
    np.testing.assert_allclose(session.info.class_cdf, [0.5, 0.8, 1.0], atol=1e-6)
    base = seed_latents(9, 32, spec.latent_dim)
    for label in range(3):
        z = with_class(base, label, list(session.info.class_cdf))
        assert np.array_equal(z[:, 1:], base[:, 1:])
        assert (classes(torch.from_numpy(z)) == label).all()
        with torch.inference_mode():
            expected = G(torch.from_numpy(z), torch.full((32,), label)).numpy()
        np.testing.assert_allclose(session.run(z), expected, atol=1e-4)

    with uvicorn_thread(create_app(session, ServeSettings(max_n=8, max_steps=8))) as url:
        served = httpx.post(f"{url}/v1/generate", json={"n": 4, "seed": 9, "class": 2, "format": "npy"})
        assert served.status_code == 200
        import io

        z = with_class(seed_latents(9, 4, spec.latent_dim), 2, list(session.info.class_cdf))
        assert np.array_equal(np.load(io.BytesIO(served.content)), session.run(z))
        assert httpx.get(f"{url}/readyz").json()["num_classes"] == 3
        bad = httpx.post(f"{url}/v1/generate", json={"n": 1, "seed": 9, "class": 3})
        assert bad.status_code == 422 and bad.json()["error"] == "class: class must be in [0, 2], got 3"
        free = httpx.post(
            f"{url}/v1/interpolate", json={"seed_a": 1, "seed_b": 2, "steps": 3, "format": "npy"}
        )
        assert free.status_code == 200  # without class the model draws classes from the latents
