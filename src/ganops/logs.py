"""Logging set-up for the ``ganops`` command: one format, and the chattiest libraries quietened.

Both the entry point's fast path (ganops.entry) and the full CLI (ganops.cli) call it, so it
lives below both and imports nothing heavier than ``logging``.
"""

from __future__ import annotations

import logging


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("alembic", "mlflow", "urllib3", "httpx", "onnxscript", "torch.onnx", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
