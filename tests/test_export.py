import json

import numpy as np
import onnx
import pytest
import torch

from ganops.config import parse_params
from ganops.errors import ExportError
from ganops.export.fp16 import MAX_GREY_DIFF, GreyParity, fp16_parity
from ganops.export.onnx_export import ort_session
from ganops.models import ArchSpec, build_generator
from ganops.models.io import load_generator, save_generator
from ganops.stages import Layout
from ganops.stages.export import run as export


@pytest.fixture()
def layout(tmp_path):
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=8, d_width=8)
    torch.manual_seed(0)
    G = build_generator(spec)
    G.train()
    G(torch.randn(16, 8))  # non-trivial BatchNorm statistics, so folding them is exercised
    layout = Layout(tmp_path)
    save_generator(layout.generator, G.eval(), spec, step=1, note="test")
    return layout


def test_export_parity_metadata_and_dynamic_batch(layout):
    info = export(parse_params({"export": {"parity_samples": 16}}), layout)
    assert info["parity"] == {"samples": 16, "tolerance": 1e-3, "provider": "CPU", "passed": True}
    assert json.loads(layout.timings("export").read_text())["parity_max_abs_diff"] <= 1e-3  # this machine's
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


def test_a_generator_with_nan_outputs_fails_fp32_parity_naming_the_cause(layout):
    G, spec = load_generator(layout.generator)
    with torch.no_grad():
        next(p for p in G.parameters() if p.dim() == 4).view(-1)[0] = float("nan")
    save_generator(layout.generator, G, spec, step=1, note="nan")
    with pytest.raises(ExportError, match=r"generator returns \d+ non-finite values .*training diverged"):
        export(parse_params({}), layout)
    assert not layout.onnx.exists()


def _graph(path, op: str) -> None:
    """z (N, 4) -> op -> images (N, 1, 2, 2), float32 in and out."""
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([-1, 1, 2, 2], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node(op, ["z"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["images"])],
        "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [shape],
    )
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path)
    )


def test_fp16_parity_refuses_non_finite_outputs_and_measures_grey_levels(tmp_path):
    reference, finite, nan = tmp_path / "ref.onnx", tmp_path / "finite.onnx", tmp_path / "nan.onnx"
    _graph(reference, "Tanh")
    _graph(finite, "Tanh")
    _graph(nan, "Sqrt")  # NaN for every negative latent
    z = np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4)
    same = fp16_parity(reference, finite, z)
    assert same.max_grey_diff == 0 and same.mean_grey_diff == 0 and same.shortfall() is None
    with pytest.raises(ExportError, match=r"returned \d+ non-finite values of 32"):
        fp16_parity(reference, nan, z)


def test_grey_level_bounds_say_which_one_failed():
    assert GreyParity(8, MAX_GREY_DIFF, 0.0, 0.01).shortfall() is None
    assert "largest pixel difference 9 grey levels > 8" in GreyParity(8, 9, 0.0, 0.05).shortfall()
    assert "mean pixel difference 0.3 grey levels > 0.25" in GreyParity(8, 1, 0.3, 0.01).shortfall()
