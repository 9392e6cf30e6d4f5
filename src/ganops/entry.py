"""The ``ganops`` command's entry point: one fast path, then the CLI (ganops.cli).

``dvc repro`` starts ``ganops validate`` on every call, no-op or not, so its start-up is paid by
every repro. When the params passed before with the same code and libraries, the validate stage
skips the params check and with it the CLI's and pydantic's imports (stages/validate.py says
what the verdict depends on). Any other command, flag or outcome goes through the full CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ganops.logs import setup_logging


def _remembered_validate(args: list[str]) -> bool:
    """``ganops validate [--params PATH]`` done without the CLI, if its params passed before."""
    if args == ["validate"]:
        params = Path("params.yaml")
    elif len(args) == 3 and args[0] == "validate" and args[1] in ("--params", "-p"):
        params = Path(args[2])
    else:
        return False
    from ganops.stages.validate import run_remembered

    setup_logging()
    try:
        return run_remembered(params)
    except Exception:  # noqa: BLE001 - the full run below meets the same error and explains it
        return False


def main() -> None:
    if _remembered_validate(sys.argv[1:]):
        return
    from ganops.cli import main as cli_main

    cli_main()
