"""An ONNX Runtime session for the generator: provider choice, threads, IO binding, model facts.

Providers are tried in the order TensorRT, CUDA, CPU, the GPU ones only when a GPU is visible:
onnxruntime-gpu asked for them on a machine without one prints error lines while it falls back.
It also falls back quietly when CUDA libraries are missing, so the provider actually in use is
read back from ``session.get_providers()`` and logged with the reason; an explicit ``provider``
that did not load is an error instead of a silent fallback.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.cards import image_tasks
from ganops.errors import ServeError
from ganops.serve.contract import RestorationInfo, restoration_info
from ganops.serve.source import VerifiedModel

log = logging.getLogger(__name__)

PREFERENCE = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class ModelInfo:
    input_name: str
    output_name: str
    latent_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    class_cdf: tuple[float, ...]  # cumulative class prior of a conditional model; () if unconditional
    input_dtype: str  # "float32", or "float16" for a model exported without keep_io_types
    task: str = "generate"


def cpu_threads() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's CPU limit), not the host's count; more threads than that only contend."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit visible
    return max(1, cores)


def gpu_present() -> bool:
    """Whether this process sees a CUDA GPU: torch's answer when the training stack has loaded it,
    else the CUDA driver's device count (the serving image has no torch, and importing it only to
    ask would cost seconds). Both honour CUDA_VISIBLE_DEVICES."""
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:  # no NVIDIA driver installed
        return False
    count = ctypes.c_int(0)
    return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


def _candidates(requested: str, available: list[str], gpu: bool) -> list[str]:
    if requested == "auto":
        return [p for p in PREFERENCE.values() if p in available and (gpu or p not in GPU_PROVIDERS)]
    if requested not in PREFERENCE:
        raise ServeError(f"--provider: must be auto, {', '.join(PREFERENCE)}, got {requested!r}")
    wanted = PREFERENCE[requested]
    if wanted not in available:
        raise ServeError(
            f"--provider {requested}: {wanted} is not in this onnxruntime build ({', '.join(available)}); "
            "install onnxruntime-gpu or use --provider auto"
        )
    if wanted in GPU_PROVIDERS and not gpu:
        raise ServeError(
            f"--provider {requested}: no CUDA GPU is visible to this process (check nvidia-smi and "
            "CUDA_VISIBLE_DEVICES); use --provider auto or cpu"
        )
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]


def _why(requested: str, tried: list[str], got: str, available: list[str], gpu: bool) -> str:
    if got == tried[0]:
        if requested != "auto":
            return "requested"
        if not gpu and any(p in available for p in GPU_PROVIDERS):
            return "no CUDA GPU visible, so the GPU providers of this build were not tried"
        return "first choice of the order TensorRT > CUDA > CPU that this build offers"
    skipped = [p for p in tried if p != got and tried.index(p) < tried.index(got)]
    missing = [p for p in GPU_PROVIDERS if p not in available]
    reason = f"{', '.join(skipped)} failed to load (no GPU, or CUDA/cuDNN/TensorRT libraries missing; onnxruntime logged the cause above)"
    if missing:
        reason += f"; {', '.join(missing)} not in this onnxruntime build"
    return reason


class GeneratorSession:
    """Runs the generator's one input -> ``images (n, C, H, W)``; one call at a time (the batcher
    serializes). A sampler takes latents (n, latent_dim), a restoration model an image batch; ``info``
    says which (``info.task``)."""

    # Class-conditional models take their class from z[:, 0] (see latents.with_class), so every
    # ganops sampler has the single input ``z``.

    def __init__(
        self,
        model: VerifiedModel,
        provider: str = "auto",
        threads: int | None = None,
        io_binding: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        gpu = gpu_present()
        tried = _candidates(provider, available, gpu)
        if any(p in GPU_PROVIDERS for p in tried) and hasattr(ort, "preload_dlls"):
            try:  # finds the CUDA/cuDNN libraries shipped in nvidia-* wheels or with torch
                ort.preload_dlls()
            except Exception as err:  # noqa: BLE001 - a failed preload only means CPU fallback, logged below
                log.debug("onnxruntime.preload_dlls failed: %s", err)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One inference runs at a time (the batcher serializes them), so give it every core we
        # may use and no inter-op pool; more threads than cores only adds contention.
        self.threads = threads or cpu_threads()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(model.data, options, providers=tried)
        except Exception as err:  # ORT raises its own Fail/InvalidGraph/... classes
            raise ServeError(
                f"{model.origin}: ONNX Runtime cannot load the model ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:300]}); re-export it with `ganops export`"
            ) from None
        self.provider = self.session.get_providers()[0]
        if provider != "auto" and self.provider != tried[0]:
            raise ServeError(
                f"--provider {provider}: onnxruntime fell back to {self.provider} ({_why(provider, tried, self.provider, available, gpu)}); "
                "fix the GPU setup or use --provider auto"
            )
        log.info(
            "provider: %s (%s); %s",
            self.provider,
            _why(provider, tried, self.provider, available, gpu),
            f"{self.threads} CPU threads" if self.provider == "CPUExecutionProvider" else "IO binding on",
        )
        self.io_binding = self.provider in GPU_PROVIDERS if io_binding is None else io_binding
        self.info = _model_info(self.session, model.origin)
        self.sha256 = model.sha256
        self.origin = model.origin

    def run(self, latents: np.ndarray) -> np.ndarray:
        feeds = {self.info.input_name: latents.astype(self.info.input_dtype, copy=False)}
        if not self.io_binding:
            out = self.session.run([self.info.output_name], feeds)[0]
            return out.astype(np.float32, copy=False)
        # IO binding: inputs are copied to the device once and the output stays there until the
        # single copy back, instead of ORT staging both through extra host buffers per run.
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        device = "cuda" if self.provider in GPU_PROVIDERS else "cpu"
        binding.bind_output(self.info.output_name, device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0].astype(np.float32, copy=False)


def _model_info(session, origin: str) -> ModelInfo | RestorationInfo:
    meta = session.get_modelmeta().custom_metadata_map
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if meta.get("ganops.task", "generate") in image_tasks():
        first = inputs.get(meta.get("ganops.input", ""))
        dtype = "float16" if first is not None and first.type == "tensor(float16)" else "float32"
        return restoration_info(meta, dtype, origin)
    try:
        input_name = meta.get("ganops.input", next(iter(inputs)))
        output_name = meta.get("ganops.output", next(iter(outputs)))
        latent_dim = int(meta.get("ganops.latent_dim") or inputs[input_name].shape[1])
        image_shape = tuple(int(d) for d in meta["ganops.image_shape"].split(","))
        cdf = (
            tuple(float(v) for v in meta["ganops.class_cdf"].split(",")) if "ganops.class_cdf" in meta else ()
        )
        dtype = "float16" if inputs[input_name].type == "tensor(float16)" else "float32"
    except (KeyError, ValueError, StopIteration, IndexError) as err:
        raise ServeError(
            f"{origin}: the ONNX file lacks ganops metadata ({err!r}); serve a file written by `ganops export`"
        ) from None
    if len(image_shape) != 3:
        raise ServeError(f"{origin}: ganops.image_shape must be C,H,W, got {meta['ganops.image_shape']!r}")
    return ModelInfo(input_name, output_name, latent_dim, image_shape, cdf, dtype)
