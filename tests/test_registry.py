import json

import pytest
import torch

from ganops.config import parse_params
from ganops.errors import RegistryError
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.registry.mlflow_registry import Candidate, decide
from ganops.stages import Layout
from ganops.stages.export import run as export
from ganops.stages.register import run as register
from ganops.training.loop import _save_generator

SHA = "a" * 64


def test_gate_promotes_when_there_is_no_champion():
    assert decide(Candidate("1", 50.0, SHA), None).promote


def test_gate_promotes_only_a_lower_fid():
    champion = Candidate("1", 10.0, SHA)
    assert decide(Candidate("2", 9.0, SHA), champion).promote
    assert not decide(Candidate("2", 10.0, SHA), champion).promote
    assert not decide(Candidate("2", 11.0, SHA), champion).promote


def test_gate_never_compares_fids_from_different_evaluators():
    decision = decide(Candidate("2", 1.0, "b" * 64), Candidate("1", 10.0, SHA))
    assert not decision.promote and "another evaluator" in decision.reason


@pytest.fixture()
def exported(tmp_path):
    """A project folder with everything register reads: ONNX + sidecar, metrics, a grid, a loss history."""
    spec = ArchSpec("dcgan", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    layout = Layout(tmp_path)
    _save_generator(layout.generator, build_generator(spec).eval(), spec, step=1, run_id="test")
    export(parse_params({}), layout)
    write_json(layout.prepared / "manifest.json", {"splits": {"train": {"images_sha256": SHA}}})
    layout.samples.mkdir(parents=True)
    from torchvision.utils import save_image

    save_image(torch.rand(4, 1, 16, 16), layout.samples / "epoch_001.png")
    layout.train_history.parent.mkdir(parents=True)
    layout.train_history.write_text("step,epoch,loss_d,loss_g,d_real,d_fake\n1,0,1,1,0.5,0.5\n")
    return layout


def with_fid(layout: Layout, fid: float) -> Layout:
    write_json(
        layout.metrics,
        {"fid_domain": fid, "kid_domain": 0.01, "floor": {"fid_domain": 0.1}, "evaluator_sha256": SHA},
    )
    return layout


def test_registry_gating_with_a_real_mlflow_registry(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # artifacts land in ./mlruns of the test folder
    params = parse_params({"register": {"experiment": "gate-test"}})

    first = register(params, with_fid(exported, 20.0))
    assert first["promoted"] and first["aliases"] == ["champion"] and first["reason"] == "no champion yet"

    worse = register(params, with_fid(exported, 25.0))
    assert not worse["promoted"] and worse["aliases"] == []
    assert worse["champion_before"]["version"] == first["version"]

    better = register(params, with_fid(exported, 15.0))
    assert better["promoted"] and better["aliases"] == ["champion"]
    assert json.loads(exported.registry.read_text()) == better

    from mlflow import MlflowClient

    client = MlflowClient()
    assert str(client.get_model_version_by_alias("ganops-generator", "champion").version) == better["version"]
    tags = client.get_model_version("ganops-generator", worse["version"]).tags
    assert tags["gate_decision"].startswith("kept champion") and tags["evaluator_sha256"] == SHA

    import mlflow.onnx
    import numpy as np

    model = mlflow.pyfunc.load_model("models:/ganops-generator@champion")
    out = model.predict({"z": np.random.randn(3, 8).astype(np.float32)})
    assert out["images"].shape == (3, 1, 16, 16)


def test_registry_that_is_down_fails_clearly_and_keeps_outputs(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    write_json(exported.registry, {"version": "previous"})
    with pytest.raises(RegistryError, match=r"MLflow registry at http://127.0.0.1:9 failed"):
        register(parse_params({}), with_fid(exported, 20.0))
    assert json.loads(exported.registry.read_text()) == {"version": "previous"}
