"""Pieces shared by the CLI modules: the --params option and the user-error boundary."""

from __future__ import annotations

import contextlib
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
        raise typer.Exit(err.exit_code) from None
