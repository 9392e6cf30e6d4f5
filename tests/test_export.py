import json

import onnx
import pytest
import torch

from ganops.config import parse_params
from ganops.errors import ExportError
from ganops.export.onnx_export import ort_session
from ganops.models import ArchSpec, build_generator
from ganops.stages import Layout
from ganops.stages.export import run as export
from ganops.training.loop import _save_generator


@pytest.fixture()
def layout(tmp_path):
    spec = ArchSpec("dcgan", latent_dim=8, image_size=16, channels=1, g_width=8, d_width=8)
    torch.manual_seed(0)
    G = build_generator(spec)
    G.train()
    G(torch.randn(16, 8))  # non-trivial BatchNorm statistics, so folding them is exercised
    layout = Layout(tmp_path)
    _save_generator(layout.generator, G.eval(), spec, step=1, run_id="test")
    return layout


def test_export_parity_metadata_and_dynamic_batch(layout):
    info = export(parse_params({"export": {"parity_samples": 16}}), layout)
    assert info["parity"]["max_abs_diff"] <= 1e-3
    assert json.loads(layout.onnx_sidecar.read_text()) == info
    model = onnx.load(str(layout.onnx))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["ganops.latent_dim"] == "8" and meta["ganops.image_shape"] == "1,16,16"
    assert meta["ganops.value_range"] == "-1,1"
    session = ort_session(layout.onnx)
    for batch in (1, 7, 300):
        (images,) = session.run(None, {"z": torch.randn(batch, 8).numpy()})
        assert images.shape == (batch, 1, 16, 16)


def test_parity_failure_keeps_the_previous_model(layout):
    export(parse_params({}), layout)
    before = layout.onnx.read_bytes()
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export(parse_params({"export": {"parity_tolerance": 1e-30}}), layout)
    assert layout.onnx.read_bytes() == before
    assert not list(layout.onnx.parent.glob(".generator.onnx.*"))
