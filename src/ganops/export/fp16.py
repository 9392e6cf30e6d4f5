"""fp16 variant of the exported generator, for GPUs (half the memory traffic, tensor cores).

Inputs and outputs stay float32 (``keep_io_types=True``), so a client and the server feed and
read it exactly like the fp32 file; only the weights and the arithmetic inside are half precision.

The variant is judged by what a user sees: the 8-bit images. Both graphs run on ONNX Runtime's
CPU provider on the same latents, their outputs are mapped to grey levels exactly as the server
maps them (``serve.images.to_uint8``), and the largest and the mean difference in grey levels
must stay within bounds measured on trained generators of every architecture (docs/export.md,
benchmarks/fp16_parity.py). A variant outside them is not an error: export skips it and says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.errors import ExportError
from ganops.export.onnx_export import run_graph
from ganops.serve.images import to_uint8

log = logging.getLogger(__name__)

# Chosen by measurement (docs/export.md, benchmarks/fp16_parity.py): generators of every architecture
# trained 300 steps differ by at most 1 grey level anywhere and 0.03 on average; with their last layer
# scaled x16 (the long runs of issue 15, 0.011 on [-1, 1]: 2 levels for DCGAN), MLP and DCGAN stay at
# <= 2 levels and ResNet reaches 7-9; x64, ResNet reaches 24-33. The mean never passes 0.05. 8 levels
# (3%) on a single pixel is not visible; a few dozen is, and so is a quarter of a level on average.
MAX_GREY_DIFF = 8
MEAN_GREY_DIFF = 0.25


@dataclass(frozen=True)
class GreyParity:
    """How far the fp16 images are from the fp32 images, in 8-bit grey levels (0..255)."""

    samples: int
    max_grey_diff: int
    mean_grey_diff: float
    max_abs_diff: float  # on the [-1, 1] float output, for reference
    max_grey_bound: int = MAX_GREY_DIFF
    mean_grey_bound: float = MEAN_GREY_DIFF

    def shortfall(self) -> str | None:
        """Why these images are not close enough, or None when they are."""
        if self.max_grey_diff > self.max_grey_bound:
            return f"largest pixel difference {self.max_grey_diff} grey levels > {self.max_grey_bound}"
        if self.mean_grey_diff > self.mean_grey_bound:
            return f"mean pixel difference {self.mean_grey_diff:.3g} grey levels > {self.mean_grey_bound}"
        return None

    def check(self) -> dict:
        """The check it passed, in bytes any machine reproduces (the sidecars' part)."""
        bounds = {"max_grey_bound": self.max_grey_bound, "mean_grey_bound": self.mean_grey_bound}
        return {
            "samples": self.samples,
            **bounds,
            "reference": "fp32 ONNX",
            "provider": "CPU",
            "passed": True,
        }

    def measured(self) -> dict:
        """What this machine's ONNX Runtime measured (its kernels differ by CPU: logs/export.json)."""
        return {
            "max_grey_diff": self.max_grey_diff,
            "mean_grey_diff": self.mean_grey_diff,
            "max_abs_diff": self.max_abs_diff,
        }


def convert_fp16(fp32_path: Path, path: Path) -> None:
    """Write the fp16 graph of ``fp32_path`` to ``path``; ExportError if it is not a valid graph."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_model(str(fp32_path))
    _drop_initializer_value_info(model.graph)
    half = convert_float_to_float16(model, keep_io_types=True)
    _sort_nodes(half.graph)
    # convert_float_to_float16 keeps metadata_props; say which precision this file is.
    entry = half.metadata_props.add()
    entry.key, entry.value = "ganops.precision", "fp16"
    try:
        onnx.checker.check_model(half, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the fp16 graph fails onnx.checker ({str(err).splitlines()[0]})") from None
    onnx.save_model(half, str(path))


def _drop_initializer_value_info(graph) -> None:
    """The torch exporter also lists every initializer in ``value_info``. The converter retypes
    every float value_info to fp16, including initializers it keeps in fp32 (Resize's scales),
    and then casts such a tensor once per consumer under one name: the ResNet's six Resize nodes
    sharing one scales tensor gave an invalid graph ('val_15_cast_to_fp32' used as output names
    multiple times). An initializer carries its own type, so these entries are redundant."""
    initializers = {t.name for t in graph.initializer}
    kept = [v for v in graph.value_info if v.name not in initializers]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _sort_nodes(graph) -> None:
    """Reorder nodes topologically: the converter appends the input Casts at the end of the
    list, which ONNX Runtime tolerates but onnx.checker (rightly) rejects."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(x in available for x in n.input)]
        if not ready:
            raise ExportError("the fp16 graph has a cycle or a dangling input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def fp16_parity(fp32_path: Path, fp16_path: Path, inputs: np.ndarray) -> GreyParity:
    """Compare the fp16 graph's 8-bit images with the fp32 graph's on the same inputs (latents, or the
    images of a restoration generator), on the CPU provider.

    ExportError when the fp16 graph returns the wrong type or shape, or values that are not finite
    (fp16 overflows at 65504: a generator with large activations can produce inf, then NaN)."""
    expected = run_graph(fp32_path, inputs)
    got = run_graph(fp16_path, inputs)
    if got.dtype != np.float32 or got.shape != expected.shape:
        raise ExportError(
            f"the fp16 graph returned {got.dtype} {got.shape}, expected float32 {expected.shape}"
        )
    bad = int(np.count_nonzero(~np.isfinite(got)))
    if bad:
        raise ExportError(
            f"the fp16 graph returned {bad} non-finite values of {got.size} (activations beyond fp16's range)"
        )
    grey = np.abs(to_uint8(got).astype(np.int16) - to_uint8(expected).astype(np.int16))
    return GreyParity(
        samples=len(inputs),
        max_grey_diff=int(grey.max()),
        mean_grey_diff=round(float(grey.mean()), 6),
        max_abs_diff=float(np.max(np.abs(got - expected))),
    )
