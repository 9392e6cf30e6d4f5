"""The ``ganops`` command. Heavy libraries are imported inside commands, so ``--help`` is fast."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ganops.clitools import ParamsOption, user_errors
from ganops.logs import setup_logging
from ganops.stages import PIPELINE

app = typer.Typer(add_completion=False, no_args_is_help=True, help="A reproducible GAN factory.")


def _stage_command(name: str, doc: str) -> None:
    def command(params: Path = ParamsOption) -> None:
        from ganops.stages import run_stage

        with user_errors():
            run_stage(name, params)

    command.__doc__ = doc
    app.command(name)(command)


for _stage in PIPELINE:
    _stage_command(_stage.name, _stage.summary)


@app.command("params")
def show_params(params: Path = ParamsOption) -> None:
    """Check a params file and print it with every default filled in."""
    import yaml

    from ganops.config import load_params

    with user_errors():
        typer.echo(yaml.safe_dump(load_params(params).model_dump(), sort_keys=False))


@app.command("summary")
def summary(
    since: float = typer.Option(0.0, help="stages that finished after this Unix time count as 'ran'"),
) -> None:
    """One line: which stages ran and which were cached, fid_domain and the registry decision."""
    from ganops.stages import Layout
    from ganops.summary import summary_line

    typer.echo(summary_line(Layout(Path(".")), since))


@app.command("preset")
def run_preset(
    name: str = typer.Argument(None, help="a preset's name; none: list them"),
    root: str = typer.Option(None, help="train on this folder instead of the preset's data.root"),
    run: bool = typer.Option(False, "--run", help="run the experiment instead of printing its command"),
) -> None:
    """Print (or --run) the `dvc exp run` that trains a task with a documented preset (docs/restoration.md)."""
    import shlex
    import subprocess

    from ganops.presets import PRESETS, preset

    if name is None:
        for known, found in PRESETS.items():
            typer.echo(f"{known}: {found.summary}")
        return
    with user_errors():
        command = preset(name).command(name, root)
    typer.echo(shlex.join(command))
    if run:
        raise typer.Exit(subprocess.run(command).returncode)


def _add_subcommands() -> None:
    # Light modules: their heavy imports happen inside the commands.
    from ganops.registry.cli import app as registry_app
    from ganops.serve.cli import restore, sample, serve

    app.command("serve")(serve)
    app.command("sample")(sample)
    app.command("restore")(restore)
    app.add_typer(registry_app, name="registry")


_add_subcommands()


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    setup_logging(verbose)


def main() -> None:
    app(prog_name="ganops")


if __name__ == "__main__":
    sys.exit(main())
