"""Fast paths of the training step, each chosen by device and measured by benchmarks/train_throughput.py.

- Adam: the fused kernel (one kernel over all parameters) on CPU and CUDA. The for-loop default
  launches ~10 small ops per tensor; on 2 oversubscribed CPU cores that cost ~30 ms per step for the
  DCGAN-32 pair against ~2.5 ms fused; on idle cores the difference is small (README, Speed and scale).
- channels_last on CUDA only (tensor cores); ``--channels-last`` in the benchmark measures it elsewhere.
- D frozen while G learns: the G step needs gradients through D's activations, not D's own weight
  gradients (the D step zeroes them anyway), so D's parameters stop requiring grad for that forward.
  Skipped under DDP, whose reducer waits for every trainable parameter's gradient each backward.
- torch.compile (``train.compile``: auto = on for CUDA), falling back to eager with one notice
  when compilation fails at the first step (no compiler, an unsupported op).
bf16 autocast lives in the loop (``train.mixed_precision``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float], device: torch.device):
    """Adam, fused where torch has the kernel (the train stage and the evaluator). On CPU the fused
    kernel also keeps the bits the same on Intel and AMD: it takes square roots with the exact
    instruction, where the for-loop Adam's torch.sqrt goes to MKL's VML, not correctly rounded and
    following the CPU's own answer to its approximate instructions (docs/reproducibility.md)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


@contextlib.contextmanager
def frozen(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """``module``'s parameters need no gradient inside (autograd records this at forward time)."""
    flags = [p.requires_grad for p in module.parameters()]
    if enabled:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags, strict=True):
            param.requires_grad_(flag)


def wants_compile(mode: str, device: torch.device) -> bool:
    return mode == "on" or (mode == "auto" and device.type == "cuda")


def compiled(module: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """``module`` under torch.compile when ``mode`` asks for it, else ``module`` itself."""
    if not wants_compile(mode, device):
        return module
    return _CompiledOrEager(module)


class _CompiledOrEager(nn.Module):
    """Runs the compiled module; if compiling fails, says so once and runs eager from then on.

    Compilation is lazy (it happens at the first call), so the fallback must sit at call time."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.eager = module
        self._compiled = torch.compile(module)
        self._failed = False

    def forward(self, *args, **kwargs):
        if not self._failed:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any compiler failure means: run eager
                self._failed = True
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                log.warning(
                    "torch.compile failed (%s: %s); training eager (set train.compile: off to skip)",
                    type(err).__name__,
                    first[:200],
                )
        return self.eager(*args, **kwargs)
