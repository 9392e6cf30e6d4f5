"""Pieces shared by the CLI modules: the --params option and the user-error boundary."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import typer

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="params file", dir_okay=False)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a GanopsError into one ``error: ...`` line on stderr and its exit code."""
    from ganops.errors import GanopsError

    try:
        yield
    except GanopsError as err:
        typer.echo(f"error: {err}", err=True)
        _tell_launcher(str(err))
        raise typer.Exit(err.exit_code) from None


def _tell_launcher(message: str) -> None:
    """In a worker of torch's elastic launcher (training.launch), leave the error where it reads it."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        Path(path).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))
