"""The CPU kernels that shape numbers, pinned so that the same params give the same bits on any x86-64.

PyTorch picks its CPU kernels by the instruction set it finds at run time (ATen's vectorized
kernels: AVX2 or AVX-512; oneDNN's convolutions: AVX2, AVX-512 or AMX; MKL's BLAS and LAPACK
code paths), and its parallel kernels split their reductions by the intra-op thread count. Both
change the last bits of a convolution's gradient, and a few thousand training steps turn those
bits into another model: a clean clone on an AVX2-only CPU, or with 1 thread instead of 2, did not
reproduce the committed ``dvc.lock``.

``cpu.kernels: avx2`` (the default, and the mode the committed reference was made in) caps all
three libraries at AVX2, which every x86-64 server CPU since 2013 has, and asks MKL for
conditional numerical reproducibility; ``cpu.threads`` fixes the thread count. The libraries read
these settings once, when they first load their kernels, so ``pin`` runs before torch is imported
(``run_stage`` calls it right after reading params), and ``check`` then reports what took effect.
``cpu.kernels: native`` leaves the fastest kernels of this CPU in place: faster on some machines,
bits that differ between machines. docs/reproducibility.md has the measured cost of each mode.
"""

from __future__ import annotations

import logging
import os

from ganops.config import CpuParams

log = logging.getLogger(__name__)

# What each library reads when it loads (set before torch is imported; a user's own value is
# overridden in pinned mode, since it would change the bits).
PINNED_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorized kernels (reductions, activations, optimizers)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's JIT convolutions (else AVX-512 or AMX where present)
    "MKL_CBWR": "AVX2,STRICT",  # MKL's code path, and results independent of the thread count
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
PINNED_CAPABILITY = "AVX2"


def threads(cpu: CpuParams) -> int | None:
    """This process's intra-op threads: ``cpu.threads`` is the stage's, so N data-parallel processes
    on one node (LOCAL_WORLD_SIZE, set by their launcher) get 1/N of it each, at least one."""
    if cpu.threads is None:
        return None
    return max(1, cpu.threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def pin(cpu: CpuParams) -> None:
    """Set the environment that pins the kernels and threads; call before torch is imported."""
    if cpu.kernels == "avx2":
        os.environ.update(PINNED_ENVIRONMENT)
    if cpu.threads is not None:
        os.environ.update({name: str(threads(cpu)) for name in THREAD_VARIABLES})


def check(cpu: CpuParams) -> dict:
    """Fix the thread count and report the kernels in effect (for the stage's log).

    torch may already have loaded its kernels in this process (a test, a notebook, the Prefect
    flow): then the capability cannot change any more, and a mismatch is said once in the log."""
    import torch

    if cpu.threads is not None:
        torch.set_num_threads(threads(cpu))
    capability = torch.backends.cpu.get_cpu_capability()
    facts = {"kernels": cpu.kernels, "cpu_capability": capability, "threads": torch.get_num_threads()}
    if cpu.kernels == "avx2" and capability != PINNED_CAPABILITY:
        log.warning(
            "cpu.kernels=avx2 asked for AVX2 kernels, but %s are in use: %s. Results match other "
            "machines only when the stage runs as its own process (`ganops <stage>`, dvc repro)",
            capability,
            "this CPU has no AVX2"
            if capability in ("DEFAULT", "ZVECTOR", "SVE256")
            else "torch was loaded in this process before the pin",
        )
    log.info(
        "cpu: %s kernels, %d threads (cpu.kernels=%s, cpu.threads=%s)",
        capability,
        facts["threads"],
        cpu.kernels,
        cpu.threads,
    )
    return facts
