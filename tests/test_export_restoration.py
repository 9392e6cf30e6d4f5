"""Export of the restoration generators (inpaint, superres, colorize): dynamic height and width,
parity at two sizes, the pre/post-processing contract in the metadata, fp16 and Triton."""

import json

import numpy as np
import onnx
import pytest
import torch

from ganops.config import parse_params
from ganops.errors import ExportError
from ganops.export.onnx_export import ort_session
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.models.io import load_generator, save_generator
from ganops.stages import Layout
from ganops.stages.export import run as export
from serve_helpers import export_tiny, export_tiny_restoration, restoration_spec

TOLERANCE = 1e-3  # export.parity_tolerance's default
# task -> (image channels, scale, input name, input channels, input size multiple)
TASKS = {
    "inpaint": (3, 1, "masked_image", 4, 4),
    "superres": (1, 2, "low_res_image", 1, 4),
    "colorize": (3, 1, "luminance", 1, 4),
}


def tiny_spec(task: str) -> ArchSpec:
    return restoration_spec(task, channels=TASKS[task][0])  # the serving tests' tiny U-Net


def random_inputs(task: str, n: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    image = torch.rand(n, TASKS[task][3], height, width, generator=rng) * 2 - 1
    if task == "inpaint":
        hole = (torch.rand(n, 1, height, width, generator=rng) < 0.3).float()
        image = torch.cat([image[:, :-1] * (1 - hole), hole], dim=1)
    return image


@pytest.fixture(scope="module", params=list(TASKS))
def exported(request, tmp_path_factory):
    """A randomly initialized tiny generator of the task, through the export stage (once per task:
    the tests only read what it wrote)."""
    task = request.param
    spec = tiny_spec(task)
    torch.manual_seed(0)
    G = build_generator(spec)
    G.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is exercised
        G(random_inputs(task, 8, 16 // spec.scale, 16 // spec.scale))
    layout = Layout(tmp_path_factory.mktemp(task))
    save_generator(layout.generator, G.eval(), spec, step=1, note="test")
    info = export(parse_params({"export": {"parity_samples": 4}}), layout)
    return task, layout, info


def test_onnx_matches_pytorch_at_sizes_other_than_the_traced_one(exported):
    task, layout, info = exported
    G, spec = load_generator(layout.generator)
    _, scale, name, _, multiple = TASKS[task]
    session = ort_session(layout.onnx)
    assert [i.name for i in session.get_inputs()] == [name]
    # the training size, non-square with an odd number of multiples, and the smallest size
    for height, width in ((16 // scale, 16 // scale), (5 * multiple, 3 * multiple), (multiple, multiple)):
        x = random_inputs(task, 3, height, width)
        with torch.inference_mode():
            expected = G(x).numpy()
        (got,) = session.run(None, {name: x.numpy()})
        assert got.shape == (3, spec.channels, height * scale, width * scale)
        assert np.max(np.abs(got - expected)) <= TOLERANCE, (height, width)
        if task == "inpaint":  # the known pixels pass through unchanged
            known = np.broadcast_to(x[:, -1:].numpy() == 0, got.shape)
            assert np.array_equal(got[known], x[:, :-1].numpy()[known])


def test_the_stage_checks_parity_at_two_sizes_and_logs_each(exported):
    task, layout, info = exported
    side, multiple = 16 // TASKS[task][1], TASKS[task][4]
    sizes = [[side, side], [side + multiple, side]]
    assert info["parity"] == {
        "samples": 4,
        "input_sizes": sizes,
        "tolerance": TOLERANCE,
        "provider": "CPU",
        "passed": True,
    }
    measured = json.loads(layout.timings("export").read_text())  # this machine's numbers
    by_size = measured["parity_max_abs_diff_by_input_size"]
    assert list(by_size) == [f"{h}x{w}" for h, w in sizes]
    assert max(by_size.values()) == measured["parity_max_abs_diff"] <= TOLERANCE
    assert json.loads(layout.onnx_sidecar.read_text()) == info


def test_the_metadata_and_sidecar_hold_the_pre_and_post_processing_contract(exported):
    task, layout, info = exported
    channels, scale, name, in_channels, multiple = TASKS[task]
    model = onnx.load(str(layout.onnx))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    expected = {
        "ganops.task": task,
        "ganops.arch": "unet",
        "ganops.input": name,
        "ganops.output": "images",
        "ganops.layout": "NCHW",
        "ganops.value_range": "-1,1",
        "ganops.input_channels": str(in_channels),
        "ganops.output_channels": str(channels),
        "ganops.size_multiple": str(multiple),
        "ganops.scale": str(scale),
        "ganops.trained_size": "16,16",
    }
    assert {k: meta.get(k) for k in expected} == expected
    if task == "inpaint":
        assert (meta["ganops.mask_channel"], meta["ganops.mask_hole_value"]) == ("3", "1")
        assert meta["ganops.masked_pixel_value"] == "0"
    if task == "colorize":
        assert "BT.601" in meta["ganops.input_colour"] and "0.299 R" in meta["ganops.input_colour"]
        assert meta["ganops.output_colour"] == "RGB"
    # the sidecar holds the same contract as JSON values
    assert info["size_multiple"] == multiple and info["scale"] == scale and info["task"] == task
    assert info["input"] == {
        "name": name,
        "shape": ["batch", in_channels, "height", "width"],
        "dtype": "float32",
    }
    out_size = ["height", "width"] if scale == 1 else [f"height*{scale}", f"width*{scale}"]
    assert info["output"]["shape"] == ["batch", channels, *out_size]
    assert info["arch"]["task"] == task and info["arch"]["depth"] == 2


def test_fp16_variant_and_triton_config_take_any_height_and_width(exported):
    task, layout, info = exported
    assert info["fp16"]["written"], info["fp16"]
    _, scale, name, in_channels, multiple = TASKS[task]
    x = random_inputs(task, 2, 3 * multiple, 5 * multiple).numpy()
    (half,) = ort_session(layout.fp16_onnx).run(None, {name: x})
    (full,) = ort_session(layout.onnx).run(None, {name: x})
    assert half.dtype == np.float32 and half.shape == full.shape
    assert np.max(np.abs(half - full)) < 0.05
    config = (layout.triton / "ganops-generator" / "config.pbtxt").read_text()
    assert f'name: "{name}"' in config and f"dims: [ {in_channels}, -1, -1 ]" in config


def test_a_restoration_parity_failure_names_the_input_size(tmp_path):
    spec = tiny_spec("colorize")
    layout = Layout(tmp_path)
    save_generator(layout.generator, build_generator(spec).eval(), spec, step=1)
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* on 16x16 inputs"):
        export(parse_params({"export": {"parity_tolerance": 1e-30, "parity_samples": 2}}), layout)
    assert not layout.onnx.exists()


# prepare's manifest of folder photos cut into patches (the keys export reads, and some it leaves).
PHOTOS = {
    "source": "imagefolder",
    "origin": "data/raw/photos",
    "native_shape": [3, 480, 640],
    "image_size": 16,
    "channels": 3,
    "crop": "random_patches",
    "patches_per_image": 16,
    "source_images": {"train": 9, "test": 1},
    "splits": {},
}


def test_an_image_models_export_records_what_it_was_trained_on(tmp_path):
    """In the sidecar and in the ONNX metadata (a registered file alone must tell the server)."""
    write_json(Layout(tmp_path).manifest, PHOTOS)
    layout = export_tiny_restoration(tmp_path, "superres", channels=3)
    expected = {
        key: PHOTOS[key]
        for key in ("source", "origin", "channels", "image_size", "crop", "patches_per_image")
    }
    assert json.loads(layout.onnx_sidecar.read_text())["trained_on"] == expected
    meta = {p.key: p.value for p in onnx.load(str(layout.onnx)).metadata_props}
    recorded = {k.removeprefix("ganops.trained_on."): v for k, v in meta.items() if "trained_on" in k}
    assert recorded == {key: str(value) for key, value in expected.items()}


def test_data_prepared_again_after_training_fails_the_export_naming_the_fix(tmp_path):
    write_json(Layout(tmp_path).manifest, {**PHOTOS, "channels": 1})
    with pytest.raises(
        ExportError, match=r"describes 1-channel 16 px images, but .* 3-channel 16 px .* rerun train"
    ):
        export_tiny_restoration(tmp_path, "superres", channels=3)
    assert not Layout(tmp_path).onnx.exists()


def test_a_sampling_generators_export_leaves_the_training_data_out(tmp_path):
    """Its sidecar and graph keep the bytes dvc.lock pins for the default pipeline."""
    write_json(Layout(tmp_path).manifest, {**PHOTOS, "channels": 1})
    layout = export_tiny(tmp_path)
    assert "trained_on" not in json.loads(layout.onnx_sidecar.read_text())
    assert not [p.key for p in onnx.load(str(layout.onnx)).metadata_props if "trained_on" in p.key]


def test_a_sampling_generators_spec_is_saved_without_the_restoration_fields():
    """So the generate task's generator.pt and export sidecar keep the bytes they had before the tasks."""
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=8, d_width=8)
    assert list(spec.to_dict()) == [
        "arch",
        "latent_dim",
        "image_size",
        "channels",
        "g_width",
        "d_width",
        "num_classes",
        "spectral_norm",
        "d_dropout",
    ]
    assert ArchSpec(**spec.to_dict()) == spec
    restoration = tiny_spec("superres")
    assert ArchSpec(**restoration.to_dict()) == restoration


def test_the_size_ranges_torch_export_writes_in_set_order_are_sorted():
    """torch.export lists the symbolic sizes' ranges in set order, which follows Python's string hash:
    the two orders below came from the same superres export under PYTHONHASHSEED 1 and 2 (files of
    different md5s). Sorted at export, both give one text, and so one file."""
    import onnx

    from ganops.export.onnx_export import RANGE_CONSTRAINTS, _sort_range_constraints

    seen = (
        "{s35: VR[0, int_oo], 4*s75: VR[4, int_oo], 4*s95: VR[4, int_oo], s95: VR[2, int_oo], s75: VR[2, int_oo]}",
        "{s35: VR[0, int_oo], 4*s75: VR[4, int_oo], 4*s95: VR[4, int_oo], s75: VR[2, int_oo], s95: VR[2, int_oo]}",
    )
    written = []
    for value in seen:
        graph = onnx.GraphProto()
        graph.metadata_props.add(key=RANGE_CONSTRAINTS, value=value)
        _sort_range_constraints(graph)
        written.append(graph.metadata_props[0].value)
    assert written[0] == written[1]
    assert (
        written[0]
        == "{4*s75: VR[4, int_oo], 4*s95: VR[4, int_oo], s35: VR[0, int_oo], s75: VR[2, int_oo], s95: VR[2, int_oo]}"
    )
    graph = onnx.GraphProto()
    graph.metadata_props.add(key=RANGE_CONSTRAINTS, value="{s68: VR[0, int_oo]}")  # the sampler's: one size
    _sort_range_constraints(graph)
    assert graph.metadata_props[0].value == "{s68: VR[0, int_oo]}"
