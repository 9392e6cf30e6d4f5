"""``ganops registry``: list, show, promote and roll back registered generator versions."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ganops.clitools import ParamsOption, user_errors

if TYPE_CHECKING:
    from ganops.config import RegisterParams
    from ganops.registry.client import ModelRegistry

app = typer.Typer(no_args_is_help=True, help="Inspect the model registry and move aliases by hand.")

ReasonOption = typer.Option(..., "--reason", "-r", help="why; recorded on the version's tags")
AliasOption = typer.Option(None, "--alias", help="alias to move (default: register.champion_alias)")


@contextlib.contextmanager
def _opened(params: Path) -> Iterator[tuple[ModelRegistry, RegisterParams]]:
    """The registry and the register section; any error inside is one ``error: ...`` line."""
    from ganops.config import load_params
    from ganops.registry.client import open_registry, registry_errors

    with user_errors():
        register = load_params(params).register
        registry = open_registry(register)
        with registry_errors(registry.uri):
            yield registry, register


@app.command("list")
def list_versions(params: Path = ParamsOption) -> None:
    """One line per version (number, aliases, fid_domain, gate decision), then each alias's holder and why."""
    with _opened(params) as (registry, _):
        versions = registry.versions()
        for v in versions:
            tags = v["tags"]
            aliases = ",".join(v["aliases"]) or "-"
            state = (
                "" if tags.get("ganops.state", "complete") == "complete" else f"  [{tags['ganops.state']}]"
            )
            typer.echo(
                f"v{v['version']:<4} {aliases:<22} fid_domain={tags.get('fid_domain', '?'):<22} "
                f"{v['created']}  {tags.get('gate_decision', '')}{state}"
            )
        # The gate's decision above is history; a hand promotion or rollback since is said here.
        reasons = {v["version"]: v["tags"] for v in versions}
        for alias, version in registry.holders().items():
            why = reasons.get(version, {}).get(f"alias.{alias}.reason", "no reason recorded")
            typer.echo(f"@{alias} -> v{version}: {why}")


@app.command()
def show(version: str, params: Path = ParamsOption) -> None:
    """Everything the registry knows about VERSION, as JSON."""
    with _opened(params) as (registry, _):
        typer.echo(json.dumps(registry.show(version), indent=2))


@app.command()
def promote(
    version: str, reason: str = ReasonOption, alias: str = AliasOption, params: Path = ParamsOption
) -> None:
    """Point the champion alias (or --alias) at VERSION, bypassing the gate."""
    with _opened(params) as (registry, register):
        registry.move_alias(alias or register.champion_alias, version, f"promoted by hand: {reason}")
        typer.echo(f"{registry.name}@{alias or register.champion_alias} -> v{version}")


@app.command()
def rollback(reason: str = ReasonOption, alias: str = AliasOption, params: Path = ParamsOption) -> None:
    """Point the champion alias (or --alias) back at the version that held it before."""
    with _opened(params) as (registry, register):
        version = registry.rollback(alias or register.champion_alias, reason)
        typer.echo(f"{registry.name}@{alias or register.champion_alias} -> v{version}")
