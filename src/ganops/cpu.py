"""The CPU kernels that shape numbers, pinned so that the same params give the same bits on Intel and AMD.

PyTorch picks its CPU kernels at run time: ATen's vectorized kernels and oneDNN's convolutions by
the instruction set they find (AVX2, AVX-512, AMX), and MKL's BLAS (the linear layers' SGEMM) and
VML (exp, log, tanh, sqrt) by the instruction set *and the vendor*. Parallel kernels also split
their reductions by the intra-op thread count. Each changes the last bits of a result, and a few
thousand training steps turn those bits into another model.

``cpu.kernels: avx2`` (the default, and the committed reference's mode) caps ATen and oneDNN at
AVX2, which every x86-64 server CPU since 2013 has, and puts MKL on its COMPATIBLE branch, the one
branch MKL runs alike on every vendor: on an AMD CPU, MKL ignores a request for its AVX2 branch and
takes its own (``AUTO``), which gave other bits than an Intel CPU's AVX2 branch
(docs/reproducibility.md has the measurements). ``cpu.threads`` fixes the thread count. The
libraries read these settings once, when they load, so ``pin`` runs before torch is imported
(``run_stage`` calls it right after reading params), and ``check`` then reports what took effect,
MKL's branch included. ``cpu.kernels: native`` leaves the fastest kernels of this CPU in place:
faster on some machines, bits that differ between machines.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from ganops.config import CpuParams

log = logging.getLogger(__name__)

# What each library reads when it loads (set before torch is imported; a user's own value is
# overridden in pinned mode, since it would change the bits).
PINNED_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorized kernels (reductions, activations, optimizers)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's JIT convolutions (else AVX-512 or AMX where present)
    "MKL_CBWR": "COMPATIBLE",  # MKL's vendor-neutral code path (BLAS and VML)
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
PINNED_CAPABILITY = "AVX2"
PINNED_MKL_BRANCH = "COMPATIBLE"

# mkl_cbwr_get's answers (mkl_cbwr.h); the STRICT flag (0x10000) is not part of the branch. "unset":
# no branch asked for (MKL_CBWR absent), so MKL picks its fastest path call by call.
MKL_BRANCHES = {
    0: "unset",
    1: "unset",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    12: "AVX512",
    14: "AVX512_E1",
}


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


def mkl_branch() -> str | None:
    """The code path MKL runs in this process (``AUTO``: its own pick for this CPU), or None where
    torch was built without MKL (aarch64, some conda builds)."""
    import torch

    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(library)).mkl_serv_cbwr_get  # MKL is linked into libtorch_cpu
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_int
    code = get(1) & 0xFFFF  # 1 = MKL_CBWR_BRANCH
    return MKL_BRANCHES.get(code, f"0x{code:x}")


def check(cpu: CpuParams) -> dict:
    """Fix the thread count and report the kernels in effect (for the stage's log).

    torch may already have loaded its kernels in this process (a test, a notebook, the Prefect
    flow): then the capability cannot change any more, and a mismatch is said once in the log."""
    import torch

    if cpu.threads is not None:
        torch.set_num_threads(threads(cpu))
    capability = torch.backends.cpu.get_cpu_capability()
    branch = mkl_branch()
    facts = {
        "kernels": cpu.kernels,
        "cpu_capability": capability,
        "mkl_branch": branch,
        "threads": torch.get_num_threads(),
    }
    if cpu.kernels == "avx2" and capability != PINNED_CAPABILITY:
        log.warning(
            "cpu.kernels=avx2 asked for AVX2 kernels, but %s are in use: %s. Results match other "
            "machines only when the stage runs as its own process (`ganops <stage>`, dvc repro)",
            capability,
            "this CPU has no AVX2"
            if capability in ("DEFAULT", "ZVECTOR", "SVE256")
            else "torch was loaded in this process before the pin",
        )
    if cpu.kernels == "avx2" and branch not in (None, PINNED_MKL_BRANCH):
        log.warning(
            "cpu.kernels=avx2 asked MKL for its %s branch, but it runs %s (MKL_CBWR was read before "
            "the pin): results match other machines only when the stage runs as its own process",
            PINNED_MKL_BRANCH,
            branch,
        )
    log.info(
        "cpu: %s kernels, MKL %s, %d threads (cpu.kernels=%s, cpu.threads=%s)",
        capability,
        branch or "absent",
        facts["threads"],
        cpu.kernels,
        cpu.threads,
    )
    return facts
