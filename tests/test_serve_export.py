"""Export's serving artifacts: the Triton model repository and the fp16 variant."""

import json
import re

import numpy as np
import onnx
import pytest

from ganops.export.onnx_export import ort_session
from ganops.export.triton import MODEL_NAME
from ganops.files import sha256_file
from serve_helpers import SPEC, export_tiny

ORT_TO_TRITON = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(int64)": "TYPE_INT64"}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("serve-export"))


def parse_tensors(text: str, kind: str) -> list[dict]:
    """The entries of ``input [...]`` or ``output [...]`` in a Triton config.pbtxt."""
    block = re.search(rf"^{kind} \[\n(.*?)\n\]", text, re.S | re.M).group(1)
    entries = []
    for entry in re.findall(r"\{(.*?)\}", block, re.S):
        entries.append(
            {
                "name": re.search(r'name: "([^"]+)"', entry).group(1),
                "data_type": re.search(r"data_type: (\w+)", entry).group(1),
                "dims": [int(d) for d in re.search(r"dims: \[([^\]]*)\]", entry).group(1).split(",")],
            }
        )
    return entries


def test_triton_config_matches_the_onnx_files_real_inputs_and_outputs(layout):
    folder = layout.triton / MODEL_NAME
    model_file = folder / "1" / "model.onnx"
    assert model_file.read_bytes() == layout.onnx.read_bytes()
    text = (folder / "config.pbtxt").read_text()
    assert re.search(rf'^name: "{MODEL_NAME}"$', text, re.M)
    assert re.search(r'^platform: "onnxruntime_onnx"$', text, re.M)
    max_batch = int(re.search(r"^max_batch_size: (\d+)$", text, re.M).group(1))
    assert max_batch >= 1 and "dynamic_batching {" in text
    assert re.search(r"max_queue_delay_microseconds: \d+", text)

    # What ONNX Runtime itself reads from the file: names, element types, shapes (batch axis first).
    session = ort_session(model_file)
    for kind, actual in (("input", session.get_inputs()), ("output", session.get_outputs())):
        config = parse_tensors(text, kind)
        assert [c["name"] for c in config] == [a.name for a in actual]
        for c, a in zip(config, actual, strict=True):
            assert c["data_type"] == ORT_TO_TRITON[a.type]
            assert isinstance(a.shape[0], str), "the first axis must be the dynamic batch axis"
            assert c["dims"] == a.shape[1:]
    assert parse_tensors(text, "input")[0]["dims"] == [SPEC.latent_dim]
    assert parse_tensors(text, "output")[0]["dims"] == [SPEC.channels, SPEC.image_size, SPEC.image_size]

    # And the batch axis really is dynamic up to max_batch_size.
    (images,) = session.run(None, {"z": np.zeros((max_batch, SPEC.latent_dim), np.float32)})
    assert images.shape == (max_batch, SPEC.channels, SPEC.image_size, SPEC.image_size)


def test_fp16_variant_has_half_weights_float_io_and_a_sidecar(layout):
    path = layout.fp16_onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    session = ort_session(path)
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in session.get_outputs()] == ["tensor(float)"]
    info = json.loads(path.with_name(path.name + ".json").read_text())
    assert info["sha256"] == sha256_file(path) and info["precision"] == "fp16"
    parity = {**info["parity"], **json.loads(layout.timings("export").read_text())["fp16_parity"]}
    assert (
        parity["passed"]
        and 0 < parity["max_abs_diff"]
        and parity["max_grey_diff"] <= parity["max_grey_bound"]
    )
    assert parity["mean_grey_diff"] <= parity["mean_grey_bound"]
    report = json.loads(layout.onnx_sidecar.read_text())["fp16"]
    assert report["written"] and report["sha256"] == info["sha256"]
    full = [t for t in onnx.load(str(layout.onnx)).graph.initializer if len(t.dims) == 4]
    assert sum(len(t.raw_data) for t in weights) * 2 == sum(len(t.raw_data) for t in full)
